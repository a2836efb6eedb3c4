DROP INDEX idx_coupons_updated_at ON coupons;
