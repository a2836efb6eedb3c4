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

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Grant the admin role (effective at the user's next login).
    Promote { email: String },
    /// Revoke the admin role.
    Demote { email: String },
    /// Create a user if the e-mail is free (idempotent); the password is read from the
    /// FLASH_USER_PASSWORD environment variable so it stays out of shell history.
    Create {
        email: String,
        /// Also grant the admin role.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new RS256 private key (PKCS#8 PEM, mode 0600) to PATH; refuses to overwrite.
    Generate { path: PathBuf },
}
