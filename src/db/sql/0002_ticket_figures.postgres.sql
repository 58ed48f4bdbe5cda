-- The figures supervisors ask for, as columns: /v1/stats aggregates them in SQL instead of
-- reading tickets. Filled from the stored tickets for those written before.
ALTER TABLE tickets
    ADD COLUMN queue_wait DOUBLE PRECISION,
    ADD COLUMN first_response DOUBLE PRECISION,
    ADD COLUMN handling DOUBLE PRECISION,
    ADD COLUMN rating BIGINT;
UPDATE tickets SET
    queue_wait = (body::jsonb #>> '{metrics,queue_wait_secs}')::double precision,
    first_response = (body::jsonb #>> '{metrics,first_response_secs}')::double precision,
    handling = (body::jsonb #>> '{metrics,handling_secs}')::double precision,
    rating = (body::jsonb #>> '{rating,score}')::bigint;
CREATE INDEX tickets_closed ON tickets (closed_at);
