-- One data key per data subject (the stream id of the person's entity),
-- stored only wrapped under a key-encryption key that never enters the
-- database; `kek_id` names which. Personal fields of events are sealed
-- under the subject's data key, so destroying a row's key (wrapped = NULL,
-- kept as a tombstone so no new key is ever made for the subject) makes
-- that subject's personal fields unreadable everywhere, backups of the log
-- included, without touching the log.
--
-- Not part of the chain: the events' hashes cover the sealed text, never
-- the keys, so erasing a key leaves the chain intact. The store turns on
-- `secure_delete` so the freed bytes of an erased key are zeroed, and
-- checkpoints the WAL after erasing so no old frame keeps them.
CREATE TABLE subject_keys (
    subject        TEXT    PRIMARY KEY,
    kek_id         TEXT    NOT NULL,
    wrapped        BLOB,
    created_at_us  INTEGER NOT NULL,
    erased_at_us   INTEGER,
    erased_reason  TEXT,
    -- A row is live (a key, no erasure) or a tombstone (erased, no key).
    CHECK ((wrapped IS NULL) = (erased_at_us IS NOT NULL))
);

-- Another instance's new and erased keys are found by time.
CREATE INDEX subject_keys_created ON subject_keys (created_at_us);
CREATE INDEX subject_keys_erased ON subject_keys (erased_at_us) WHERE erased_at_us IS NOT NULL;
