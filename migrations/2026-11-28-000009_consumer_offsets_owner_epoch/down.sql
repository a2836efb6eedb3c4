ALTER TABLE consumer_offsets RENAME COLUMN owner_epoch TO lease_epoch;
