//! `flash-sale keys generate PATH`: a new signing key for the built-in issuer.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::adapters::oidc::keys::write_new_key;
use crate::roles::StartupError;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new RS256 private key (PKCS#8 PEM, mode 0600) to PATH; refuses to overwrite.
    Generate { path: PathBuf },
}

pub fn run(command: KeysCommand) -> Result<(), StartupError> {
    match command {
        KeysCommand::Generate { path } => generate(&path),
    }
}

fn generate(path: &Path) -> Result<(), StartupError> {
    write_new_key(path).map_err(StartupError::runtime)?;
    println!("wrote a new RS256 signing key to {}", path.display());
    Ok(())
}
