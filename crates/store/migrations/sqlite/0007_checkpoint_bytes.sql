-- Saved read-model state is stored compressed: bytes, no longer text
-- (SQLite keeps a blob as a blob whatever the column's declared type).
UPDATE projection_checkpoints SET state = CAST(state AS BLOB);
