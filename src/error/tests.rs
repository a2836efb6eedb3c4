use actix_web::body::to_bytes;

use super::*;
use crate::domain::coupon::InvalidCoupon;
use crate::domain::search::InvalidSearch;

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
        body(CatalogError::Unavailable(Failure::unavailable("mysql://root:pw@db")).into()).await;
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

/// One error of each code, as a handler would return it.
fn one_of_each() -> Vec<AppError> {
    vec![
        AppError::BadRequest("Idempotency-Key must be 1-128 visible ASCII characters".into()),
        AppError::RouteNotFound,
        AppError::MethodNotAllowed("GET".into()),
        IdentityError::Unauthorized("missing bearer token").into(),
        IdentityError::Forbidden.into(),
        IdentityError::InvalidEmail("not an e-mail address").into(),
        IdentityError::WeakPassword("must be at least 8 characters").into(),
        IdentityError::EmailTaken.into(),
        IdentityError::InvalidCredentials.into(),
        IdentityError::InvalidRefreshToken.into(),
        IdentityError::TooManyAttempts {
            retry_after_secs: 42,
        }
        .into(),
        IdentityError::UnknownUser("nobody@example.com".into()).into(),
        HubError::UserFull(8).into(),
        CatalogError::NotFound.into(),
        CatalogError::Invalid(InvalidCoupon {
            field: "name",
            message: "must not be empty",
        })
        .into(),
        CatalogError::InvalidPage {
            field: "size",
            max_size: 100,
        }
        .into(),
        CatalogError::InvalidSearch(InvalidSearch {
            field: "sort",
            message: "must be relevance, ending_soon, price, price_desc or newest",
        })
        .into(),
        CatalogError::ImageTooLarge {
            max_bytes: 2_097_152,
        }
        .into(),
        CatalogError::UnsupportedImage.into(),
        AdminError::Conflict {
            field: "total_quantity",
            message: "cannot go below the units already sold",
        }
        .into(),
        PurchaseError::Rejected(PurchaseRejection::SaleNotStarted).into(),
        PurchaseError::Rejected(PurchaseRejection::SaleEnded).into(),
        PurchaseError::Rejected(PurchaseRejection::LimitReached).into(),
        PurchaseError::Rejected(PurchaseRejection::SoldOut).into(),
        PurchaseError::Rejected(PurchaseRejection::PassRequired).into(),
        PurchaseError::Rejected(PurchaseRejection::PassExpired).into(),
        PurchaseError::Rejected(PurchaseRejection::NoWaitingRoom).into(),
        Throttled {
            retry_after_secs: 1,
        }
        .into(),
        OrderError::NotFound.into(),
        PurchaseError::Unavailable(Failure::unavailable("redis timed out")).into(),
        OrderError::Unavailable(Failure::corrupt("status 'SHIPPED' in orders row")).into(),
    ]
}

/// Status, the headers clients act on, and the body.
async fn rendered(error: AppError) -> serde_json::Value {
    let response = error.error_response();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (retry_after, authenticate) = (header("Retry-After"), header("WWW-Authenticate"));
    let bytes = to_bytes(response.into_body()).await.unwrap();
    serde_json::json!({
        "status": status,
        "retry_after": retry_after,
        "www_authenticate": authenticate,
        "body": serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
    })
}

#[actix_web::test]
async fn every_error_body_matches_its_snapshot() {
    let mut bodies = serde_json::Map::new();
    for error in one_of_each() {
        let code = error.code();
        bodies.insert(code.as_str().to_owned(), rendered(error).await);
    }
    for code in ErrorCode::ALL {
        assert!(bodies.contains_key(code.as_str()), "no example of {code}");
    }
    insta::assert_json_snapshot!("error_bodies", bodies);
}

#[actix_web::test]
async fn corrupt_data_is_a_500_that_hides_its_cause() {
    let (status, json) = body(
        CatalogError::Unavailable(Failure::corrupt("cached page: expected value at line 1")).into(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json["error"]["code"], "INTERNAL");
    assert!(!json.to_string().contains("cached page"));
}
