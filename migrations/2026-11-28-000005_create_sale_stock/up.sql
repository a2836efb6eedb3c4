-- Stock kept in MySQL, used only by the purchase strategies the requirements rejected
-- (pessimistic and optimistic locking), which `make bench` measures against the Redis
-- gate. The Redis strategy (the default) never touches this table.
CREATE TABLE sale_stock (
    coupon_id BIGINT NOT NULL PRIMARY KEY,
    remaining INT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT ck_sale_stock_remaining CHECK (remaining >= 0)
) ENGINE = InnoDB;
