-- The visitor a webhook delivery is about, so a privacy erase finds their deliveries by a
-- column (earlier rows have none: the erase searches their bodies, with wildcards escaped).
ALTER TABLE deliveries ADD COLUMN visitor TEXT;
CREATE INDEX deliveries_visitor ON deliveries (site, visitor);
