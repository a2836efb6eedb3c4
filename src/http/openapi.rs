//! The public HTTP contract as an OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the types they exchange, so it cannot drift from
//! the code. Served by `GET /api/openapi.json`; a snapshot test keeps a reviewed copy
//! in `src/http/snapshots/`, so every contract change shows in a diff.

use std::sync::LazyLock;

use bytes::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, auth, catalog, ops, purchase, waiting_room, ws};

#[derive(OpenApi)]
#[openapi(
    info(description = "Public HTTP contract of the flash sale.\n\n\
        Every error is `{\"error\": {\"code\", \"message\", ...}}` with a stable code from the \
        `ErrorCode` schema and the structured fields that apply (`field`, `max_bytes`, \
        `max_size`, `retry_after_secs`). Any endpoint may also answer 500 INTERNAL; \
        503 SERVER_BUSY carries `Retry-After`. Paths no endpoint serves answer 404 NOT_FOUND."),
    paths(
        auth::register,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::me,
        catalog::list_coupons,
        catalog::search_coupons,
        catalog::get_coupon,
        catalog::get_stock,
        catalog::get_object,
        purchase::purchase_coupon,
        waiting_room::join_queue,
        waiting_room::queue_status,
        purchase::list_orders,
        purchase::get_order,
        admin::create_coupon,
        admin::update_coupon,
        admin::delete_coupon,
        admin::upload_image,
        waiting_room::waiting_room,
        ws::upgrade,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
        auth::discovery,
        auth::jwks,
    ),
    // Named only by the search's raw query parameters.
    components(schemas(
        crate::domain::search::StatusFilter,
        crate::domain::search::SearchSort,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Accounts, tokens and the caller"),
        (name = "catalog", description = "Coupons anyone may browse"),
        (name = "orders", description = "Buying and the caller's orders"),
        (name = "admin", description = "Coupon management; needs the `admin` role"),
        (name = "live", description = "Payment results pushed over a WebSocket"),
        (name = "ops", description = "Liveness, readiness, metrics and this document"),
        (name = "issuer", description = "The built-in token issuer (when it is the provider)"),
    ),
)]
pub struct ApiDoc;

/// The `bearer` scheme the authenticated operations name.
struct BearerScheme;

/// Every documented path as a route pattern, with the methods it takes.
pub fn documented_methods() -> Vec<(actix_web::dev::ResourceDef, Vec<&'static str>)> {
    ApiDoc::openapi()
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let methods = [
                ("GET", item.get.is_some()),
                ("HEAD", item.get.is_some() || item.head.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            (
                actix_web::dev::ResourceDef::new(path.as_str()),
                methods
                    .into_iter()
                    .filter_map(|(method, served)| served.then_some(method))
                    .collect(),
            )
        })
        .collect()
}

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An RS256 access token from `/api/auth/login` (or the configured \
                         OpenID provider).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served, rendered once.
pub fn json() -> Result<Bytes, String> {
    static DOCUMENT: LazyLock<Result<Bytes, String>> = LazyLock::new(|| {
        ApiDoc::openapi()
            .to_json()
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    });
    DOCUMENT.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::coupon::limits;
    use crate::domain::identity::Password;
    use crate::error::ErrorCode;

    fn document() -> serde_json::Value {
        serde_json::from_slice(&json().unwrap()).unwrap()
    }

    #[test]
    fn the_document_matches_its_snapshot() {
        insta::assert_json_snapshot!("openapi", document());
    }

    #[test]
    fn it_is_openapi_3_1_with_a_bearer_scheme() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc.get("servers").is_none());
    }

    #[test]
    fn the_error_code_schema_lists_and_describes_every_code() {
        let doc = document();
        let schema = &doc["components"]["schemas"]["ErrorCode"];
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
        let description = schema["description"].as_str().unwrap();
        for code in ErrorCode::ALL {
            let line = format!(
                "`{code}` ({}): {}",
                code.status().as_u16(),
                code.description()
            );
            assert!(description.contains(&line), "{code} not described");
        }
        assert_eq!(
            doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }

    /// The limits are literals in the annotations; these are the ones the domain enforces.
    #[test]
    fn documented_limits_are_the_enforced_ones() {
        let doc = document();
        let input = &doc["components"]["schemas"]["CouponInput"]["properties"];
        assert_eq!(input["name"]["maxLength"], limits::NAME_MAX_CHARS);
        assert_eq!(
            input["description"]["maxLength"],
            limits::DESCRIPTION_MAX_CHARS
        );
        assert_eq!(input["price_cents"]["maximum"], limits::PRICE_MAX_CENTS);
        assert_eq!(input["total_quantity"]["maximum"], limits::QUANTITY_MAX);
        assert_eq!(
            input["per_user_limit"]["maximum"],
            limits::PER_USER_LIMIT_MAX
        );
        let credentials = &doc["components"]["schemas"]["Credentials"]["properties"];
        assert_eq!(credentials["password"]["maxLength"], Password::MAX_CHARS);
        let registration = &doc["components"]["schemas"]["Registration"]["properties"];
        assert_eq!(registration["password"]["minLength"], Password::MIN_CHARS);
        assert_eq!(registration["password"]["maxLength"], Password::MAX_CHARS);
        let list = doc["paths"]["/api/coupons"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let page = list.iter().find(|p| p["name"] == "page").unwrap();
        assert_eq!(page["schema"]["maximum"], limits::PAGE_MAX);
    }
}
