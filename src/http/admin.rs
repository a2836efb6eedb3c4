//! Admin endpoints: create, update, soft-delete coupons and upload their images. Every
//! handler takes [`AdminUser`], so non-admins get 403 and anonymous callers 401.

use actix_multipart::Multipart;
use actix_web::{HttpResponse, delete, post, put, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::catalog::{Catalog, CouponView};
use crate::domain::coupon::{CatalogError, CouponDraft, CouponId};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{AdminRejections, AdminUser, CouponPath};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_coupon)
        .service(update_coupon)
        .service(delete_coupon)
        .service(upload_image);
}

/// Every editable field of a coupon (create, and full replacement on update).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CouponInput)]
pub struct CouponBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 5000)]
    description: String,
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 100_000_000)]
    price_cents: i64,
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 10_000_000)]
    total_quantity: i64,
    /// Most units one user may buy (at most `total_quantity`); 1 when absent.
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[schema(minimum = 1, maximum = 100)]
    per_user_limit: Option<i64>,
    sale_starts_at: DateTime<Utc>,
    /// After `sale_starts_at`.
    sale_ends_at: DateTime<Utc>,
    /// Puts the sale behind a waiting room that admits this many shoppers a second
    /// (those who join before the opening in a recorded random order, then in arrival
    /// order); absent or null: none. Fixed once the sale starts.
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[schema(minimum = 1, maximum = 10_000)]
    waiting_room_per_sec: Option<i64>,
}

/// An integer field: JSON Schema (and so the API document) counts `5.0` as the integer
/// 5, so it is taken as one; `5.5` is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not an integer")))
}

fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] i64);
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|Whole(n)| n))
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
        )?
        .with_waiting_room(body.waiting_room_per_sec)?)
    }
}

/// Creates a coupon.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CouponBody,
    responses(
        (status = 201, description = "Created", body = CouponView),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 422, description = "error: INVALID_COUPON", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AdminRejections,
    ),
)]
#[post("/api/admin/coupons")]
pub(super) async fn create_coupon(
    AdminUser(admin): AdminUser,
    catalog: web::Data<Catalog>,
    body: web::Json<CouponBody>,
) -> Result<HttpResponse, AppError> {
    let draft = CouponDraft::try_from(&*body)?;
    let coupon = catalog.create(&draft).await?;
    tracing::info!(coupon.id = coupon.id, admin.id = %admin.user_id, "admin created a coupon");
    Ok(HttpResponse::Created().json(coupon))
}

/// Replaces a coupon's fields.
///
/// Quantity and per-user limit are fixed once the sale started.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = CouponId, Path, description = "The coupon's id")),
    request_body = CouponBody,
    responses(
        (status = 200, description = "Updated", body = CouponView),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "error: SALE_IN_PROGRESS", body = ErrorBody),
        (status = 422, description = "error: INVALID_COUPON", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AdminRejections,
    ),
)]
#[put("/api/admin/coupons/{id}")]
pub(super) async fn update_coupon(
    AdminUser(_admin): AdminUser,
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
    body: web::Json<CouponBody>,
) -> Result<HttpResponse, AppError> {
    let draft = CouponDraft::try_from(&*body)?;
    Ok(HttpResponse::Ok().json(catalog.update(id, &draft).await?))
}

/// Soft-deletes a coupon.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = CouponId, Path, description = "The coupon's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AdminRejections,
    ),
)]
#[delete("/api/admin/coupons/{id}")]
pub(super) async fn delete_coupon(
    AdminUser(_admin): AdminUser,
    catalog: web::Data<Catalog>,
    CouponPath(id): CouponPath,
) -> Result<HttpResponse, AppError> {
    catalog.delete(id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The multipart form of an image upload.
#[derive(ToSchema)]
#[allow(dead_code)] // Only describes the form; the handler streams it.
#[serde(deny_unknown_fields)]
pub(super) struct ImageForm {
    /// PNG, JPEG, WebP or GIF.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}

/// Uploads the coupon's image.
///
/// Multipart upload with one file field named `image` (PNG, JPEG, WebP or GIF).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = CouponId, Path, description = "The coupon's id")),
    request_body(content = ImageForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Updated", body = CouponView),
        (status = 400, description = "error: INVALID_REQUEST (malformed form, no `image` field)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 413, description = "error: IMAGE_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "error: UNSUPPORTED_IMAGE", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AdminRejections,
    ),
)]
#[post("/api/admin/coupons/{id}/image")]
pub(super) async fn upload_image(
    AdminUser(_admin): AdminUser,
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
