//! Redis: the purchase gate, caches, leases and pub/sub. Every key is built by
//! [`keys::Keys`], so a namespace isolates deployments and test runs.

pub mod keys;
pub mod pool;
pub mod rate_limit;

pub use keys::Keys;
pub use pool::{RedisError, RedisPool};
