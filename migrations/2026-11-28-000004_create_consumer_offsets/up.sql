-- rskafka has no consumer groups: the payment role stores the next offset of each
-- partition here, in the same transaction as the orders it wrote from that batch.
CREATE TABLE consumer_offsets (
    topic VARCHAR(249) CHARACTER SET ascii NOT NULL,
    partition_id INT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (topic, partition_id)
) ENGINE = InnoDB;
