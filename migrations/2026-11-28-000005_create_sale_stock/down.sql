DROP TABLE sale_stock;
