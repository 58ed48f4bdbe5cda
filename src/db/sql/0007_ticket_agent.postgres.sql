-- The agent who held the chat last (who answered for it at the close): /v1/stats groups by it.
ALTER TABLE tickets ADD COLUMN agent TEXT;
UPDATE tickets SET agent = (body::jsonb -> 'agents' -> -1 ->> 'id');
CREATE INDEX tickets_closed_agent ON tickets (closed_at, agent);
