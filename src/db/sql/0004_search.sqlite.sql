-- Full-text search over tickets: what a ticket says (messages, notes, an offline message) and
-- who it is about (visitor name and email), kept in `search_text` as tickets are saved and
-- indexed by FTS5 through triggers (an external-content table: the text is stored once).
ALTER TABLE tickets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tickets SET search_text =
    coalesce(json_extract(body, '$.visitor.name'), '') || ' ' ||
    coalesce(json_extract(body, '$.visitor.email'), '') || ' ' ||
    coalesce(json_extract(body, '$.offline_message.text'), '') || ' ' ||
    coalesce((SELECT group_concat(json_extract(e.value, '$.text'), ' ')
              FROM json_each(body, '$.transcript') AS e
              WHERE json_extract(e.value, '$.kind') IN ('message', 'note')), '');
CREATE VIRTUAL TABLE tickets_fts USING fts5(search_text, content = 'tickets', content_rowid = 'rowid');
INSERT INTO tickets_fts (tickets_fts) VALUES ('rebuild');
CREATE TRIGGER tickets_fts_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO tickets_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER tickets_fts_delete AFTER DELETE ON tickets BEGIN
    INSERT INTO tickets_fts (tickets_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
CREATE TRIGGER tickets_fts_update AFTER UPDATE ON tickets BEGIN
    INSERT INTO tickets_fts (tickets_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO tickets_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
