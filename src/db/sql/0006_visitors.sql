-- Visitor records: the profile a returning visitor is recognised by, and the triggers that
-- fired for them. Kept here, not in live state, so that visitors who leave cost no memory;
-- they expire a configurable time after they were last seen.
CREATE TABLE visitors (
    site      TEXT NOT NULL,
    id        TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    profile   TEXT NOT NULL,
    PRIMARY KEY (site, id)
);
CREATE INDEX visitors_last_seen ON visitors (last_seen);
-- Until when each trigger may not fire again for a visitor.
CREATE TABLE visitor_triggers (
    site       TEXT NOT NULL,
    visitor    TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    until      BIGINT NOT NULL,
    PRIMARY KEY (site, visitor, trigger_id)
);
