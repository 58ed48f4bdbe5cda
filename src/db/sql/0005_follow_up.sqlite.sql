-- Follow-up on a ticket: `open` (offline messages start here), `pending`, `solved` (finished
-- chats), and free tags; both in the ticket's JSON and as columns the inbox filters on.
ALTER TABLE tickets ADD COLUMN follow_up TEXT NOT NULL DEFAULT 'solved';
ALTER TABLE tickets ADD COLUMN tags TEXT NOT NULL DEFAULT ' ';
UPDATE tickets SET follow_up = CASE status WHEN 'offline' THEN 'open' ELSE 'solved' END;
UPDATE tickets SET body = json_set(body, '$.follow_up', follow_up, '$.tags', json('[]'));
CREATE INDEX tickets_site_follow_up ON tickets (site, follow_up, id);
