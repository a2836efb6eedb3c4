//! Command line: `flash-sale --role api|payment|ws|all` serves; subcommands run one-shot
//! administration tasks and exit.

pub mod audit;
pub mod keys;
pub mod migrate;
pub mod reconcile;
pub mod seed_demo;
pub mod serve;
pub mod user;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::adapters::mysql::MysqlPool;
use crate::adapters::redis::{Keys, RedisPool, stock_gate::StockGate};
use crate::config::Settings;
use crate::roles::{Role, StartupError};

pub use keys::KeysCommand;
pub use user::UserCommand;

#[derive(Debug, Parser)]
#[command(
    name = "flash-sale",
    version,
    about = "Flash-sale coupon system: one binary, several roles"
)]
pub struct Cli {
    /// Which part of the system this process runs.
    #[arg(long, env = "FLASH_ROLE", value_enum, default_value_t = Role::All, global = true)]
    pub role: Role,

    /// Directory holding default.toml and the <FLASH_ENV>.toml overlays.
    #[arg(
        long,
        env = "FLASH_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    pub config_dir: PathBuf,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chosen role until SIGTERM/SIGINT (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Insert demo coupons when the catalog is empty (development), and exit.
    SeedDemo,
    /// Rebuild a coupon's Redis sale state (stock, buyers) from MySQL orders and the
    /// order events not yet consumed, after a Redis loss; prints what changed.
    Reconcile {
        /// The coupon's id.
        coupon_id: i64,
    },
    /// Check every live sale in Redis: stock + units held by buyers must equal the
    /// total. Prints one line per coupon; exits 1 when any sale drifted or lost its state.
    Audit,
    /// Manage users of the built-in identity provider.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the built-in issuer's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

fn mysql(settings: &Settings) -> Result<MysqlPool, StartupError> {
    MysqlPool::new(&settings.mysql).map_err(StartupError::runtime)
}

fn stock_gate(settings: &Settings) -> Result<StockGate, StartupError> {
    let redis = RedisPool::new(&settings.redis).map_err(StartupError::runtime)?;
    Ok(StockGate::new(
        redis,
        Keys::new(settings.redis.namespace.clone()),
        Duration::from_secs(settings.purchase.idempotency_ttl_secs),
    ))
}
