ALTER TABLE coupons
  DROP INDEX ft_coupons_name_description,
  DROP INDEX ft_coupons_name,
  DROP INDEX idx_coupons_is_deleted_ends,
  DROP INDEX idx_coupons_is_deleted_price;
