-- Full-text search over tickets: what a ticket says (messages, notes, an offline message) and
-- who it is about (visitor name and email), kept in `search_text` as tickets are saved and
-- indexed with a GIN index over its text-search vector ('simple': no language's stemming).
ALTER TABLE tickets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tickets SET search_text =
    coalesce(body::jsonb #>> '{visitor,name}', '') || ' ' ||
    coalesce(body::jsonb #>> '{visitor,email}', '') || ' ' ||
    coalesce(body::jsonb #>> '{offline_message,text}', '') || ' ' ||
    coalesce((SELECT string_agg(e ->> 'text', ' ')
              FROM jsonb_array_elements(body::jsonb -> 'transcript') AS e
              WHERE e ->> 'kind' IN ('message', 'note')), '');
CREATE INDEX tickets_search ON tickets USING GIN (to_tsvector('simple', search_text));
