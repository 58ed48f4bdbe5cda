-- The figures supervisors ask for, as columns: /v1/stats aggregates them in SQL instead of
-- reading tickets. Filled from the stored tickets for those written before.
ALTER TABLE tickets ADD COLUMN queue_wait REAL;
ALTER TABLE tickets ADD COLUMN first_response REAL;
ALTER TABLE tickets ADD COLUMN handling REAL;
ALTER TABLE tickets ADD COLUMN rating BIGINT;
UPDATE tickets SET
    queue_wait = json_extract(body, '$.metrics.queue_wait_secs'),
    first_response = json_extract(body, '$.metrics.first_response_secs'),
    handling = json_extract(body, '$.metrics.handling_secs'),
    rating = json_extract(body, '$.rating.score');
CREATE INDEX tickets_closed ON tickets (closed_at);
