//! Traits the application layer needs from the outside world. Only services that
//! cannot run here get a trait (identity provider, object store, payment gateway);
//! MySQL, Redis and Kafka are used directly and tested against real servers.

use crate::domain::identity::{Email, IdentityError, Password, UserId};

/// A token the identity provider issued at login or refresh.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Exchanged for a new access token before this one expires (providers with
    /// sessions, such as Keycloak; the built-in issuer has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
}

/// Registers users and logs them in. Verification of the tokens it issues does not go
/// through this trait: every role verifies through discovery + JWKS, whoever issued.
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync {
    async fn register(&self, email: &Email, password: &Password) -> Result<UserId, IdentityError>;
    async fn login(&self, email: &Email, password: &Password)
    -> Result<IssuedToken, IdentityError>;
    /// A new access token for a refresh token from an earlier login or refresh.
    async fn refresh(&self, refresh_token: &str) -> Result<IssuedToken, IdentityError>;
    /// Ends the session behind a refresh token: it can no longer be refreshed.
    async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError>;
}

/// Charges an order. Implementations must be idempotent on the order id (a retried
/// charge after a crash gets the first answer), as real gateways are.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync {
    async fn charge(
        &self,
        order: crate::domain::order::OrderId,
        amount_cents: i64,
    ) -> crate::domain::payment::PaymentOutcome;
}
