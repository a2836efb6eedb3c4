ALTER TABLE coupons DROP COLUMN waiting_room_per_sec;
