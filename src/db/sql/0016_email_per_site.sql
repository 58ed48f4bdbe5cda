-- An agent's address is unique within their site, not across sites: a site admin cannot learn
-- that another tenant has an address by trying to use it. Sign-in tries each account with it.
DROP INDEX agents_email;
CREATE UNIQUE INDEX agents_email ON agents (site, email);
