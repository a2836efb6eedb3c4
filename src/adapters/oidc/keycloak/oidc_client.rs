//! Keycloak's OpenID Connect endpoints through the `openidconnect` crate: discovery
//! (done once, on first use) and the password, refresh-token and client-credentials
//! grants. Token revocation (RFC 7009) is one form POST written here: the crate refuses a
//! revocation endpoint that is not HTTPS, and the local stack's Keycloak speaks plain HTTP
//! on loopback. Requests go through the adapter's own reqwest client, so every call is
//! bounded by its timeouts.

use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalProviderMetadata, AsyncHttpClient, ClientId, ClientSecret, EmptyAdditionalClaims,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse,
    IdTokenFields, IssuerUrl, OAuth2TokenResponse, RefreshToken, RequestTokenError,
    ResourceOwnerPassword, ResourceOwnerUsername, RevocationUrl, Scope, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::domain::ports::IssuedToken;

/// Keycloak's token answer carries how long the refresh token lasts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeycloakTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_expires_in: Option<u64>,
}
impl ExtraTokenFields for KeycloakTokenFields {}

/// The discovery document's revocation endpoint (not part of OIDC Core's metadata).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevocationEndpoint {
    revocation_endpoint: RevocationUrl,
}
impl AdditionalProviderMetadata for RevocationEndpoint {}

type ProviderMetadata = openidconnect::ProviderMetadata<
    RevocationEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type TokenResponse = StandardTokenResponse<
    IdTokenFields<
        EmptyAdditionalClaims,
        KeycloakTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// The crate's client with Keycloak's token fields.
type Client = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a grant or revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider refused, naming an OAuth error code (`invalid_grant`, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// Unreachable, timed out, or an answer that could not be understood.
    #[error("{0}")]
    Unavailable(String),
}

/// reqwest 0.13 behind the crate's HTTP client trait.
#[derive(Clone)]
pub struct Http(pub reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.0.execute(request).await?;
            let mut answer = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?.to_vec();
            // Status and headers came from a valid response: building cannot fail.
            Ok(answer
                .body(body)
                .unwrap_or_else(|_| openidconnect::http::Response::new(Vec::new())))
        })
    }
}

/// The realm's OpenID Connect client, configured from its discovery document.
pub struct OidcClient {
    client: Client,
    http: Http,
    revocation_url: RevocationUrl,
    client_id: String,
    client_secret: String,
}

impl OidcClient {
    /// Fetches the discovery document (and JWKS) of `issuer`.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        http: Http,
    ) -> Result<Self, OidcError> {
        let issuer = IssuerUrl::new(issuer.to_owned()).map_err(unavailable)?;
        let metadata = ProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(unavailable)?;
        let revocation_url = metadata.additional_metadata().revocation_endpoint.clone();
        let client = Client::from_provider_metadata(
            metadata,
            ClientId::new(client_id.to_owned()),
            Some(ClientSecret::new(client_secret.to_owned())),
        );
        Ok(Self {
            client,
            http,
            revocation_url,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        })
    }

    pub async fn password(&self, username: &str, password: &str) -> Result<IssuedToken, OidcError> {
        let username = ResourceOwnerUsername::new(username.to_owned());
        let password = ResourceOwnerPassword::new(password.to_owned());
        let request = self
            .client
            .exchange_password(&username, &password)
            .map_err(unavailable)?
            .add_scope(Scope::new("openid".into()));
        token(request.request_async(&self.http).await)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<IssuedToken, OidcError> {
        let refresh_token = RefreshToken::new(refresh_token.to_owned());
        let request = self
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(unavailable)?;
        token(request.request_async(&self.http).await)
    }

    pub async fn client_credentials(&self) -> Result<IssuedToken, OidcError> {
        let request = self
            .client
            .exchange_client_credentials()
            .map_err(unavailable)?;
        token(request.request_async(&self.http).await)
    }

    /// RFC 7009: 200 whether or not the token was still valid; 400 names an error.
    pub async fn revoke_refresh_token(&self, refresh_token: &str) -> Result<(), OidcError> {
        #[derive(Deserialize)]
        struct ErrorAnswer {
            error: String,
        }
        let response = self
            .http
            .0
            .post(self.revocation_url.url().clone())
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
            ])
            .send()
            .await
            .map_err(unavailable)?;
        match response.status().as_u16() {
            200 => Ok(()),
            400 => {
                let answer: ErrorAnswer = response.json().await.map_err(unavailable)?;
                Err(OidcError::Refused(answer.error))
            }
            status => Err(unavailable(format!("revocation answered {status}"))),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> OidcError {
    OidcError::Unavailable(e.to_string())
}

fn token<RE: std::error::Error + 'static>(
    answer: Result<
        TokenResponse,
        RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
    >,
) -> Result<IssuedToken, OidcError> {
    match answer {
        Ok(token) => Ok(IssuedToken {
            access_token: token.access_token().secret().clone(),
            token_type: "Bearer",
            expires_in: token.expires_in().map_or(0, |d| d.as_secs()),
            refresh_token: token.refresh_token().map(|t| t.secret().clone()),
            // Keycloak answers 0 for "no refresh token" (service accounts).
            refresh_expires_in: token
                .extra_fields()
                .extra_fields()
                .refresh_expires_in
                .filter(|secs| *secs > 0),
        }),
        Err(RequestTokenError::ServerResponse(e)) => {
            Err(OidcError::Refused(e.error().as_ref().to_owned()))
        }
        Err(e) => Err(unavailable(e)),
    }
}
