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
