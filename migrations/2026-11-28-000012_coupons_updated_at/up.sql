-- Each api instance keeps its own search index and follows the coupon changes made
-- elsewhere by asking, a few times a second, for the rows changed since it last looked.
-- This index makes that an index range read instead of a table scan.
CREATE INDEX idx_coupons_updated_at ON coupons (updated_at, id);
