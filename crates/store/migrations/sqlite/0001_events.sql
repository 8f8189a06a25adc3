-- The one append-only log. Positions are assigned by the single writer under
-- SQLite's write lock, so they are gap-free and commit in order.
-- payload and metadata are kept as the exact text that was hashed, so the
-- chain can be recomputed byte for byte.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    category        TEXT    NOT NULL,
    event_id        BLOB    NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at_us  INTEGER NOT NULL,
    hash            BLOB    NOT NULL
);

CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE UNIQUE INDEX events_stream_version ON events (stream_id, stream_version);
CREATE INDEX events_category_position ON events (category, position);
