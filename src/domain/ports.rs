//! Traits the application layer needs from the outside world. Only services that
//! cannot run here, or that a deployment may swap, get a trait (identity provider,
//! object store, payment gateway, search engine); MySQL, Redis and Kafka are used
//! directly and tested against real servers.

use crate::domain::identity::{Email, IdentityError, Password, UserId};

/// A token the identity provider issued at login or refresh.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Exchanged for a new access token before this one expires (providers with
    /// sessions, such as Keycloak; the built-in issuer has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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

/// Where coupon images live.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("object {0:?} not found")]
    NotFound(String),
    #[error("object key {0:?} is not allowed (use [A-Za-z0-9/._-], no '..')")]
    InvalidKey(String),
    #[error("object store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store call failed: {0}")]
    Remote(String),
    #[error("object store call timed out")]
    Timeout,
}

impl From<ObjectStoreError> for crate::domain::failure::Failure {
    fn from(error: ObjectStoreError) -> Self {
        Self::unavailable(error)
    }
}

/// A stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: bytes::Bytes,
    pub content_type: String,
}

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        content_type: &str,
    ) -> Result<(), ObjectStoreError>;
    async fn get(&self, key: &str) -> Result<StoredObject, ObjectStoreError>;
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError>;
    /// Readiness probe.
    async fn ping(&self) -> Result<(), ObjectStoreError>;
}

/// A search engine failed to answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchIndexError {
    #[error("search engine call failed")]
    Unavailable(#[source] crate::domain::failure::BoxError),
    #[error("search engine call timed out")]
    Timeout,
    #[error("search engine answered something unexpected: {0}")]
    Unexpected(String),
    #[error("search results could not be rendered")]
    Render(#[source] crate::domain::failure::BoxError),
}

/// The CPU work of a search left after the engine answered (marking the terms in the
/// text, writing the JSON), handed to [`SearchIndex::render`].
pub type RenderWork = Box<dyn FnOnce() -> Result<Vec<u8>, crate::domain::failure::BoxError> + Send>;

impl From<SearchIndexError> for crate::domain::failure::Failure {
    fn from(error: SearchIndexError) -> Self {
        match error {
            SearchIndexError::Unexpected(_) | SearchIndexError::Render(_) => Self::corrupt(error),
            other => Self::unavailable(other),
        }
    }
}

/// Finds coupons. The embedded engine is an index in each api process (tantivy), or
/// MySQL's own full-text index; a deployment can use OpenSearch instead. Callers load
/// the coupons by id from MySQL afterwards, so an engine that may lag behind an admin
/// change without bound can never show a deleted coupon; an engine that keeps its own
/// copy as current as the search results' stated delay answers with that copy instead
/// (see [`SearchIndex::current`]).
#[async_trait::async_trait]
pub trait SearchIndex: Send + Sync {
    /// Ids of the coupons that match, in the query's order: its page, plus one more
    /// when there is a next page.
    async fn search(
        &self,
        query: &crate::domain::search::SearchQuery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::domain::coupon::CouponId>, SearchIndexError>;

    /// Brings the engine up to date with a coupon after an admin change (a deleted
    /// coupon is removed). Engines that read MySQL directly need nothing.
    async fn sync(&self, coupon: &crate::domain::coupon::Coupon) -> Result<(), SearchIndexError>;

    /// Replaces the engine's whole content with these coupons (start-up, repair).
    async fn rebuild(
        &self,
        coupons: &[crate::domain::coupon::Coupon],
    ) -> Result<(), SearchIndexError>;

    /// Whether the engine keeps a copy of the coupons (then `sync` and `rebuild` matter);
    /// an engine that reads MySQL directly needs neither.
    fn keeps_a_copy(&self) -> bool;

    /// Whether each instance holds its own copy. Its results are then not shared
    /// through Redis: a copy a moment behind must not hand its results to the others,
    /// and answering costs about what the Redis round trip would.
    fn per_instance(&self) -> bool {
        false
    }

    /// The engine's own copy of these coupons, in the order of `ids`, leaving out any
    /// it no longer holds; `None` when the engine keeps no copy that is followed closely
    /// enough to answer with (callers then read MySQL).
    fn current(
        &self,
        _ids: &[crate::domain::coupon::CouponId],
    ) -> Option<Vec<crate::domain::coupon::Coupon>> {
        None
    }

    /// Runs the rest of a search's CPU work where the engine runs its searches: an
    /// engine with threads of its own runs it there, at their lower priority, so that
    /// a burst of searches waits for the purchase path instead of taking turns with
    /// it; the others run it on the caller's thread.
    async fn render(&self, work: RenderWork) -> Result<Vec<u8>, SearchIndexError> {
        work().map_err(SearchIndexError::Render)
    }

    /// The engine's name, for logs and metrics.
    fn name(&self) -> &'static str;
}
