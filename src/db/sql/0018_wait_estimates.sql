-- The wait estimate each queued visitor was given (routing/estimate.rs): the point and the range
-- in seconds, and the model's wait in thousandths of the mean handling time. The server learns
-- its estimates' error from them and publishes their accuracy in /v1/stats.
ALTER TABLE tickets ADD COLUMN estimate_secs BIGINT;
ALTER TABLE tickets ADD COLUMN estimate_low BIGINT;
ALTER TABLE tickets ADD COLUMN estimate_high BIGINT;
ALTER TABLE tickets ADD COLUMN estimate_handlings BIGINT;
CREATE INDEX tickets_site_department_closed ON tickets (site, department, closed_at);
