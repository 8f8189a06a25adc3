-- Saved state of read models, so a restart resumes from `position` instead
-- of replaying the whole log. Not part of the chain: anything here can be
-- thrown away and rebuilt from the events. `hash` is the chain hash at
-- `position`, so a state is never resumed over a different log.
CREATE TABLE projection_checkpoints (
    name      TEXT        PRIMARY KEY,
    position  BIGINT      NOT NULL,
    hash      BYTEA       NOT NULL,
    format    INTEGER     NOT NULL,
    state     TEXT        NOT NULL,
    saved_at  TIMESTAMPTZ NOT NULL
);
