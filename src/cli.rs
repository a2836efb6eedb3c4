//! Command line: `flash-sale --role api|payment|ws|all` serves; subcommands run one-shot
//! administration tasks and exit.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::roles::Role;

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
}
