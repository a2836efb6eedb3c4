-- Coupons on sale. Soft-deleted rows keep `is_deleted = TRUE` so orders still point at
-- them; the browse query `WHERE is_deleted = FALSE ORDER BY id LIMIT ?` is served by the
-- composite index (is_deleted, id): a range scan in key order, no filesort.
CREATE TABLE coupons (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    description TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    image_key VARCHAR(512) NULL,
    total_quantity INT NOT NULL,
    per_user_limit INT NOT NULL DEFAULT 1,
    sale_starts_at DATETIME(6) NOT NULL,
    sale_ends_at DATETIME(6) NOT NULL,
    is_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY idx_coupons_is_deleted_id (is_deleted, id),
    CONSTRAINT ck_coupons_price CHECK (price_cents >= 0),
    CONSTRAINT ck_coupons_quantity CHECK (total_quantity >= 0),
    CONSTRAINT ck_coupons_limit CHECK (per_user_limit >= 1),
    CONSTRAINT ck_coupons_window CHECK (sale_ends_at > sale_starts_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
