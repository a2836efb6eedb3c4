-- rskafka has no consumer groups: the payment role stores the next offset of each
-- partition here, in the same transaction as the orders it wrote from that batch.
-- lease_epoch fences commits: a consumer whose partition lease was taken over (a newer
-- epoch committed) cannot move the offset any more.
CREATE TABLE consumer_offsets (
    topic VARCHAR(249) CHARACTER SET ascii NOT NULL,
    partition_id INT NOT NULL,
    next_offset BIGINT NOT NULL,
    lease_epoch BIGINT NOT NULL DEFAULT 0,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (topic, partition_id)
) ENGINE = InnoDB;
