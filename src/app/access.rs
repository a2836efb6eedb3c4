//! Who is calling: bearer tokens verified against the identity provider's keys, and,
//! when this server is its own issuer, the documents clients verify its tokens with.

use std::sync::Arc;

use crate::adapters::oidc::{EmbeddedIssuer, TokenVerifier};
use crate::domain::identity::{IdentityError, Principal};

/// Verifies bearer tokens (api and ws roles).
pub struct Authenticator {
    verifier: TokenVerifier,
}

impl Authenticator {
    pub fn new(verifier: TokenVerifier) -> Self {
        Self { verifier }
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, IdentityError> {
        self.verifier.verify(token).await
    }

    /// A token verified before, answered from memory (no provider call to wait for).
    pub fn cached(&self, token: &str) -> Option<Principal> {
        self.verifier.cached(token)
    }
}

/// The built-in issuer's public documents: OIDC discovery and the JWKS.
pub struct IssuerDocuments {
    issuer: Arc<EmbeddedIssuer>,
}

impl IssuerDocuments {
    pub fn new(issuer: Arc<EmbeddedIssuer>) -> Self {
        Self { issuer }
    }

    pub fn discovery(&self) -> serde_json::Value {
        self.issuer.discovery_document()
    }

    pub fn jwks(&self) -> serde_json::Value {
        serde_json::to_value(self.issuer.keys().jwks()).unwrap_or_default()
    }
}
