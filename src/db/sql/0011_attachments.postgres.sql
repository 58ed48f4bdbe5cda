-- Files sent in chats (images and PDFs). One row a file, its bytes beside what is shown of it;
-- the same message tried twice (author and client id) stores one file.
CREATE TABLE attachments (
    id           TEXT PRIMARY KEY,
    site         TEXT NOT NULL,
    conversation TEXT NOT NULL,
    visitor      TEXT NOT NULL,
    author       TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    data         BYTEA NOT NULL,
    UNIQUE (site, conversation, author, client_id)
);
CREATE INDEX attachments_visitor ON attachments (site, visitor);
CREATE INDEX attachments_created ON attachments (created_at);
