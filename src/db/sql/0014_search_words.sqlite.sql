-- SQLite's full-text tokenizer already splits on punctuation: nothing to rewrite here (the
-- PostgreSQL migration of the same number rewrites the search text as words).
SELECT 1;
