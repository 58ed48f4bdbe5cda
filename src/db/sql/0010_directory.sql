-- The directory: what used to live only in the TOML file, managed at run time over REST.
-- Sites, departments, canned responses, triggers and webhooks are entries of one table, each
-- a JSON body in the configuration's own shape; agents have a table of their own because
-- they sign in (addresses, token and password hashes, invites).
CREATE TABLE directory (
    kind     TEXT NOT NULL,
    site     TEXT NOT NULL,
    id       TEXT NOT NULL,
    position BIGINT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (kind, site, id)
);
CREATE TABLE agents (
    site          TEXT NOT NULL,
    id            TEXT NOT NULL,
    position      BIGINT NOT NULL,
    body          TEXT NOT NULL,
    email         TEXT,
    token_sha256  TEXT,
    password_hash TEXT,
    invite_sha256 TEXT,
    invite_until  BIGINT,
    credentials   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, id)
);
CREATE UNIQUE INDEX agents_email ON agents (email);
CREATE UNIQUE INDEX agents_token ON agents (token_sha256);
CREATE UNIQUE INDEX agents_invite ON agents (invite_sha256);
-- Console sign-ins: the cookie is a random token; only its hash is kept.
CREATE TABLE agent_sessions (
    id_sha256  TEXT PRIMARY KEY,
    site       TEXT NOT NULL,
    agent      TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX agent_sessions_agent ON agent_sessions (site, agent);
CREATE INDEX agent_sessions_expiry ON agent_sessions (expires_at);
-- Every change bumps it; nodes poll it and reload the directory when it moves.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0);
