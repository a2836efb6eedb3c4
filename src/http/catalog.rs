//! Public catalog endpoints: the coupon list, one coupon, its real-time stock, and
//! (with the filesystem object store) the images.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;

use crate::app::catalog::Catalog;
use crate::domain::coupon::CatalogError;
use crate::error::AppError;
use crate::http::extract::CouponPath;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_coupons)
        .service(get_coupon)
        .service(get_stock);
}

/// Serves stored objects under `/objects/` (filesystem store only; S3 serves its own).
pub fn configure_objects(cfg: &mut web::ServiceConfig) {
    cfg.service(get_object);
}

/// Raw query values, so that `page=abc` is the same 422 INVALID_PAGE as `page=0`.
#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
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

/// A page of coupons; `remaining` may lag (cached), see `/api/coupons/{id}/stock`.
#[get("/api/coupons")]
async fn list_coupons(
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

#[get("/api/coupons/{id}")]
async fn get_coupon(
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
) -> Result<HttpResponse, AppError> {
    let coupon = catalog.coupon(id).await?;
    Ok(HttpResponse::Ok().json(&*coupon))
}

/// Real-time remaining units (the counter purchases decrement).
#[get("/api/coupons/{id}/stock")]
async fn get_stock(
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
) -> Result<HttpResponse, AppError> {
    let remaining = catalog.stock(id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({"coupon_id": id, "remaining": remaining})))
}

#[get("/objects/{key:.*}")]
async fn get_object(
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
