//! The one place errors become HTTP responses.
//!
//! Domain and adapter errors keep their own `thiserror` types and know nothing of HTTP;
//! [`AppError`] wraps them and owns the status table ([`AppError::describe`]). Every
//! error body has the shape `{"error": {"code": "SOLD_OUT", "message": "..."}}` (plus
//! `field` for validation errors); codes are stable API. Unexpected failures are logged
//! once here with their cause chain and reach the client as an opaque 500; dependency
//! outages are logged and answered 503 SERVER_BUSY with Retry-After.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::app::catalog::AdminError;
use crate::domain::coupon::CatalogError;
use crate::domain::identity::IdentityError;
use crate::domain::order::{OrderError, PurchaseError, PurchaseRejection};
use crate::live::hub::HubError;

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request could not be parsed (bad JSON, bad query string, bad path segment).
    #[error("{0}")]
    BadRequest(String),
    /// No route matches the path.
    #[error("no such endpoint")]
    RouteNotFound,
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
    Unexpected(#[from] anyhow::Error),
}

/// How an error is answered.
struct Described {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
    /// Logged (warn) and replaced by a generic message: a dependency's detail is not
    /// the client's business.
    outage: bool,
}

impl Described {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            field: None,
            retry_after: None,
            outage: false,
        }
    }

    fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    fn busy() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "SERVER_BUSY")
        }
    }

    fn outage() -> Self {
        Self {
            outage: true,
            ..Self::busy()
        }
    }
}

impl AppError {
    /// The status table.
    fn describe(&self) -> Described {
        use StatusCode as S;
        match self {
            Self::BadRequest(_) => Described::new(S::BAD_REQUEST, "INVALID_REQUEST"),
            Self::RouteNotFound => Described::new(S::NOT_FOUND, "NOT_FOUND"),
            Self::Identity(e) => match e {
                IdentityError::InvalidEmail(_) => {
                    Described::new(S::UNPROCESSABLE_ENTITY, "INVALID_EMAIL").field("email")
                }
                IdentityError::WeakPassword(_) => {
                    Described::new(S::UNPROCESSABLE_ENTITY, "WEAK_PASSWORD").field("password")
                }
                IdentityError::EmailTaken => Described::new(S::CONFLICT, "EMAIL_TAKEN"),
                IdentityError::InvalidCredentials => {
                    Described::new(S::UNAUTHORIZED, "INVALID_CREDENTIALS")
                }
                IdentityError::InvalidRefreshToken => {
                    Described::new(S::UNAUTHORIZED, "INVALID_REFRESH_TOKEN")
                }
                IdentityError::TooManyAttempts { retry_after_secs } => Described {
                    retry_after: Some(*retry_after_secs),
                    ..Described::new(S::TOO_MANY_REQUESTS, "TOO_MANY_ATTEMPTS")
                },
                IdentityError::Unauthorized(_) => Described::new(S::UNAUTHORIZED, "UNAUTHORIZED"),
                IdentityError::Forbidden => Described::new(S::FORBIDDEN, "FORBIDDEN"),
                IdentityError::UnknownUser(_) => Described::new(S::NOT_FOUND, "USER_NOT_FOUND"),
                IdentityError::Unavailable(_) => Described::outage(),
            },
            Self::Catalog(e) => catalog(e),
            Self::Admin(AdminError::Catalog(e)) => catalog(e),
            Self::Admin(AdminError::Conflict { field, .. }) => {
                Described::new(S::CONFLICT, "SALE_IN_PROGRESS").field(field)
            }
            Self::Purchase(PurchaseError::Rejected(rejection)) => match rejection {
                PurchaseRejection::CouponNotFound => {
                    Described::new(S::NOT_FOUND, "COUPON_NOT_FOUND")
                }
                PurchaseRejection::SaleNotStarted => {
                    Described::new(S::CONFLICT, "SALE_NOT_STARTED")
                }
                PurchaseRejection::SaleEnded => Described::new(S::CONFLICT, "SALE_ENDED"),
                PurchaseRejection::LimitReached => {
                    Described::new(S::CONFLICT, "PURCHASE_LIMIT_REACHED")
                }
                PurchaseRejection::SoldOut => Described::new(S::CONFLICT, "SOLD_OUT"),
            },
            Self::Purchase(PurchaseError::Unavailable(_)) => Described::outage(),
            Self::Purchase(PurchaseError::Rebuilding) => Described {
                retry_after: Some(2),
                ..Described::busy()
            },
            Self::Order(OrderError::NotFound) => Described::new(S::NOT_FOUND, "ORDER_NOT_FOUND"),
            Self::Order(OrderError::Unavailable(_)) => Described::outage(),
            Self::Sockets(HubError::Full(_)) => Described::busy(),
            Self::Sockets(HubError::Redis(_)) => Described::outage(),
            Self::Unexpected(_) => Described::new(S::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }

    pub fn code(&self) -> &'static str {
        self.describe().code
    }
}

fn catalog(e: &CatalogError) -> Described {
    use StatusCode as S;
    match e {
        CatalogError::NotFound => Described::new(S::NOT_FOUND, "COUPON_NOT_FOUND"),
        CatalogError::Invalid(invalid) => {
            Described::new(S::UNPROCESSABLE_ENTITY, "INVALID_COUPON").field(invalid.field)
        }
        CatalogError::InvalidPage { field, .. } => {
            Described::new(S::UNPROCESSABLE_ENTITY, "INVALID_PAGE").field(field)
        }
        CatalogError::ImageTooLarge { .. } => {
            Described::new(S::PAYLOAD_TOO_LARGE, "IMAGE_TOO_LARGE").field("image")
        }
        CatalogError::UnsupportedImage => {
            Described::new(S::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_IMAGE").field("image")
        }
        CatalogError::Busy => Described::busy(),
        CatalogError::Unavailable(_) => Described::outage(),
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.describe().status
    }

    fn error_response(&self) -> HttpResponse {
        let described = self.describe();
        let message = match self {
            Self::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "unexpected error");
                "internal error".to_owned()
            }
            other if described.outage => {
                tracing::warn!(error = %other, "dependency unavailable");
                "the service is busy, try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(described.status);
        if let Some(secs) = described.retry_after {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        if described.status == StatusCode::UNAUTHORIZED && described.code == "UNAUTHORIZED" {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: described.code,
                message,
                field: described.field,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body(error: AppError) -> (StatusCode, serde_json::Value) {
        let response = error.error_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn unexpected_errors_hide_their_cause() {
        let (status, json) = body(AppError::Unexpected(anyhow::anyhow!("password=hunter2"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["error"]["code"], "INTERNAL");
        assert_eq!(json["error"]["message"], "internal error");
    }

    #[actix_web::test]
    async fn outages_are_503_without_detail() {
        let (status, json) =
            body(CatalogError::Unavailable("mysql://root:pw@db".into()).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["error"]["code"], "SERVER_BUSY");
        assert!(!json.to_string().contains("pw@db"));
    }

    #[actix_web::test]
    async fn validation_errors_name_the_field() {
        let (status, json) = body(
            CatalogError::InvalidPage {
                field: "size",
                max_size: 100,
            }
            .into(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json["error"]["code"], "INVALID_PAGE");
        assert_eq!(json["error"]["field"], "size");
    }

    #[actix_web::test]
    async fn server_busy_says_when_to_retry() {
        let response = AppError::Catalog(CatalogError::Busy).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("Retry-After").unwrap(), "1");
    }
}
