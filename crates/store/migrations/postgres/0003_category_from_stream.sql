-- The category was stored beside the stream id and outside the hash: an edit
-- of it went unnoticed by verification yet hid events from category reads
-- (a token's revocation among them). It is now derived from the stream id,
-- which the hash covers, and indexed as that expression.
DROP INDEX events_category_position;
ALTER TABLE events DROP COLUMN category;
CREATE INDEX events_category_position ON events (split_part(stream_id, '-', 1), position);
