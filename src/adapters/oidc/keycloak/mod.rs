//! Keycloak as the identity provider.
//!
//! Login, refresh and logout use the realm's OpenID Connect endpoints through the
//! `openidconnect` crate (`oidc_client`): password and refresh-token grants, revocation.
//! Registration and role changes have no OpenID Connect answer: they go through the admin
//! REST API with the client's service account (client-credentials grant, token cached
//! until shortly before it expires). Tokens Keycloak issues are verified like any other,
//! through discovery + JWKS. The realm, client, roles and audience mapper are in
//! `deploy/keycloak/realm.json`.

mod oidc_client;

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, OnceCell};

use oidc_client::{Http, OidcClient, OidcError};

use crate::config::KeycloakSettings;
use crate::domain::failure::Failure;
use crate::domain::identity::{Email, IdentityError, Password, UserId};
use crate::domain::ports::{IdentityProvider, IssuedToken};

pub struct KeycloakProvider {
    base_url: String,
    realm: String,
    /// The realm's issuer URL: where discovery starts.
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    http: reqwest::Client,
    /// Discovered on first use; a failed discovery is tried again on the next call.
    oidc: OnceCell<OidcClient>,
    service_token: Mutex<Option<(String, Instant)>>,
}

#[derive(serde::Deserialize)]
struct UserRepresentation {
    id: String,
}

fn unavailable(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unavailable(Failure::unavailable(format!("Keycloak: {e}")))
}

impl KeycloakProvider {
    /// `issuer` is the realm's `iss` (`identity.issuer`, `<keycloak>/realms/<realm>`);
    /// the admin API is reached at `settings.base_url`.
    pub fn new(
        settings: &KeycloakSettings,
        issuer: &str,
        timeout: Duration,
    ) -> Result<Self, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(unavailable)?;
        Ok(Self {
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            realm: settings.realm.clone(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            http,
            oidc: OnceCell::new(),
            service_token: Mutex::new(None),
        })
    }

    fn admin_url(&self, path: &str) -> String {
        format!("{}/admin/realms/{}/{path}", self.base_url, self.realm)
    }

    /// The realm's OpenID Connect client, discovered on first use.
    async fn oidc(&self) -> Result<&OidcClient, IdentityError> {
        self.oidc
            .get_or_try_init(|| {
                OidcClient::discover(
                    &self.issuer,
                    &self.client_id,
                    self.client_secret.expose_secret(),
                    Http(self.http.clone()),
                )
            })
            .await
            .map_err(unavailable)
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

    /// Grants (or takes away) the realm role `admin`; effective from the user's next
    /// login or refresh. The operators' path (`flash-sale user promote`). Reads only the
    /// user's own role mappings, so the service account needs no realm-wide rights.
    pub async fn set_admin(&self, email: &Email, is_admin: bool) -> Result<(), IdentityError> {
        let token = self.service_token().await?;
        let user = self.user_id(&token, email).await?;
        let mappings = self.admin_url(&format!("users/{user}/role-mappings/realm"));
        let current: Vec<serde_json::Value> = self.admin_get(&token, &mappings).await?;
        let held = current.into_iter().find(|role| role["name"] == "admin");
        let (request, role) = match (is_admin, held) {
            (true, Some(_)) | (false, None) => return Ok(()),
            (false, Some(role)) => (self.http.delete(&mappings), role),
            (true, None) => {
                let available: Vec<serde_json::Value> = self
                    .admin_get(&token, format!("{mappings}/available"))
                    .await?;
                let role = available
                    .into_iter()
                    .find(|role| role["name"] == "admin")
                    .ok_or_else(|| {
                        unavailable(format!(
                            "realm {} has no role named admin (see deploy/keycloak/realm.json)",
                            self.realm
                        ))
                    })?;
                (self.http.post(&mappings), role)
            }
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
            .oidc()
            .await?
            .client_credentials()
            .await
            .map_err(|error| unavailable(format!("service-account token: {error}")))?;
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
        // invalid_grant: wrong password or unknown user (Keycloak does not say which).
        match self
            .oidc()
            .await?
            .password(email.as_str(), password.expose())
            .await
        {
            Err(OidcError::Refused(error)) if error == "invalid_grant" => {
                Err(IdentityError::InvalidCredentials)
            }
            answer => answer.map_err(unavailable),
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<IssuedToken, IdentityError> {
        // invalid_grant: expired, revoked, from another client or realm, or garbage.
        match self.oidc().await?.refresh(refresh_token).await {
            Err(OidcError::Refused(error))
                if error == "invalid_grant" || error == "invalid_request" =>
            {
                Err(IdentityError::InvalidRefreshToken)
            }
            answer => answer.map_err(unavailable),
        }
    }

    /// Revocation ends the session's client session at Keycloak, so the refresh token
    /// (and any later refresh) is refused.
    async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        match self.oidc().await?.revoke_refresh_token(refresh_token).await {
            // A token that is not one of ours: nothing to end.
            Err(OidcError::Refused(_)) => Err(IdentityError::InvalidRefreshToken),
            answer => answer.map_err(unavailable),
        }
    }
}
