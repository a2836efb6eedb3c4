//! The built-in OpenID Connect issuer: users in MySQL with argon2id hashes, e-mail as the
//! login, RS256 access tokens, discovery document and JWKS. No e-mail verification and
//! no password change, per the requirements.

use std::sync::Arc;

use super::password::{PasswordHashError, hash_password, verify_password};
use super::{AccessClaims, SigningKeys, now_secs};
use crate::adapters::mysql::{MysqlPool, users};
use crate::domain::failure::{BoxError, Failure};
use crate::domain::identity::{Email, IdentityError, Password, UserId};
use crate::domain::ports::{IdentityProvider, IssuedToken};

pub struct EmbeddedIssuer {
    mysql: MysqlPool,
    keys: Arc<SigningKeys>,
    issuer: String,
    audience: String,
    token_ttl_secs: u64,
    /// Verified against when the e-mail is unknown, so both failures cost the same time.
    dummy_hash: Arc<str>,
}

impl EmbeddedIssuer {
    pub async fn new(
        mysql: MysqlPool,
        keys: Arc<SigningKeys>,
        issuer: String,
        audience: String,
        token_ttl_secs: u64,
    ) -> Result<Self, IdentityError> {
        let dummy_hash = hash_password("not-a-real-password".to_owned())
            .await
            .map_err(unavailable)?;
        Ok(Self {
            mysql,
            keys,
            issuer,
            audience,
            token_ttl_secs,
            dummy_hash: dummy_hash.into(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// `/.well-known/openid-configuration`.
    pub fn discovery_document(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "token_endpoint": format!("{}/api/auth/login", self.issuer),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "email", "roles", "iss", "aud", "exp", "iat", "nbf", "jti"],
        })
    }

    /// Signs an access token for `sub` (also used by tests and the CLI).
    pub fn issue(
        &self,
        sub: &str,
        email: &str,
        is_admin: bool,
    ) -> Result<IssuedToken, IdentityError> {
        let now = now_secs();
        let mut roles = vec!["user".to_owned()];
        if is_admin {
            roles.push("admin".to_owned());
        }
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: self.audience.clone(),
            exp: now + self.token_ttl_secs,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::now_v7().to_string(),
            email: email.to_owned(),
            roles,
        };
        let access_token = self
            .keys
            .sign(&claims)
            .map_err(|e| IdentityError::Unavailable(Failure::unavailable(e)))?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.token_ttl_secs,
            refresh_token: None,
            refresh_expires_in: None,
        })
    }
}

fn unavailable(e: impl Into<BoxError>) -> IdentityError {
    IdentityError::Unavailable(Failure::unavailable(e))
}

fn hashing(e: PasswordHashError) -> IdentityError {
    match e {
        PasswordHashError::Busy => IdentityError::Busy,
        other => unavailable(other),
    }
}

#[async_trait::async_trait]
impl IdentityProvider for EmbeddedIssuer {
    /// A taken e-mail is refused before hashing (409 tells that much anyway), so
    /// replays of a sign-up cost no hashing; the insert still decides races.
    async fn register(&self, email: &Email, password: &Password) -> Result<UserId, IdentityError> {
        let taken = self
            .mysql
            .with_conn(async |conn| users::find_by_email(conn, email.as_str()).await)
            .await
            .map_err(unavailable)?
            .is_some();
        if taken {
            return Err(IdentityError::EmailTaken);
        }
        let hash = hash_password(password.expose().to_owned())
            .await
            .map_err(hashing)?;
        let mut conn = self.mysql.get().await.map_err(unavailable)?;
        match users::insert(&mut conn, email.as_str(), &hash)
            .await
            .map_err(unavailable)?
        {
            Some(id) => UserId::parse(&id.to_string()),
            None => Err(IdentityError::EmailTaken),
        }
    }

    async fn login(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<IssuedToken, IdentityError> {
        let user = {
            let mut conn = self.mysql.get().await.map_err(unavailable)?;
            users::find_by_email(&mut conn, email.as_str())
                .await
                .map_err(unavailable)?
        };
        let hash = user.as_ref().map_or_else(
            || self.dummy_hash.clone(),
            |u| Arc::from(u.password_hash.as_str()),
        );
        let matches = verify_password(password.expose().to_owned(), hash)
            .await
            .map_err(hashing)?;
        match user {
            Some(user) if matches => self.issue(&user.id.to_string(), &user.email, user.is_admin),
            _ => Err(IdentityError::InvalidCredentials),
        }
    }

    /// The built-in issuer keeps no sessions and issues no refresh tokens: a shopper
    /// logs in again when the access token expires.
    async fn refresh(&self, _refresh_token: &str) -> Result<IssuedToken, IdentityError> {
        Err(IdentityError::InvalidRefreshToken)
    }

    async fn logout(&self, _refresh_token: &str) -> Result<(), IdentityError> {
        Ok(())
    }
}
