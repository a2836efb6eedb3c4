//! Register, log in, promote: input parsing and rate limiting around the identity
//! provider.

use std::sync::Arc;

use crate::adapters::mysql::{MysqlPool, users};
use crate::adapters::oidc::KeycloakProvider;
use crate::adapters::oidc::password::{PasswordHashError, hash_password};
use crate::adapters::redis::rate_limit::{LoginLimiter, RegistrationLimiter};
use crate::domain::failure::Failure;
use crate::domain::identity::{Email, IdentityError, Password, UserId};
use crate::domain::ports::{IdentityProvider, IssuedToken};

pub struct Identity {
    provider: Arc<dyn IdentityProvider>,
    limiter: LoginLimiter,
    registrations: RegistrationLimiter,
}

impl Identity {
    pub fn new(
        provider: Arc<dyn IdentityProvider>,
        limiter: LoginLimiter,
        registrations: RegistrationLimiter,
    ) -> Self {
        Self {
            provider,
            limiter,
            registrations,
        }
    }

    /// Bad input is refused before the sign-up counts; the count comes before the
    /// provider (and its password hash).
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<UserId, IdentityError> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        self.registrations.attempt(client_ip).await?;
        let user_id = self.provider.register(&email, &password).await?;
        tracing::info!(user.id = %user_id, "user registered");
        Ok(user_id)
    }

    /// Counts the attempt first, so guessing is limited whether or not the e-mail exists.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<IssuedToken, IdentityError> {
        let normalised = email.trim().to_lowercase();
        self.limiter.attempt(&normalised, client_ip).await?;
        // A malformed e-mail or empty password is just a failed login: same answer.
        let email = Email::parse(&normalised).map_err(|_| IdentityError::InvalidCredentials)?;
        let password = Password::candidate(password)?;
        let token = self.provider.login(&email, &password).await?;
        // Limits guessing, not use: a successful login starts the e-mail's count afresh.
        self.limiter.forget_email(&normalised).await;
        Ok(token)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<IssuedToken, IdentityError> {
        if refresh_token.is_empty() {
            return Err(IdentityError::InvalidRefreshToken);
        }
        self.provider.refresh(refresh_token).await
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        if refresh_token.is_empty() {
            return Err(IdentityError::InvalidRefreshToken);
        }
        self.provider.logout(refresh_token).await
    }
}

/// The operators' account commands (`flash-sale user ...`), against whichever provider
/// is configured: the built-in issuer's users table, or Keycloak's admin API.
pub enum UserAdmin {
    Embedded(MysqlPool),
    Keycloak(Box<KeycloakProvider>),
}

impl UserAdmin {
    /// Creates the user unless the e-mail is taken; true when created.
    pub async fn create_user(&self, email: &str, password: &str) -> Result<bool, IdentityError> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        match self {
            Self::Embedded(mysql) => create_embedded_user(mysql, &email, &password).await,
            Self::Keycloak(keycloak) => match keycloak.register(&email, &password).await {
                Ok(_) => Ok(true),
                Err(IdentityError::EmailTaken) => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Grants (or takes away) the admin role; effective from the user's next login.
    pub async fn set_admin(&self, email: &str, is_admin: bool) -> Result<(), IdentityError> {
        let email = Email::parse(email)?;
        match self {
            Self::Embedded(mysql) => set_embedded_admin(mysql, &email, is_admin).await,
            Self::Keycloak(keycloak) => keycloak.set_admin(&email, is_admin).await,
        }
    }
}

async fn create_embedded_user(
    mysql: &MysqlPool,
    email: &Email,
    password: &Password,
) -> Result<bool, IdentityError> {
    let hash = hash_password(password.expose().to_owned())
        .await
        .map_err(|e| match e {
            PasswordHashError::Busy => IdentityError::Busy,
            other => IdentityError::Unavailable(Failure::unavailable(other)),
        })?;
    let mut conn = mysql
        .get()
        .await
        .map_err(|e| IdentityError::Unavailable(e.into()))?;
    let id = users::insert(&mut conn, email.as_str(), &hash)
        .await
        .map_err(|e| IdentityError::Unavailable(e.into()))?;
    Ok(id.is_some())
}

/// Grants (or revokes) the admin role of a built-in-issuer user (also used by tests).
pub async fn set_admin(
    mysql: &MysqlPool,
    email: &str,
    is_admin: bool,
) -> Result<(), IdentityError> {
    set_embedded_admin(mysql, &Email::parse(email)?, is_admin).await
}

async fn set_embedded_admin(
    mysql: &MysqlPool,
    email: &Email,
    is_admin: bool,
) -> Result<(), IdentityError> {
    let mut conn = mysql
        .get()
        .await
        .map_err(|e| IdentityError::Unavailable(e.into()))?;
    let found = users::set_admin(&mut conn, email.as_str(), is_admin)
        .await
        .map_err(|e| IdentityError::Unavailable(e.into()))?;
    if found {
        Ok(())
    } else {
        Err(IdentityError::UnknownUser(email.as_str().to_owned()))
    }
}
