//! Bearer-token verification for every role, against any OpenID Connect provider.
//!
//! The provider is found through its discovery document (`<issuer>/.well-known/
//! openid-configuration`) and its keys through the JWKS it names, so switching from the
//! built-in issuer to Keycloak is configuration only. Keys are cached and refetched when
//! a token names an unknown `kid` (at most once per `jwks_min_refresh_secs`). Only RS256
//! is accepted; issuer, audience, expiry and not-before are checked with bounded skew.
//!
//! Verified tokens are cached by their SHA-256 until they expire: RS256 verification
//! costs tens of microseconds a core, and a shopper sends the same token many times.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use prometheus::IntCounter;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

use super::now_secs;
use crate::config::IdentitySettings;
use crate::domain::failure::Failure;
use crate::domain::identity::{IdentityError, Principal, Role, UserId};

/// How many verified tokens are remembered.
const VERIFIED_CACHE_CAPACITY: usize = 100_000;

pub struct TokenVerifier {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    roles_claim: Vec<String>,
    min_refresh: Duration,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    /// Serialises refetches and remembers when the last attempt happened (successful or
    /// not: a provider that is down is not asked again before `min_refresh`).
    last_refresh: Mutex<Option<Instant>>,
    /// Longest a request waits for someone else's refetch when it has no key at all.
    refresh_wait: Duration,
    verified: Cache<[u8; 32], Principal>,
    fetch_failures: IntCounter,
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl TokenVerifier {
    /// `issuer` is the resolved issuer URL (the configured one, or this server's address).
    pub fn new(settings: &IdentitySettings, issuer: String) -> Result<Self, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.http_timeout_ms))
            .connect_timeout(Duration::from_millis(settings.http_timeout_ms))
            .build()
            .map_err(|e| IdentityError::Unavailable(Failure::unavailable(e)))?;
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: settings.audience.clone(),
            leeway_secs: settings.leeway_secs,
            roles_claim: settings.roles_claim.split('.').map(str::to_owned).collect(),
            min_refresh: Duration::from_secs(settings.jwks_min_refresh_secs),
            http,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            // Discovery and JWKS: two calls, each bounded by the HTTP timeout.
            refresh_wait: Duration::from_millis(settings.http_timeout_ms) * 2,
            verified: Cache::new(VERIFIED_CACHE_CAPACITY),
            fetch_failures: IntCounter::new(
                "jwks_fetch_failures_total",
                "Failed fetches of the identity provider's signing keys",
            )
            .map_err(|e| IdentityError::Unavailable(Failure::unavailable(e)))?,
        })
    }

    /// The verifier's metric, for the role's registry.
    pub fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.fetch_failures.clone())
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies a bearer token and returns its principal. Every malformed or unacceptable
    /// token is `Unauthorized`; only an unreachable provider is `Unavailable`.
    pub async fn verify(&self, token: &str) -> Result<Principal, IdentityError> {
        if let Some(principal) = self.cached(token) {
            return Ok(principal);
        }
        let principal = self.verify_uncached(token).await?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.verified.insert(digest, principal.clone());
        Ok(principal)
    }

    /// The principal of a token verified before and not expired since, without waiting.
    pub fn cached(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let principal = self.verified.get(&digest)?;
        if principal.expires_at.saturating_add(self.leeway_secs) > now_secs() {
            return Some(principal);
        }
        self.verified.remove(&digest);
        None
    }

    async fn verify_uncached(&self, token: &str) -> Result<Principal, IdentityError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| IdentityError::Unauthorized("malformed token"))?;
        if header.alg != Algorithm::RS256 {
            return Err(IdentityError::Unauthorized("token algorithm must be RS256"));
        }
        let kid = header
            .kid
            .ok_or(IdentityError::Unauthorized("token has no key id"))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| IdentityError::Unauthorized(rejection(e.kind())))?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &serde_json::Value) -> Result<Principal, IdentityError> {
        let sub = claims["sub"]
            .as_str()
            .ok_or(IdentityError::Unauthorized("token has no subject"))?;
        let mut roles_value = claims;
        for part in &self.roles_claim {
            roles_value = &roles_value[part.as_str()];
        }
        let mut roles: Vec<Role> = roles_value
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|r| r.as_str().and_then(Role::parse))
                    .collect()
            })
            .unwrap_or_default();
        if !roles.contains(&Role::User) {
            // Any authenticated subject may shop; admin must be granted explicitly.
            roles.insert(0, Role::User);
        }
        Ok(Principal {
            user_id: UserId::parse(sub)?,
            email: claims["email"].as_str().map(str::to_owned),
            roles,
            expires_at: claims["exp"].as_u64().unwrap_or(0),
        })
    }

    /// The decoding key for `kid`, refetching the JWKS when it is unknown (at most once
    /// per `min_refresh`, successful or not). While some keys are known, a token whose
    /// key is not among them is refused (401) rather than waited for: the provider being
    /// slow or down must not make every such request wait or answer 503.
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, IdentityError> {
        const UNKNOWN: IdentityError =
            IdentityError::Unauthorized("token signed by an unknown key");
        let know_some = {
            let keys = self.keys.read().await;
            if let Some(key) = keys.get(kid) {
                return Ok(key.clone());
            }
            !keys.is_empty()
        };
        let mut last = if know_some {
            // Another request is refetching: not worth waiting for on an unknown key.
            self.last_refresh.try_lock().map_err(|_| UNKNOWN)?
        } else {
            tokio::time::timeout(self.refresh_wait, self.last_refresh.lock())
                .await
                .map_err(|_| {
                    IdentityError::Unavailable(Failure::unavailable(
                        "the identity provider's keys are still being fetched",
                    ))
                })?
        };
        // Someone else may have refreshed while we waited for the lock.
        let known_now = {
            let keys = self.keys.read().await;
            if let Some(key) = keys.get(kid) {
                return Ok(key.clone());
            }
            !keys.is_empty()
        };
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return Err(if known_now {
                UNKNOWN
            } else {
                IdentityError::Unavailable(Failure::unavailable(
                    "the identity provider's keys could not be fetched",
                ))
            });
        }
        *last = Some(Instant::now());
        let fetched = match self.fetch_keys().await {
            Ok(fetched) => fetched,
            Err(error) => {
                self.fetch_failures.inc();
                tracing::warn!(issuer = %self.issuer, %error, "could not fetch the provider's signing keys");
                // The keys we have still verify the tokens they signed.
                return Err(if known_now { UNKNOWN } else { error });
            }
        };
        let mut keys = self.keys.write().await;
        *keys = fetched;
        keys.get(kid).cloned().ok_or(UNKNOWN)
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<DecodingKey>>, IdentityError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery: Discovery = self.get_json(&url).await?;
        if discovery.issuer.trim_end_matches('/') != self.issuer {
            return Err(IdentityError::Unavailable(Failure::corrupt(format!(
                "discovery document at {url} names issuer {:?}, expected {:?}",
                discovery.issuer, self.issuer
            ))));
        }
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let keys: HashMap<_, _> = jwks
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, Arc::new(key)))
            })
            .collect();
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the provider's signing keys");
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, IdentityError> {
        let unavailable = |e: reqwest::Error| {
            IdentityError::Unavailable(Failure::unavailable(format!("GET {url}: {e}")))
        };
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }
}

fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "token has expired",
        ErrorKind::ImmatureSignature => "token is not valid yet",
        ErrorKind::InvalidIssuer => "token was issued by another issuer",
        ErrorKind::InvalidAudience => "token is meant for another audience",
        ErrorKind::InvalidSignature => "token signature does not verify",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        ErrorKind::InvalidAlgorithm => "token algorithm must be RS256",
        _ => "malformed token",
    }
}
