-- Search without FTS5, with SQL both stores run: every meme's text (top and
-- bottom text, template id and name, lowercased) is cut into its 3-letter
-- pieces in meme_grams; a search looks up the pieces of its query there
-- (index lookups: the work follows the matches, not the table) and checks
-- the few candidates with LIKE. db/schema.postgres.sql makes the same on
-- PostgreSQL. This replaces the FTS5 index and its triggers.
DROP TRIGGER IF EXISTS meme_search_add;
DROP TRIGGER IF EXISTS meme_search_edit;
DROP TRIGGER IF EXISTS meme_search_remove;
DROP TRIGGER IF EXISTS meme_search_template_name;
DROP TABLE IF EXISTS meme_search;

-- 1..256: the positions a piece may start at (texts are at most 80 + 80
-- characters plus a template's id and name).
CREATE TABLE search_numbers (n INTEGER PRIMARY KEY);
INSERT INTO search_numbers (n)
  WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 256)
  SELECT n FROM c;

CREATE TABLE meme_grams (
  gram    TEXT    NOT NULL,
  meme_id INTEGER NOT NULL REFERENCES memes(id) ON DELETE CASCADE,
  PRIMARY KEY (gram, meme_id)
) WITHOUT ROWID;
CREATE INDEX meme_grams_meme ON meme_grams (meme_id);

-- What a meme is searched by, one text.
CREATE VIEW meme_search_text (meme_id, body) AS
  SELECT m.id, lower(m.top_text || char(10) || m.bottom_text || char(10) || m.template || char(10) || tp.name)
  FROM memes m JOIN templates tp ON tp.id = m.template;

CREATE TRIGGER meme_grams_add AFTER INSERT ON memes BEGIN
  INSERT OR IGNORE INTO meme_grams (gram, meme_id)
    SELECT substr(t.body, n.n, 3), t.meme_id
    FROM meme_search_text t, search_numbers n
    WHERE t.meme_id = new.id AND n.n <= length(t.body) - 2;
END;
CREATE TRIGGER meme_grams_edit AFTER UPDATE OF top_text, bottom_text, template ON memes BEGIN
  DELETE FROM meme_grams WHERE meme_id = old.id;
  INSERT OR IGNORE INTO meme_grams (gram, meme_id)
    SELECT substr(t.body, n.n, 3), t.meme_id
    FROM meme_search_text t, search_numbers n
    WHERE t.meme_id = new.id AND n.n <= length(t.body) - 2;
END;
CREATE TRIGGER meme_grams_template_name AFTER UPDATE OF name ON templates BEGIN
  DELETE FROM meme_grams WHERE meme_id IN (SELECT id FROM memes WHERE template = new.id);
  INSERT OR IGNORE INTO meme_grams (gram, meme_id)
    SELECT substr(t.body, n.n, 3), t.meme_id
    FROM meme_search_text t JOIN memes m ON m.id = t.meme_id, search_numbers n
    WHERE m.template = new.id AND n.n <= length(t.body) - 2;
END;

-- The memes already there.
INSERT OR IGNORE INTO meme_grams (gram, meme_id)
  SELECT substr(t.body, n.n, 3), t.meme_id
  FROM meme_search_text t, search_numbers n
  WHERE n.n <= length(t.body) - 2;
