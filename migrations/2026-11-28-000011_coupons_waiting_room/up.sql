-- Shoppers admitted per second through a coupon's waiting room; NULL: no waiting room.
ALTER TABLE coupons ADD COLUMN waiting_room_per_sec INT NULL;
