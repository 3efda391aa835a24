-- Academemes schema. Applied once, when the database file is created.
CREATE TABLE templates (
  id   TEXT PRIMARY KEY,          -- the file name under static/templates/, without .svg
  name TEXT NOT NULL,             -- shown to people
  svg  TEXT NOT NULL              -- the drawing, a whole <svg viewBox="0 0 600 600"> element
);

CREATE TABLE memes (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  template    TEXT    NOT NULL REFERENCES templates(id),
  top_text    TEXT    NOT NULL,
  bottom_text TEXT    NOT NULL,
  votes       INTEGER NOT NULL DEFAULT 0 CHECK (votes >= 0),
  created_ms  INTEGER NOT NULL
);
CREATE INDEX memes_created ON memes (created_ms DESC, id DESC);
CREATE INDEX memes_votes ON memes (votes DESC, id DESC);

CREATE TABLE meme_tags (
  meme_id INTEGER NOT NULL REFERENCES memes(id) ON DELETE CASCADE,
  tag     TEXT    NOT NULL,
  PRIMARY KEY (meme_id, tag)
) WITHOUT ROWID;
CREATE INDEX meme_tags_tag ON meme_tags (tag, meme_id);

-- One vote per visitor and meme. `visitor` is the host's session id
-- (app.toml [session], bound as :session_id); a second vote from the same
-- browser hits the primary key and, written with INSERT OR IGNORE, changes
-- nothing. memes.votes stays the count shown everywhere: it also holds the
-- seed's votes, which have no rows here, so it is kept by this trigger
-- rather than recounted.
CREATE TABLE votes (
  meme_id  INTEGER NOT NULL REFERENCES memes(id) ON DELETE CASCADE,
  visitor  TEXT    NOT NULL,
  PRIMARY KEY (meme_id, visitor)
) WITHOUT ROWID;

CREATE TRIGGER votes_count AFTER INSERT ON votes
BEGIN
  UPDATE memes SET votes = votes + 1 WHERE id = NEW.meme_id;
END;

-- ---------------------------------------------------------------- derived tables
-- Kept in step by triggers, so that no page has to read every meme or every
-- tag row per request (the tag cloud, /stats, /search).

-- How many memes carry each tag: the tag cloud is the top rows by `memes`.
CREATE TABLE tag_counts (
  tag   TEXT    PRIMARY KEY,
  memes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tag_counts_by_memes ON tag_counts (memes DESC, tag);

CREATE TRIGGER tag_counts_add AFTER INSERT ON meme_tags BEGIN
  INSERT INTO tag_counts (tag, memes) VALUES (new.tag, 1)
    ON CONFLICT (tag) DO UPDATE SET memes = memes + 1;
END;
CREATE TRIGGER tag_counts_remove AFTER DELETE ON meme_tags BEGIN
  UPDATE tag_counts SET memes = memes - 1 WHERE tag = old.tag;
  DELETE FROM tag_counts WHERE tag = old.tag AND memes <= 0;
END;
CREATE TRIGGER tag_counts_change AFTER UPDATE OF tag ON meme_tags BEGIN
  UPDATE tag_counts SET memes = memes - 1 WHERE tag = old.tag;
  DELETE FROM tag_counts WHERE tag = old.tag AND memes <= 0;
  INSERT INTO tag_counts (tag, memes) VALUES (new.tag, 1)
    ON CONFLICT (tag) DO UPDATE SET memes = memes + 1;
END;

-- Memes and votes per template: /stats ranks templates and counts memes
-- and votes from these few rows. A template's row is made with it.
CREATE TABLE template_stats (
  template TEXT    PRIMARY KEY REFERENCES templates(id) ON DELETE CASCADE,
  memes    INTEGER NOT NULL DEFAULT 0,
  votes    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TRIGGER template_stats_new_template AFTER INSERT ON templates BEGIN
  INSERT INTO template_stats (template) VALUES (new.id);
END;
CREATE TRIGGER template_stats_add AFTER INSERT ON memes BEGIN
  UPDATE template_stats SET memes = memes + 1, votes = votes + new.votes WHERE template = new.template;
END;
CREATE TRIGGER template_stats_remove AFTER DELETE ON memes BEGIN
  UPDATE template_stats SET memes = memes - 1, votes = votes - old.votes WHERE template = old.template;
END;
CREATE TRIGGER template_stats_change AFTER UPDATE OF votes, template ON memes BEGIN
  UPDATE template_stats SET memes = memes - 1, votes = votes - old.votes WHERE template = old.template;
  UPDATE template_stats SET memes = memes + 1, votes = votes + new.votes WHERE template = new.template;
END;

-- Search: a trigram full-text index over the texts and the template (id and
-- name) of each meme, one row per meme with rowid = memes.id. A quoted query
-- matches the memes with that substring in one of these fields, ignoring
-- case (at least 3 characters: trigrams). Tags are searched through
-- tag_counts instead (one row per distinct tag), so adding a tag does not
-- rewrite the meme's row here.
CREATE VIRTUAL TABLE meme_search USING fts5(
  top_text, bottom_text, template, template_name,
  tokenize = 'trigram'
);

CREATE TRIGGER meme_search_add AFTER INSERT ON memes BEGIN
  INSERT INTO meme_search (rowid, top_text, bottom_text, template, template_name)
    SELECT new.id, new.top_text, new.bottom_text, new.template, tp.name
    FROM templates tp WHERE tp.id = new.template;
END;
-- Votes do not touch the index: only the fields it holds do.
CREATE TRIGGER meme_search_edit AFTER UPDATE OF top_text, bottom_text, template ON memes BEGIN
  DELETE FROM meme_search WHERE rowid = old.id;
  INSERT INTO meme_search (rowid, top_text, bottom_text, template, template_name)
    SELECT new.id, new.top_text, new.bottom_text, new.template, tp.name
    FROM templates tp WHERE tp.id = new.template;
END;
CREATE TRIGGER meme_search_remove AFTER DELETE ON memes BEGIN
  DELETE FROM meme_search WHERE rowid = old.id;
END;
CREATE TRIGGER meme_search_template_name AFTER UPDATE OF name ON templates BEGIN
  DELETE FROM meme_search WHERE rowid IN (SELECT id FROM memes WHERE template = new.id);
  INSERT INTO meme_search (rowid, top_text, bottom_text, template, template_name)
    SELECT m.id, m.top_text, m.bottom_text, m.template, new.name
    FROM memes m WHERE m.template = new.id;
END;
