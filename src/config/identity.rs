//! Who the users are: the built-in issuer or Keycloak, and how tokens are checked.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    /// Built-in issuer: users in MySQL, RS256 tokens signed by this service.
    Embedded,
    /// Keycloak: registration through its admin API, login through its token endpoint.
    Keycloak,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    pub provider: IdentityProviderKind,
    /// The `iss` of accepted tokens and the base of the discovery document. Empty means
    /// this server's own address (single-process development and tests, embedded only).
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Clock skew accepted on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// Dot path of the roles array in the token (`roles`, or `realm_access.roles` for Keycloak).
    pub roles_claim: String,
    /// An unknown `kid` refetches the JWKS at most this often.
    pub jwks_min_refresh_secs: u64,
    pub http_timeout_ms: u64,
    /// Login attempts allowed per e-mail and per client IP in one minute.
    pub login_attempts_per_email: u32,
    pub login_attempts_per_ip: u32,
    /// Sign-ups allowed per client IP, and from everyone together, in one minute.
    pub registrations_per_ip: u32,
    pub registrations_total: u32,
    pub embedded: EmbeddedIssuerSettings,
    pub keycloak: KeycloakSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedIssuerSettings {
    pub token_ttl_secs: u64,
    /// PEM (PKCS#8) RSA private key that signs new tokens.
    pub signing_key: PathBuf,
    /// Retired keys still published in the JWKS until their tokens have expired.
    pub previous_signing_keys: Vec<PathBuf>,
    /// Create `signing_key` when the file does not exist (development).
    pub generate_key_if_missing: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeycloakSettings {
    /// e.g. `https://sso.example.com`; the realm issuer is `<base_url>/realms/<realm>`.
    pub base_url: String,
    pub realm: String,
    /// Confidential client with direct access grants and a service account allowed to
    /// manage users (`deploy/keycloak/realm.json`).
    pub client_id: String,
    pub client_secret: SecretString,
}
