-- Saved read-model state is stored compressed: bytes, no longer text.
ALTER TABLE projection_checkpoints
    ALTER COLUMN state TYPE BYTEA USING convert_to(state, 'UTF8');
