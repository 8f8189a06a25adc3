-- The record of who was shown personal data: one row per answer that
-- showed a person's data unmasked (the token, its role, the route, the
-- data subjects). Chained like the log (`hash` covers the previous row's
-- hash and this row's fields), so a row edited or removed is found by
-- verification (rows cut off the end are not: keep the last hash seen,
-- as with the log's head). Not part of the event log: reading must
-- not move the log's positions.
CREATE TABLE personal_data_access (
    seq       BIGINT  PRIMARY KEY,
    at_us     BIGINT  NOT NULL,
    token_id  TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    route     TEXT    NOT NULL,
    subjects  TEXT    NOT NULL,
    hash      BYTEA   NOT NULL
);
