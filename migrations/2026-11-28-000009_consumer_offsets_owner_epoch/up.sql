-- Partitions are now assigned by the Kafka consumer group; each assignment claims the
-- partition by bumping this epoch, and a commit carrying an older epoch is refused.
ALTER TABLE consumer_offsets RENAME COLUMN lease_epoch TO owner_epoch;
