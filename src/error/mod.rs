//! The one place errors become HTTP responses.
//!
//! Domain and adapter errors keep their own `thiserror` types and know nothing of HTTP;
//! [`AppError`] wraps them and decides which [`ErrorCode`] answers each
//! (`AppError::describe`); the code fixes the status. Every error body has the shape
//! `{"error": {"code": "SOLD_OUT", "message": "..."}}` plus structured fields where they
//! apply (`field`, `max_bytes`, `max_size`, `retry_after_secs`). Bugs and corrupt data
//! are logged once here with their cause chain and reach the client as an opaque 500;
//! dependency outages are logged and answered 503 SERVER_BUSY with Retry-After.

use crate::telemetry::{LogThrottle, REPEATED_ERROR_EVERY};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub mod code;

pub use code::ErrorCode;

use crate::app::catalog::AdminError;
use crate::app::throttle::Throttled;
use crate::domain::coupon::CatalogError;
use crate::domain::failure::{Failure, chain};
use crate::domain::identity::IdentityError;
use crate::domain::order::{OrderError, PurchaseError, PurchaseRejection};
use crate::live::hub::HubError;

/// Every error body: `{"error": {...}}`. 503 SERVER_BUSY, 429 TOO_MANY_ATTEMPTS and
/// TOO_MANY_REQUESTS also carry the `Retry-After` header, 401 UNAUTHORIZED
/// `WWW-Authenticate: Bearer`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; clients switch on `code` and the structured fields.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<&'static str>,
    /// The largest accepted upload (IMAGE_TOO_LARGE).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub max_bytes: Option<usize>,
    /// The largest accepted page size (INVALID_PAGE).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub max_size: Option<u32>,
    /// Seconds to wait before retrying, as in `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request could not be parsed (bad JSON, bad query string, bad path segment).
    #[error("{0}")]
    BadRequest(String),
    /// No route matches the path.
    #[error("no such endpoint")]
    RouteNotFound,
    /// The path exists with other methods: the `Allow` header's value.
    #[error("this endpoint takes {0}")]
    MethodNotAllowed(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Purchase(#[from] PurchaseError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Sockets(#[from] HubError),
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// This instance is stopping; another one serves the request.
    #[error("this instance is restarting; connect again")]
    Draining,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// How an error is answered.
struct Described<'a> {
    code: ErrorCode,
    field: Option<&'static str>,
    max_bytes: Option<usize>,
    max_size: Option<u32>,
    retry_after: Option<u64>,
    /// A dependency failure: logged with its cause chain; the client hears a generic
    /// message (a dependency's detail is not the client's business).
    failure: Option<&'a Failure>,
}

impl<'a> Described<'a> {
    fn new(code: ErrorCode) -> Self {
        Self {
            code,
            field: None,
            max_bytes: None,
            max_size: None,
            retry_after: code.retry_after(),
            failure: None,
        }
    }

    fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 503 for an outage, 500 for corrupt data.
    fn failure(failure: &'a Failure) -> Self {
        let code = if failure.is_corrupt() {
            ErrorCode::Internal
        } else {
            ErrorCode::ServerBusy
        };
        Self {
            failure: Some(failure),
            ..Self::new(code)
        }
    }
}

impl AppError {
    /// The status table: which code each error is answered with.
    fn describe(&self) -> Described<'_> {
        use ErrorCode as C;
        match self {
            Self::BadRequest(_) => Described::new(C::InvalidRequest),
            Self::RouteNotFound => Described::new(C::NotFound),
            Self::MethodNotAllowed(_) => Described::new(C::MethodNotAllowed),
            Self::Identity(e) => match e {
                IdentityError::InvalidEmail(_) => Described::new(C::InvalidEmail).field("email"),
                IdentityError::WeakPassword(_) => Described::new(C::WeakPassword).field("password"),
                IdentityError::EmailTaken => Described::new(C::EmailTaken),
                IdentityError::InvalidCredentials => Described::new(C::InvalidCredentials),
                IdentityError::InvalidRefreshToken => Described::new(C::InvalidRefreshToken),
                IdentityError::TooManyAttempts { retry_after_secs } => {
                    Described::new(C::TooManyAttempts).retry_after(*retry_after_secs)
                }
                IdentityError::Unauthorized(_) => Described::new(C::Unauthorized),
                IdentityError::Forbidden => Described::new(C::Forbidden),
                IdentityError::UnknownUser(_) => Described::new(C::UserNotFound),
                IdentityError::Busy => Described::new(C::ServerBusy),
                IdentityError::Unavailable(failure) => Described::failure(failure),
            },
            Self::Catalog(e) | Self::Admin(AdminError::Catalog(e)) => catalog(e),
            Self::Admin(AdminError::Conflict { field, .. }) => {
                Described::new(C::SaleInProgress).field(field)
            }
            Self::Purchase(PurchaseError::Rejected(rejection)) => Described::new(match rejection {
                PurchaseRejection::CouponNotFound => C::CouponNotFound,
                PurchaseRejection::SaleNotStarted => C::SaleNotStarted,
                PurchaseRejection::SaleEnded => C::SaleEnded,
                PurchaseRejection::LimitReached => C::PurchaseLimitReached,
                PurchaseRejection::SoldOut => C::SoldOut,
                PurchaseRejection::PassRequired => C::AdmissionPassRequired,
                PurchaseRejection::PassExpired => C::AdmissionPassExpired,
                PurchaseRejection::NoWaitingRoom => C::NoWaitingRoom,
            }),
            Self::Purchase(PurchaseError::Unavailable(failure)) => Described::failure(failure),
            // A rebuild takes a couple of seconds; an earlier retry would only find it again.
            Self::Purchase(PurchaseError::Rebuilding) => {
                Described::new(C::ServerBusy).retry_after(2)
            }
            Self::Throttled(Throttled { retry_after_secs }) => {
                Described::new(C::TooManyRequests).retry_after(*retry_after_secs)
            }
            Self::Draining => Described::new(C::ServerBusy).retry_after(1),
            Self::Order(OrderError::NotFound) => Described::new(C::OrderNotFound),
            Self::Order(OrderError::Unavailable(failure)) => Described::failure(failure),
            Self::Sockets(HubError::Full(_)) => Described::new(C::ServerBusy),
            Self::Sockets(HubError::UserFull(_)) => Described::new(C::TooManyConnections),
            Self::Sockets(HubError::Unavailable(failure)) => Described::failure(failure),
            Self::Unexpected(_) => Described::new(C::Internal),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.describe().code
    }
}

fn catalog(e: &CatalogError) -> Described<'_> {
    use ErrorCode as C;
    match e {
        CatalogError::NotFound => Described::new(C::CouponNotFound),
        CatalogError::Invalid(invalid) => Described::new(C::InvalidCoupon).field(invalid.field),
        CatalogError::InvalidPage { field, max_size } => Described {
            max_size: Some(*max_size),
            ..Described::new(C::InvalidPage).field(field)
        },
        CatalogError::InvalidSearch(invalid) => {
            Described::new(C::InvalidSearch).field(invalid.field)
        }
        CatalogError::ImageTooLarge { max_bytes } => Described {
            max_bytes: Some(*max_bytes),
            ..Described::new(C::ImageTooLarge).field("image")
        },
        CatalogError::UnsupportedImage => Described::new(C::UnsupportedImage).field("image"),
        CatalogError::Busy => Described::new(C::ServerBusy),
        CatalogError::Unavailable(failure) => Described::failure(failure),
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.describe().code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let described = self.describe();
        let message = match (self, described.code) {
            (_, ErrorCode::Internal) => {
                tracing::error!(error = chain(self), "unexpected error");
                "internal error".to_owned()
            }
            (_, ErrorCode::ServerBusy) if described.failure.is_some() => {
                // One line per request would flood the log during an outage.
                static THROTTLE: LogThrottle = LogThrottle::new(REPEATED_ERROR_EVERY);
                if let Some(held_back) = THROTTLE.admit() {
                    tracing::warn!(error = chain(self), held_back, "dependency unavailable");
                }
                "the service is busy, try again shortly".to_owned()
            }
            (other, _) => other.to_string(),
        };
        let mut response = HttpResponse::build(described.code.status());
        if let Some(secs) = described.retry_after {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        if described.code == ErrorCode::Unauthorized {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::MethodNotAllowed(allow) = self {
            response.insert_header(("Allow", allow.as_str()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: described.code,
                message,
                field: described.field,
                max_bytes: described.max_bytes,
                max_size: described.max_size,
                retry_after_secs: described.retry_after,
            },
        })
    }
}

#[cfg(test)]
mod tests;
