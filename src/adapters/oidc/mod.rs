//! OpenID Connect: the built-in issuer (users in MySQL, RS256 tokens, discovery and
//! JWKS), the Keycloak adapter, and the verifier every role uses for bearer tokens.

pub mod issuer;
pub mod keycloak;
pub mod keys;
pub mod password;
pub mod verifier;

pub use issuer::EmbeddedIssuer;
pub use keycloak::KeycloakProvider;
pub use keys::SigningKeys;
pub use verifier::TokenVerifier;

/// Claims of the access tokens the built-in issuer signs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
    pub email: String,
    pub roles: Vec<String>,
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
