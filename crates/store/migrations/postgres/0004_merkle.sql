-- The Merkle tree over the log (RFC 6962): the roots of its perfect
-- subtrees of 16 leaves or more (smaller ones are recomputed from the
-- events' hashes), and the frontier the indexer resumes from, with the
-- chain hash at its size so a rewritten log is not resumed over.
CREATE TABLE merkle_nodes (
    level  INTEGER NOT NULL,
    idx    BIGINT  NOT NULL,
    hash   BYTEA   NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE merkle_frontier (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    size        BIGINT  NOT NULL,
    frontier    BYTEA   NOT NULL,
    chain_hash  BYTEA   NOT NULL,
    -- An HMAC over the three above, under a key derived from the signing
    -- key (outside the database): a frontier that does not carry it is
    -- not resumed over, the tree is rebuilt from the log.
    seal        BYTEA
);
