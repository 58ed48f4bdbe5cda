-- Tickets: the whole ticket as JSON in `body`; the columns are what listing filters on.
CREATE TABLE tickets (
    id         TEXT PRIMARY KEY,
    site       TEXT NOT NULL,
    visitor    TEXT NOT NULL,
    department TEXT NOT NULL,
    status     TEXT NOT NULL,
    closed_at  BIGINT NOT NULL,
    -- Every agent who held the chat, space-separated with a space at each end (" alice boris ").
    agents     TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX tickets_site_id ON tickets (site, id);
CREATE INDEX tickets_site_visitor ON tickets (site, visitor, id);
CREATE INDEX tickets_site_closed ON tickets (site, closed_at);

-- The webhook outbox: a delivery until it is accepted; `dead` ones wait for a retry by hand.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    site        TEXT NOT NULL,
    next_at     BIGINT NOT NULL,
    -- A node that claimed it holds it until then; another takes over after.
    lease_until BIGINT NOT NULL DEFAULT 0,
    dead        BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (dead, next_at);
CREATE INDEX deliveries_site_dead ON deliveries (site, dead, created_at);
