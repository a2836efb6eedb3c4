//! Public catalog endpoints: the coupon list, one coupon, its real-time stock, and
//! (with the filesystem object store) the images.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::catalog::{Catalog, CouponPage, CouponView, SearchResults};
use crate::domain::coupon::{CatalogError, CouponId};
use crate::domain::search::{RawSearch, SearchSort, StatusFilter};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::CouponPath;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before `{id}`, which would take "search" for an id.
    cfg.service(list_coupons)
        .service(search_coupons)
        .service(get_coupon)
        .service(get_stock);
}

/// Serves stored objects under `/objects/`: the filesystem store, or S3 when the public
/// image URLs are paths on this host.
pub fn configure_objects(cfg: &mut web::ServiceConfig) {
    cfg.service(get_object);
}

/// Raw query values, so that `page=abc` is the same 422 INVALID_PAGE as `page=0`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// 1-based page number.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1_000_000, default = 1)]
    page: Option<String>,
    /// Coupons per page, at most the server's maximum (`catalog.max_page_size`, 100
    /// unless configured otherwise; INVALID_PAGE carries it as `max_size`).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    size: Option<String>,
}

fn page_number(
    raw: Option<&str>,
    field: &'static str,
    max_size: u32,
) -> Result<Option<u32>, CatalogError> {
    raw.map(|value| {
        value
            .trim()
            .parse::<u32>()
            .map_err(|_| CatalogError::InvalidPage { field, max_size })
    })
    .transpose()
}

/// A page of coupons.
///
/// Pages are cached, so `remaining` may lag; see `/api/coupons/{id}/stock`.
#[utoipa::path(
    tag = "catalog",
    params(PageQuery),
    responses(
        (status = 200, description = "The page", body = CouponPage),
        (status = 400, description = "error: INVALID_REQUEST (malformed query string)", body = ErrorBody),
        (status = 422, description = "error: INVALID_PAGE", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[get("/api/coupons")]
pub(super) async fn list_coupons(
    catalog: web::Data<Catalog>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let max_size = catalog.max_page_size();
    let page = page_number(query.page.as_deref(), "page", max_size)?;
    let size = page_number(query.size.as_deref(), "size", max_size)?;
    let (page, size) = catalog.page_params(page, size)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(catalog.page_json(page, size).await?))
}

/// Search values taken raw, so that a bad number is a 422 naming its field.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchParams {
    /// Words to find in name and description (1–100 characters), each matched as a
    /// word prefix; words under 3 letters and common stopwords are ignored. Not blank;
    /// leave it out to list by the filters alone.
    #[param(value_type = Option<String>, min_length = 1, max_length = 100)]
    q: Option<String>,
    /// The sale's state now.
    #[param(value_type = Option<StatusFilter>)]
    status: Option<String>,
    /// Lowest price, in cents.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000_000)]
    min_price: Option<String>,
    /// Highest price, in cents (not below `min_price`).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000_000)]
    max_price: Option<String>,
    /// `relevance` (the default with `q`), `ending_soon`, `price`, `price_desc` or
    /// `newest` (the default without `q`).
    #[param(value_type = Option<SearchSort>)]
    sort: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50, default = 1)]
    page: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    size: Option<String>,
}

/// Search coupons.
///
/// Results are cached for half a second per instance; `remaining` in them is a
/// snapshot (`stock_as_of`), see `/api/coupons/{id}/stock` for the live count.
#[utoipa::path(
    tag = "catalog",
    params(SearchParams),
    responses(
        (status = 200, description = "One page of results", body = SearchResults),
        (status = 400, description = "error: INVALID_REQUEST (malformed query string)", body = ErrorBody),
        (status = 422, description = "error: INVALID_SEARCH", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[get("/api/coupons/search")]
pub(super) async fn search_coupons(
    catalog: web::Data<Catalog>,
    query: web::Query<SearchParams>,
) -> Result<HttpResponse, AppError> {
    let raw = RawSearch {
        q: query.q.as_deref(),
        status: query.status.as_deref(),
        min_price: query.min_price.as_deref(),
        max_price: query.max_price.as_deref(),
        sort: query.sort.as_deref(),
        page: query.page.as_deref(),
        size: query.size.as_deref(),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(catalog.search_json(raw).await?))
}

/// One coupon.
#[utoipa::path(
    tag = "catalog",
    params(("id" = CouponId, Path, description = "The coupon's id")),
    responses(
        (status = 200, description = "The coupon", body = CouponView),
        (status = 400, description = "error: INVALID_REQUEST (not a number)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[get("/api/coupons/{id}")]
pub(super) async fn get_coupon(
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
) -> Result<HttpResponse, AppError> {
    let coupon = catalog.coupon(id).await?;
    Ok(HttpResponse::Ok().json(&*coupon))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Stock {
    coupon_id: CouponId,
    remaining: i64,
}

/// Real-time remaining units (the counter purchases decrement).
#[utoipa::path(
    tag = "catalog",
    params(("id" = CouponId, Path, description = "The coupon's id")),
    responses(
        (status = 200, description = "The stock (`Cache-Control: no-store`)", body = Stock),
        (status = 400, description = "error: INVALID_REQUEST (not a number)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[get("/api/coupons/{id}/stock")]
pub(super) async fn get_stock(
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
) -> Result<HttpResponse, AppError> {
    let remaining = catalog.stock(id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Stock {
            coupon_id: id,
            remaining,
        }))
}

/// A stored image.
///
/// Served only with the filesystem object store (S3 serves its own URLs). Clients never
/// build these URLs: they follow a coupon's `image_url`.
#[utoipa::path(
    tag = "catalog",
    params(("key" = String, Path, description = "The object's key, as in `image_url`")),
    responses(
        (status = 200, description = "The image (`Cache-Control: immutable`)", content(
            (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"), (Vec<u8> = "image/gif"),
        )),
        (status = 404, description = "error: NOT_FOUND", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[get("/objects/{key:.*}")]
pub(super) async fn get_object(
    catalog: web::Data<Catalog>,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    match catalog.object(&key).await? {
        Some(object) => Ok(HttpResponse::Ok()
            .content_type(object.content_type)
            // Keys are unique per upload, so an object never changes.
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(object.bytes)),
        None => Err(AppError::RouteNotFound),
    }
}
