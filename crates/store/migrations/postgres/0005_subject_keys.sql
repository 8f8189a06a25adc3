-- One data key per data subject (the stream id of the person's entity),
-- stored only wrapped under a key-encryption key that never enters the
-- database; `kek_id` names which. Personal fields of events are sealed
-- under the subject's data key, so destroying a row's key (wrapped = NULL,
-- kept as a tombstone so no new key is ever made for the subject) makes
-- that subject's personal fields unreadable everywhere, backups of the log
-- included, without touching the log.
--
-- Not part of the chain: the events' hashes cover the sealed text, never
-- the keys, so erasing a key leaves the chain intact. The store vacuums
-- this table after erasing so the dead row versions holding erased keys
-- are reclaimed.
--
-- The times are the database server's clock (microseconds since the
-- epoch), so instances whose clocks differ agree on what changed when.
CREATE TABLE subject_keys (
    subject        TEXT   PRIMARY KEY,
    kek_id         TEXT   NOT NULL,
    wrapped        BYTEA,
    created_at_us  BIGINT NOT NULL,
    erased_at_us   BIGINT,
    erased_reason  TEXT,
    -- A row is live (a key, no erasure) or a tombstone (erased, no key).
    CHECK ((wrapped IS NULL) = (erased_at_us IS NOT NULL))
);

-- Another instance's new and erased keys are found by time.
CREATE INDEX subject_keys_created ON subject_keys (created_at_us);
CREATE INDEX subject_keys_erased ON subject_keys (erased_at_us) WHERE erased_at_us IS NOT NULL;
