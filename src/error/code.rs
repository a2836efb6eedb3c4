//! The error codes of the HTTP API: the one table of codes, meanings, statuses and retry
//! hints.
//! Codes are stable API; clients switch on them, never on messages.

use actix_web::http::StatusCode;
use serde::Serialize;

/// What each code means is [`ErrorCode::description`]: kept as text rather than doc
/// comments so the OpenAPI document can list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    InvalidEmail,
    WeakPassword,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    TooManyAttempts,
    TooManyConnections,
    TooManyRequests,
    UserNotFound,
    CouponNotFound,
    InvalidCoupon,
    InvalidPage,
    InvalidSearch,
    ImageTooLarge,
    UnsupportedImage,
    SaleInProgress,
    SaleNotStarted,
    SaleEnded,
    PurchaseLimitReached,
    SoldOut,
    AdmissionPassRequired,
    AdmissionPassExpired,
    NoWaitingRoom,
    OrderNotFound,
    ServerBusy,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 31] = [
        Self::InvalidRequest,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::Forbidden,
        Self::InvalidEmail,
        Self::WeakPassword,
        Self::EmailTaken,
        Self::InvalidCredentials,
        Self::InvalidRefreshToken,
        Self::TooManyAttempts,
        Self::TooManyConnections,
        Self::TooManyRequests,
        Self::UserNotFound,
        Self::CouponNotFound,
        Self::InvalidCoupon,
        Self::InvalidPage,
        Self::InvalidSearch,
        Self::ImageTooLarge,
        Self::UnsupportedImage,
        Self::SaleInProgress,
        Self::SaleNotStarted,
        Self::SaleEnded,
        Self::PurchaseLimitReached,
        Self::SoldOut,
        Self::AdmissionPassRequired,
        Self::AdmissionPassExpired,
        Self::NoWaitingRoom,
        Self::OrderNotFound,
        Self::ServerBusy,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::InvalidEmail => "INVALID_EMAIL",
            Self::WeakPassword => "WEAK_PASSWORD",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            Self::TooManyAttempts => "TOO_MANY_ATTEMPTS",
            Self::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::CouponNotFound => "COUPON_NOT_FOUND",
            Self::InvalidCoupon => "INVALID_COUPON",
            Self::InvalidPage => "INVALID_PAGE",
            Self::InvalidSearch => "INVALID_SEARCH",
            Self::ImageTooLarge => "IMAGE_TOO_LARGE",
            Self::UnsupportedImage => "UNSUPPORTED_IMAGE",
            Self::SaleInProgress => "SALE_IN_PROGRESS",
            Self::SaleNotStarted => "SALE_NOT_STARTED",
            Self::SaleEnded => "SALE_ENDED",
            Self::PurchaseLimitReached => "PURCHASE_LIMIT_REACHED",
            Self::SoldOut => "SOLD_OUT",
            Self::AdmissionPassRequired => "ADMISSION_PASS_REQUIRED",
            Self::AdmissionPassExpired => "ADMISSION_PASS_EXPIRED",
            Self::NoWaitingRoom => "NO_WAITING_ROOM",
            Self::OrderNotFound => "ORDER_NOT_FOUND",
            Self::ServerBusy => "SERVER_BUSY",
            Self::Internal => "INTERNAL",
        }
    }

    /// What the code means to a client.
    pub fn description(self) -> &'static str {
        match self {
            Self::InvalidRequest => {
                "The request could not be parsed: bad JSON, query string, path segment or header."
            }
            Self::NotFound => "No route matches the path.",
            Self::MethodNotAllowed => {
                "The path exists but not with this method; `Allow` lists the methods it takes."
            }
            Self::Unauthorized => "No bearer token, or one that is not acceptable.",
            Self::Forbidden => "The caller lacks the role the endpoint needs.",
            Self::InvalidEmail => "Not an e-mail address; `field` is `email`.",
            Self::WeakPassword => {
                "The password breaks the policy (8 to 128 characters, not only spaces); \
                 `field` is `password`."
            }
            Self::EmailTaken => "An account with this e-mail exists already.",
            Self::InvalidCredentials => "Unknown e-mail or wrong password (not told apart).",
            Self::InvalidRefreshToken => {
                "Expired, revoked or never-issued refresh token: log in again."
            }
            Self::TooManyAttempts => {
                "Too many login attempts or sign-ups from this e-mail or client; see \
                 `retry_after_secs`."
            }
            Self::TooManyConnections => {
                "This user already holds the most live-result connections allowed; close one."
            }
            Self::TooManyRequests => {
                "This account or client sends purchases or connects faster than a shopper \
                 does; nothing was decided. See `retry_after_secs`."
            }
            Self::UserNotFound => "No account with this e-mail (administration commands).",
            Self::CouponNotFound => "No coupon with this id, or it was deleted.",
            Self::InvalidCoupon => "A coupon field is invalid; see `field`.",
            Self::InvalidPage => "`page` or `size` out of range; see `field` and `max_size`.",
            Self::InvalidSearch => "A search parameter is invalid; see `field`.",
            Self::ImageTooLarge => "The upload exceeds the limit in `max_bytes`.",
            Self::UnsupportedImage => "Not a PNG, JPEG, WebP or GIF image.",
            Self::SaleInProgress => {
                "The change is not allowed while the sale is running; see `field`."
            }
            Self::SaleNotStarted => "The sale has not started yet.",
            Self::SaleEnded => "The sale is over.",
            Self::PurchaseLimitReached => {
                "The caller already holds the coupon's `per_user_limit` units."
            }
            Self::SoldOut => "No units left.",
            Self::AdmissionPassRequired => {
                "The sale has a waiting room: join `/api/coupons/{id}/queue` and buy with the \
                 admission pass it gives when your turn comes (`X-Admission-Pass`). Also for \
                 a pass of another account or coupon."
            }
            Self::AdmissionPassExpired => {
                "The admission pass expired before the purchase: the turn was missed."
            }
            Self::NoWaitingRoom => "This coupon has no waiting room: buy it directly.",
            Self::OrderNotFound => "No order with this id belongs to the caller.",
            Self::ServerBusy => {
                "Overloaded, a dependency is down, or state is being rebuilt: retry after \
                 `Retry-After` seconds; nothing was decided."
            }
            Self::Internal => "A bug or corrupt data; the cause is in the server's log.",
        }
    }

    pub fn status(self) -> StatusCode {
        use StatusCode as S;
        match self {
            Self::InvalidRequest => S::BAD_REQUEST,
            Self::NotFound | Self::UserNotFound | Self::CouponNotFound | Self::OrderNotFound => {
                S::NOT_FOUND
            }
            Self::Unauthorized | Self::InvalidCredentials | Self::InvalidRefreshToken => {
                S::UNAUTHORIZED
            }
            Self::Forbidden => S::FORBIDDEN,
            Self::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            Self::InvalidEmail
            | Self::WeakPassword
            | Self::InvalidCoupon
            | Self::InvalidPage
            | Self::InvalidSearch => S::UNPROCESSABLE_ENTITY,
            Self::EmailTaken
            | Self::SaleInProgress
            | Self::SaleNotStarted
            | Self::SaleEnded
            | Self::PurchaseLimitReached
            | Self::SoldOut
            | Self::AdmissionPassRequired
            | Self::AdmissionPassExpired
            | Self::NoWaitingRoom => S::CONFLICT,
            Self::TooManyAttempts | Self::TooManyConnections | Self::TooManyRequests => {
                S::TOO_MANY_REQUESTS
            }
            Self::ImageTooLarge => S::PAYLOAD_TOO_LARGE,
            Self::UnsupportedImage => S::UNSUPPORTED_MEDIA_TYPE,
            Self::ServerBusy => S::SERVICE_UNAVAILABLE,
            Self::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds for `Retry-After` when the code always carries one.
    pub fn retry_after(self) -> Option<u64> {
        matches!(self, Self::ServerBusy).then_some(1)
    }
}

/// Written by hand because derived schemas drop the descriptions of unit variants: a
/// string enum of every code, described code by code with its status.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut description = String::from(
            "Stable error codes: clients switch on them, never on messages. Each code \
             always comes with the same HTTP status.\n",
        );
        for code in Self::ALL {
            description.push_str(&format!(
                "\n- `{code}` ({}): {}",
                code.status().as_u16(),
                code.description()
            ));
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::ALL.map(Self::as_str)))
            .description(Some(description))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_code_once_as_serialized() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_owned())
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}
