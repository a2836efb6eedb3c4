DROP TABLE sale_buyers;
