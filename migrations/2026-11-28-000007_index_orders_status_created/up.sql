-- The payment role resumes interrupted payments page by page: PENDING orders in the
-- order they were placed, continuing after the last (created_at, id) seen.
CREATE INDEX idx_orders_status_created ON orders (status, created_at, id);
