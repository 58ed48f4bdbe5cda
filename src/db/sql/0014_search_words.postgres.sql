-- Search text as words: runs of letters and digits, the way queries are split. PostgreSQL's
-- parser kept `qwerty.person@mailhost.org` as one email token, so `qwerty` or `mailhost`
-- never found it while SQLite did.
UPDATE tickets SET search_text = regexp_replace(search_text, '[^[:alnum:]]+', ' ', 'g');
