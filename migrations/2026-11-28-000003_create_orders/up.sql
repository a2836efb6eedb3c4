-- One row per accepted purchase, written by the payment role. The id is the UUIDv7 the
-- api role generated, so replaying the Kafka event cannot create a second row.
CREATE TABLE orders (
    id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    -- The identity provider's subject (`sub`): text, so switching providers needs no migration.
    user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    coupon_id BIGINT NOT NULL,
    price_cents BIGINT NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    KEY idx_orders_user_created (user_id, created_at),
    KEY idx_orders_coupon_status (coupon_id, status),
    CONSTRAINT ck_orders_status CHECK (status IN ('PENDING', 'PAID', 'FAILED'))
) ENGINE = InnoDB;
