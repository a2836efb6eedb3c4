-- When a coupon's sale state (stock, limits) was first put into Redis. Once set, a
-- missing state in Redis is a lost one (eviction, failover, flush) that only a
-- reconcile may rebuild; re-creating it at the full quantity would sell the stock twice.
-- Coupons that existed before this column had their state created when they were.
ALTER TABLE coupons ADD COLUMN sale_state_created_at DATETIME(6) NULL;
UPDATE coupons SET sale_state_created_at = created_at;
