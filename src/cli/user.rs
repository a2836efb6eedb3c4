//! `flash-sale user …`: manage accounts with whichever identity provider is configured.

use std::time::Duration;

use clap::Subcommand;

use crate::adapters::oidc::KeycloakProvider;
use crate::app::identity::UserAdmin;
use crate::config::{IdentityProviderKind, Settings};
use crate::roles::StartupError;

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

pub async fn run(settings: &Settings, command: UserCommand) -> Result<(), StartupError> {
    let accounts = match settings.identity.provider {
        IdentityProviderKind::Embedded => UserAdmin::Embedded(super::mysql(settings)?),
        IdentityProviderKind::Keycloak => UserAdmin::Keycloak(Box::new(
            KeycloakProvider::new(
                &settings.identity.keycloak,
                &settings.identity.issuer,
                Duration::from_millis(settings.identity.http_timeout_ms),
            )
            .map_err(StartupError::runtime)?,
        )),
    };
    match command {
        UserCommand::Promote { email } => {
            accounts
                .set_admin(&email, true)
                .await
                .map_err(StartupError::runtime)?;
            println!("{email} is now an admin (from their next login)");
        }
        UserCommand::Demote { email } => {
            accounts
                .set_admin(&email, false)
                .await
                .map_err(StartupError::runtime)?;
            println!("{email} is no longer an admin (from their next login)");
        }
        UserCommand::Create { email, admin } => {
            let password = std::env::var("FLASH_USER_PASSWORD").map_err(|_| {
                StartupError::Configuration(
                    "set FLASH_USER_PASSWORD to the new user's password".into(),
                )
            })?;
            let created = accounts
                .create_user(&email, &password)
                .await
                .map_err(StartupError::runtime)?;
            if admin {
                accounts
                    .set_admin(&email, true)
                    .await
                    .map_err(StartupError::runtime)?;
            }
            let state = if created { "created" } else { "already exists" };
            println!("{email}: {state}{}", if admin { ", admin" } else { "" });
        }
    }
    Ok(())
}
