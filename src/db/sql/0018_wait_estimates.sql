-- The wait estimate each queued visitor was given (routing/estimate.rs), in seconds: the point,
-- the range and what the model alone said. The server learns its estimates' error from them
-- and publishes their accuracy in /v1/stats.
ALTER TABLE tickets ADD COLUMN estimate_secs BIGINT;
ALTER TABLE tickets ADD COLUMN estimate_low BIGINT;
ALTER TABLE tickets ADD COLUMN estimate_high BIGINT;
ALTER TABLE tickets ADD COLUMN estimate_model BIGINT;
CREATE INDEX tickets_site_department_closed ON tickets (site, department, closed_at);
