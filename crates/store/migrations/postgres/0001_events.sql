-- The one append-only log. Positions are not a sequence: the writer assigns
-- head + 1 while holding a transaction-scoped advisory lock, so positions are
-- gap-free and become visible strictly in order (a BIGSERIAL would let a later
-- commit show a lower position after a reader had passed it).
-- payload and metadata are kept as the exact text that was hashed (not JSONB,
-- which would reorder keys), so the chain can be recomputed byte for byte.
CREATE TABLE events (
    position        BIGINT      PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    category        TEXT        NOT NULL,
    event_id        UUID        NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    payload         TEXT        NOT NULL,
    metadata        TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    hash            BYTEA       NOT NULL,
    CONSTRAINT events_event_id UNIQUE (event_id),
    CONSTRAINT events_stream_version UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_category_position ON events (category, position);
