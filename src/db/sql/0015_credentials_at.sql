-- When an agent's credentials last changed (token, invite, password, disable): single-sign-on
-- tokens issued before it are refused.
ALTER TABLE agents ADD COLUMN credentials_at BIGINT NOT NULL DEFAULT 0;
