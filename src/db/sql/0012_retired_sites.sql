-- Ids of deleted sites: never given to a new site, so nothing the old site left (tickets,
-- files, visitors, audit entries, tokens) can be read under the same id.
CREATE TABLE retired_sites (
    site TEXT PRIMARY KEY,
    retired_at BIGINT NOT NULL
);
