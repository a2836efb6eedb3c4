//! Admin endpoints: create, update, soft-delete coupons and upload their images. Every
//! handler takes [`AdminUser`], so non-admins get 403 and anonymous callers 401.

use actix_multipart::Multipart;
use actix_web::{HttpResponse, delete, post, put, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::app::catalog::Catalog;
use crate::domain::coupon::{CatalogError, CouponDraft};
use crate::error::AppError;
use crate::http::extract::{AdminUser, CouponPath};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_coupon)
        .service(update_coupon)
        .service(delete_coupon)
        .service(upload_image);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CouponBody {
    name: String,
    #[serde(default)]
    description: String,
    price_cents: i64,
    total_quantity: i64,
    per_user_limit: Option<i64>,
    sale_starts_at: DateTime<Utc>,
    sale_ends_at: DateTime<Utc>,
}

impl TryFrom<&CouponBody> for CouponDraft {
    type Error = CatalogError;

    fn try_from(body: &CouponBody) -> Result<Self, CatalogError> {
        Ok(CouponDraft::parse(
            &body.name,
            &body.description,
            body.price_cents,
            body.total_quantity,
            body.per_user_limit,
            body.sale_starts_at,
            body.sale_ends_at,
        )?)
    }
}

#[post("/api/admin/coupons")]
async fn create_coupon(
    AdminUser(admin): AdminUser,
    catalog: web::Data<Catalog>,
    body: web::Json<CouponBody>,
) -> Result<HttpResponse, AppError> {
    let draft = CouponDraft::try_from(&*body)?;
    let coupon = catalog.create(&draft).await?;
    tracing::info!(coupon.id = coupon.id, admin.id = %admin.user_id, "admin created a coupon");
    Ok(HttpResponse::Created().json(coupon))
}

#[put("/api/admin/coupons/{id}")]
async fn update_coupon(
    AdminUser(_): AdminUser,
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
    body: web::Json<CouponBody>,
) -> Result<HttpResponse, AppError> {
    let draft = CouponDraft::try_from(&*body)?;
    Ok(HttpResponse::Ok().json(catalog.update(id, &draft).await?))
}

#[delete("/api/admin/coupons/{id}")]
async fn delete_coupon(
    AdminUser(_): AdminUser,
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
) -> Result<HttpResponse, AppError> {
    catalog.delete(id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Multipart upload with one file field named `image` (PNG, JPEG, WebP or GIF).
#[post("/api/admin/coupons/{id}/image")]
async fn upload_image(
    AdminUser(_): AdminUser,
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
    mut form: Multipart,
) -> Result<HttpResponse, AppError> {
    let max_bytes = catalog.max_image_bytes();
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|e| AppError::BadRequest(format!("malformed multipart body: {e}")))?;
        if field.name() != Some("image") {
            continue;
        }
        // One byte over the limit is enough to know it is too large.
        let bytes = match field.bytes(max_bytes + 1).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                return Err(AppError::BadRequest(format!(
                    "malformed multipart body: {e}"
                )));
            }
            Err(_) => return Err(CatalogError::ImageTooLarge { max_bytes }.into()),
        };
        return Ok(HttpResponse::Ok().json(catalog.upload_image(id, bytes).await?));
    }
    Err(AppError::BadRequest(
        "the form has no field named \"image\"".into(),
    ))
}
