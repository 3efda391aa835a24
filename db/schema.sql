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
