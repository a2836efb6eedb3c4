//! MySQL/MariaDB: a diesel-async pool over the pure-Rust `mysql_async` driver, the
//! embedded migrations, and the generated schema. MySQL is the record of truth for
//! users, coupons and orders; it is never on the purchase path.

pub mod consumer_offsets;
pub mod coupons;
pub mod migrate;
pub mod orders;
pub mod pool;
#[cfg(feature = "bench")]
pub mod sale_stock;
pub mod schema;
pub mod search;
pub mod users;

pub use pool::{MysqlError, MysqlPool};
