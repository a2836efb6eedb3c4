-- Units bought per user, for the MySQL purchase strategies (see sale_stock).
CREATE TABLE sale_buyers (
    coupon_id BIGINT NOT NULL,
    user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    units INT NOT NULL,
    PRIMARY KEY (coupon_id, user_id)
) ENGINE = InnoDB;
