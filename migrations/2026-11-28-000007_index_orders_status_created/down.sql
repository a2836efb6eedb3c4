DROP INDEX idx_orders_status_created ON orders;
