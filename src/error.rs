//! The one place errors become HTTP responses.
//!
//! Domain and adapter errors keep their own `thiserror` types and know nothing of HTTP;
//! [`AppError`] wraps them and owns the status table. Every error body has the shape
//! `{"error": {"code": "SOLD_OUT", "message": "..."}}`; codes are stable API.
//! Unexpected failures are logged once here with their cause chain and reach the client
//! as an opaque 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::identity::IdentityError;

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
    /// A syntactically fine request whose value is not acceptable.
    #[error("{message}")]
    Validation {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    /// No route matches the path.
    #[error("no such endpoint")]
    RouteNotFound,
    /// A dependency (MySQL, Redis, Kafka) is down or too slow: retry later.
    #[error("the service is busy, try again shortly")]
    ServerBusy { retry_after_secs: u32 },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "INVALID_REQUEST",
            Self::Validation { code, .. } => code,
            Self::RouteNotFound => "NOT_FOUND",
            Self::ServerBusy { .. } => "SERVER_BUSY",
            Self::Identity(e) => match e {
                IdentityError::InvalidEmail(_) => "INVALID_EMAIL",
                IdentityError::WeakPassword(_) => "WEAK_PASSWORD",
                IdentityError::EmailTaken => "EMAIL_TAKEN",
                IdentityError::InvalidCredentials => "INVALID_CREDENTIALS",
                IdentityError::TooManyAttempts { .. } => "TOO_MANY_ATTEMPTS",
                IdentityError::Unauthorized(_) => "UNAUTHORIZED",
                IdentityError::Forbidden => "FORBIDDEN",
                IdentityError::UnknownUser(_) => "USER_NOT_FOUND",
                IdentityError::Unavailable(_) => "SERVER_BUSY",
            },
            Self::Unexpected(_) => "INTERNAL",
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::ServerBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Identity(e) => match e {
                IdentityError::InvalidEmail(_) | IdentityError::WeakPassword(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                IdentityError::EmailTaken => StatusCode::CONFLICT,
                IdentityError::InvalidCredentials | IdentityError::Unauthorized(_) => {
                    StatusCode::UNAUTHORIZED
                }
                IdentityError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
                IdentityError::Forbidden => StatusCode::FORBIDDEN,
                IdentityError::UnknownUser(_) => StatusCode::NOT_FOUND,
                IdentityError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "unexpected error");
                "internal error".to_owned()
            }
            Self::Identity(IdentityError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, "identity provider unavailable");
                "the service is busy, try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            Self::Validation { field, .. } => field.clone(),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::ServerBusy { retry_after_secs } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            Self::Identity(IdentityError::TooManyAttempts { retry_after_secs }) => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            Self::Identity(IdentityError::Unavailable(_)) => {
                response.insert_header(("Retry-After", "1"));
            }
            Self::Identity(IdentityError::Unauthorized(_)) => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field,
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
    async fn validation_errors_name_the_field() {
        let (status, json) = body(AppError::Validation {
            code: "INVALID_PAGE",
            field: Some("page".into()),
            message: "page must be at least 1".into(),
        })
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json["error"]["code"], "INVALID_PAGE");
        assert_eq!(json["error"]["field"], "page");
    }

    #[actix_web::test]
    async fn server_busy_says_when_to_retry() {
        let response = AppError::ServerBusy {
            retry_after_secs: 1,
        }
        .error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("Retry-After").unwrap(), "1");
    }
}
