-- The seed (db/seed.sql) inserts memes with their ids; PostgreSQL's identity
-- sequence does not see those, so the next meme would get id 1 again. Move
-- it past the largest id. (SQLite picks max(rowid) + 1 by itself.)
SELECT setval(pg_get_serial_sequence('memes', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM memes), false);
