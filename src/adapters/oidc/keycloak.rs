//! Keycloak as the identity provider (production option).
//!
//! Registration goes through the admin REST API with the client's service account
//! (client-credentials grant, token cached until shortly before it expires); login goes
//! through the realm's token endpoint (resource-owner password grant). Tokens Keycloak
//! issues are verified like any other, through discovery + JWKS. The realm, client,
//! roles and audience mapper are in `deploy/keycloak/realm.json`.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::config::KeycloakSettings;
use crate::domain::identity::{Email, IdentityError, Password, UserId};
use crate::domain::ports::{IdentityProvider, IssuedToken};

pub struct KeycloakProvider {
    base_url: String,
    realm: String,
    client_id: String,
    client_secret: SecretString,
    http: reqwest::Client,
    service_token: Mutex<Option<(String, Instant)>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(serde::Deserialize)]
struct OAuthError {
    error: String,
}

fn unavailable(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unavailable(format!("Keycloak: {e}"))
}

impl KeycloakProvider {
    pub fn new(settings: &KeycloakSettings, timeout: Duration) -> Result<Self, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(unavailable)?;
        Ok(Self {
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            realm: settings.realm.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            http,
            service_token: Mutex::new(None),
        })
    }

    fn token_url(&self) -> String {
        format!(
            "{}/realms/{}/protocol/openid-connect/token",
            self.base_url, self.realm
        )
    }

    /// The service account's access token, renewed 30 s before it expires.
    async fn service_token(&self) -> Result<String, IdentityError> {
        let mut cached = self.service_token.lock().await;
        if let Some((token, valid_until)) = cached.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let response = self
            .http
            .post(self.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
            ])
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "service-account token request answered {}",
                response.status()
            )));
        }
        let token: TokenResponse = response.json().await.map_err(unavailable)?;
        let valid_for = Duration::from_secs(token.expires_in.saturating_sub(30));
        *cached = Some((token.access_token.clone(), Instant::now() + valid_for));
        Ok(token.access_token)
    }
}

#[async_trait::async_trait]
impl IdentityProvider for KeycloakProvider {
    async fn register(&self, email: &Email, password: &Password) -> Result<UserId, IdentityError> {
        let token = self.service_token().await?;
        let url = format!("{}/admin/realms/{}/users", self.base_url, self.realm);
        let body = serde_json::json!({
            "username": email.as_str(),
            "email": email.as_str(),
            "enabled": true,
            // The requirements have no e-mail verification.
            "emailVerified": true,
            "credentials": [{"type": "password", "value": password.expose(), "temporary": false}],
        });
        let response = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(unavailable)?;
        match response.status().as_u16() {
            201 => {
                // Keycloak answers with `Location: .../users/<uuid>` and no body.
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| unavailable("user created without a Location header"))?;
                let id = location.rsplit('/').next().unwrap_or_default();
                UserId::parse(id).map_err(|_| unavailable("unexpected user id in Location"))
            }
            409 => Err(IdentityError::EmailTaken),
            // Keycloak's password policy may be stricter than ours.
            400 => Err(IdentityError::WeakPassword(
                "the identity provider rejected this password",
            )),
            status => Err(unavailable(format!("user creation answered {status}"))),
        }
    }

    async fn login(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<IssuedToken, IdentityError> {
        let response = self
            .http
            .post(self.token_url())
            .form(&[
                ("grant_type", "password"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
                ("username", email.as_str()),
                ("password", password.expose()),
                ("scope", "openid"),
            ])
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status().as_u16();
        if status == 200 {
            let token: TokenResponse = response.json().await.map_err(unavailable)?;
            return Ok(IssuedToken {
                access_token: token.access_token,
                token_type: "Bearer",
                expires_in: token.expires_in,
            });
        }
        // 401 invalid_grant: wrong password or unknown user (Keycloak does not say which).
        let error = response.json::<OAuthError>().await.map(|e| e.error);
        match (status, error.as_deref()) {
            (400 | 401, Ok("invalid_grant")) => Err(IdentityError::InvalidCredentials),
            (_, error) => Err(unavailable(format!(
                "token endpoint answered {status} ({error:?})"
            ))),
        }
    }
}
