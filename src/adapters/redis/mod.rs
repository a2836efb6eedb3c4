//! Redis: the purchase gate, caches and pub/sub. Every key is built by
//! [`keys::Keys`], so a namespace isolates deployments and test runs.

pub mod catalog_cache;
pub mod coupon_state;
pub mod keys;
pub mod notifier;
pub mod pending_orders;
pub mod pool;
mod pooled;
pub mod rate_limit;
pub mod rebuild_lock;
pub mod scripts;
pub mod slot_router;
pub mod stock_gate;
pub mod waiting_room;
pub mod ws_routes;

pub use keys::Keys;
pub use pool::{RedisError, RedisPool};
