-- Coupon search. The full-text index over name and description finds matches; the one
-- over name alone lets a name match rank above a description match. The first
-- FULLTEXT index makes InnoDB add its hidden FTS_DOC_ID column, which rebuilds the
-- table once (seconds at tens of thousands of coupons).
-- The other two indexes serve the "ending soon" and price sorts without a full scan.
ALTER TABLE coupons
  ADD FULLTEXT INDEX ft_coupons_name_description (name, description),
  ADD FULLTEXT INDEX ft_coupons_name (name),
  ADD INDEX idx_coupons_is_deleted_ends (is_deleted, sale_ends_at),
  ADD INDEX idx_coupons_is_deleted_price (is_deleted, price_cents);
