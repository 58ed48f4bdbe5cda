-- Figures kept as tickets are written (tickets/figures.rs): per site, UTC day, dimension (the
-- whole site, a department, an agent), measure and bucket, how many tickets count there.
-- /v1/stats reads whole days here instead of every ticket. Filled from the stored tickets.
CREATE TABLE figures (
    site    TEXT NOT NULL,
    day     BIGINT NOT NULL,
    dim     TEXT NOT NULL,
    key     TEXT NOT NULL,
    measure TEXT NOT NULL,
    bucket  BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (dim, day, site, key, measure, bucket)
);
WITH c AS (
    SELECT site, (closed_at / 86400000) * 86400000 AS day, department, COALESCE(agent, '') AS agent, 'status:' || status AS measure, 0 AS bucket FROM tickets
    UNION ALL SELECT site, (closed_at / 86400000) * 86400000 AS day, department, COALESCE(agent, '') AS agent, 'rating', rating FROM tickets WHERE rating IS NOT NULL
    UNION ALL SELECT site, (closed_at / 86400000) * 86400000 AS day, department, COALESCE(agent, '') AS agent, 'queue_wait', CASE WHEN queue_wait < 60.0 THEN 0 + CAST((queue_wait - 0.0) / 1.0 AS INTEGER) WHEN queue_wait < 600.0 THEN 60 + CAST((queue_wait - 60.0) / 10.0 AS INTEGER) WHEN queue_wait < 3600.0 THEN 114 + CAST((queue_wait - 600.0) / 60.0 AS INTEGER) ELSE 164 + CAST((queue_wait - 3600.0) / 600.0 AS INTEGER) END FROM tickets WHERE queue_wait IS NOT NULL
    UNION ALL SELECT site, (closed_at / 86400000) * 86400000 AS day, department, COALESCE(agent, '') AS agent, 'first_response', CASE WHEN first_response < 60.0 THEN 0 + CAST((first_response - 0.0) / 1.0 AS INTEGER) WHEN first_response < 600.0 THEN 60 + CAST((first_response - 60.0) / 10.0 AS INTEGER) WHEN first_response < 3600.0 THEN 114 + CAST((first_response - 600.0) / 60.0 AS INTEGER) ELSE 164 + CAST((first_response - 3600.0) / 600.0 AS INTEGER) END FROM tickets WHERE first_response IS NOT NULL
    UNION ALL SELECT site, (closed_at / 86400000) * 86400000 AS day, department, COALESCE(agent, '') AS agent, 'handling', CASE WHEN handling < 60.0 THEN 0 + CAST((handling - 0.0) / 1.0 AS INTEGER) WHEN handling < 600.0 THEN 60 + CAST((handling - 60.0) / 10.0 AS INTEGER) WHEN handling < 3600.0 THEN 114 + CAST((handling - 600.0) / 60.0 AS INTEGER) ELSE 164 + CAST((handling - 3600.0) / 600.0 AS INTEGER) END FROM tickets WHERE handling IS NOT NULL
)
INSERT INTO figures (site, day, dim, key, measure, bucket, n)
SELECT site, day, 'all', '', measure, bucket, COUNT(*) FROM c GROUP BY site, day, measure, bucket
UNION ALL
SELECT site, day, 'department', department, measure, bucket, COUNT(*) FROM c
    GROUP BY site, day, department, measure, bucket
UNION ALL
SELECT site, day, 'agent', agent, measure, bucket, COUNT(*) FROM c
    GROUP BY site, day, agent, measure, bucket;
