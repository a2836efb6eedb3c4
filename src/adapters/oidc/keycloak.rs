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
    refresh_token: Option<String>,
    refresh_expires_in: Option<u64>,
}

impl From<TokenResponse> for IssuedToken {
    fn from(token: TokenResponse) -> Self {
        Self {
            access_token: token.access_token,
            token_type: "Bearer",
            expires_in: token.expires_in,
            // Keycloak answers 0 for "no refresh token" (offline or service accounts).
            refresh_expires_in: token.refresh_expires_in.filter(|secs| *secs > 0),
            refresh_token: token.refresh_token,
        }
    }
}

#[derive(serde::Deserialize)]
struct OAuthError {
    error: String,
}

#[derive(serde::Deserialize)]
struct UserRepresentation {
    id: String,
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

    /// An endpoint of the realm's OpenID Connect protocol: `token`, `revoke`, ...
    fn oidc_url(&self, endpoint: &str) -> String {
        format!(
            "{}/realms/{}/protocol/openid-connect/{endpoint}",
            self.base_url, self.realm
        )
    }

    fn admin_url(&self, path: &str) -> String {
        format!("{}/admin/realms/{}/{path}", self.base_url, self.realm)
    }

    /// A grant at the token endpoint, authenticated as the client. `Ok(Err(error))` is
    /// the OAuth error Keycloak named (e.g. `invalid_grant`) for the caller to map.
    async fn grant(
        &self,
        form: &[(&str, &str)],
    ) -> Result<Result<IssuedToken, String>, IdentityError> {
        let response = self
            .http
            .post(self.oidc_url("token"))
            .form(&self.client_form(form))
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status().as_u16();
        if status == 200 {
            let token: TokenResponse = response.json().await.map_err(unavailable)?;
            return Ok(Ok(token.into()));
        }
        match (status, response.json::<OAuthError>().await) {
            (400 | 401, Ok(error)) => Ok(Err(error.error)),
            (_, error) => Err(unavailable(format!(
                "token endpoint answered {status} ({:?})",
                error.map(|e| e.error).ok()
            ))),
        }
    }

    /// `form` plus the client's own credentials.
    fn client_form<'a>(&'a self, form: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut full = vec![
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        full.extend_from_slice(form);
        full
    }

    /// A GET of the admin API as the service account.
    async fn admin_get<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        url: impl reqwest::IntoUrl,
    ) -> Result<T, IdentityError> {
        self.http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }

    /// The Keycloak id of the user with this e-mail.
    async fn user_id(&self, token: &str, email: &Email) -> Result<String, IdentityError> {
        let url = url::Url::parse_with_params(
            &self.admin_url("users"),
            [("email", email.as_str()), ("exact", "true")],
        )
        .map_err(unavailable)?;
        let users: Vec<UserRepresentation> = self.admin_get(token, url).await?;
        users
            .into_iter()
            .next()
            .map(|u| u.id)
            .ok_or_else(|| IdentityError::UnknownUser(email.as_str().to_owned()))
    }

    /// Ok when the user's realm roles (at `mappings`) include `admin`.
    async fn ensure_has_admin(&self, token: &str, mappings: &str) -> Result<(), IdentityError> {
        let roles: Vec<serde_json::Value> = self.admin_get(token, mappings).await?;
        if roles.iter().any(|role| role["name"] == "admin") {
            Ok(())
        } else {
            Err(unavailable(format!(
                "realm {} has no role named admin (see deploy/keycloak/realm.json)",
                self.realm
            )))
        }
    }

    /// Grants (or takes away) the realm role `admin`; effective from the user's next
    /// login or refresh. The operators' path (`flash-sale user promote`).
    pub async fn set_admin(&self, email: &Email, is_admin: bool) -> Result<(), IdentityError> {
        let token = self.service_token().await?;
        let user = self.user_id(&token, email).await?;
        // The user's current realm roles, or those it could be given: both need only the
        // service account's user permissions (reading the realm's roles would need more).
        let mappings = self.admin_url(&format!("users/{user}/role-mappings/realm"));
        let listing = if is_admin {
            format!("{mappings}/available")
        } else {
            mappings.clone()
        };
        let roles: Vec<serde_json::Value> = self.admin_get(&token, listing).await?;
        let Some(role) = roles.into_iter().find(|role| role["name"] == "admin") else {
            // Already as asked (or the realm has no admin role to give: said below).
            return if is_admin {
                self.ensure_has_admin(&token, &mappings).await
            } else {
                Ok(())
            };
        };
        let request = if is_admin {
            self.http.post(mappings)
        } else {
            self.http.delete(mappings)
        };
        request
            .bearer_auth(&token)
            .json(&[role])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?;
        Ok(())
    }

    /// The service account's access token, renewed 30 s before it expires.
    async fn service_token(&self) -> Result<String, IdentityError> {
        let mut cached = self.service_token.lock().await;
        if let Some((token, valid_until)) = cached.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let token = self
            .grant(&[("grant_type", "client_credentials")])
            .await?
            .map_err(|error| unavailable(format!("service-account token refused: {error}")))?;
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
        let answer = self
            .grant(&[
                ("grant_type", "password"),
                ("username", email.as_str()),
                ("password", password.expose()),
                ("scope", "openid"),
            ])
            .await?;
        // invalid_grant: wrong password or unknown user (Keycloak does not say which).
        answer.map_err(|error| match error.as_str() {
            "invalid_grant" => IdentityError::InvalidCredentials,
            _ => unavailable(format!("password grant refused: {error}")),
        })
    }

    async fn refresh(&self, refresh_token: &str) -> Result<IssuedToken, IdentityError> {
        let answer = self
            .grant(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await?;
        // invalid_grant: expired, revoked, from another client or realm, or garbage.
        answer.map_err(|error| match error.as_str() {
            "invalid_grant" | "invalid_request" => IdentityError::InvalidRefreshToken,
            _ => unavailable(format!("refresh grant refused: {error}")),
        })
    }

    /// Token revocation (RFC 7009): Keycloak ends the session's client session, so the
    /// refresh token (and any later refresh) is refused.
    async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        let response = self
            .http
            .post(self.oidc_url("revoke"))
            .form(&self.client_form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ]))
            .send()
            .await
            .map_err(unavailable)?;
        match response.status().as_u16() {
            200 => Ok(()),
            // A token that is not one of ours: nothing to end.
            400 => Err(IdentityError::InvalidRefreshToken),
            status => Err(unavailable(format!("revocation answered {status}"))),
        }
    }
}
