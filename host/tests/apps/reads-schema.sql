-- The reads test app (reads.toml): ten items of 40 bytes each, and notes
-- for the effects.
CREATE TABLE items (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
INSERT INTO items (id, text) SELECT i, printf('item %02d ', i) || substr(hex(zeroblob(16)), 1, 32) FROM n;
CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL CHECK (length(text) > 0));
