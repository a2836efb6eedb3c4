ALTER TABLE coupons DROP COLUMN sale_state_created_at;
