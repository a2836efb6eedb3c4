//! `POST /api/coupons/{id}/purchase` and the shopper's orders.

use actix_web::{HttpRequest, HttpResponse, get, post, web};

use crate::app::orders::Orders;
use crate::app::purchase::Purchases;
use crate::domain::order::{OrderError, OrderId, OrderStatus};
use crate::error::AppError;
use crate::http::catalog::coupon_id;
use crate::http::extract::AuthUser;

/// Longest accepted `Idempotency-Key`.
const IDEMPOTENCY_KEY_MAX: usize = 128;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(purchase_coupon)
        .service(get_order)
        .service(list_orders);
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, AppError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= IDEMPOTENCY_KEY_MAX
                && k.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            AppError::BadRequest(
                "Idempotency-Key must be 1-128 visible ASCII characters".to_owned(),
            )
        })?;
    Ok(Some(key))
}

/// Buys one unit. 202 with the order id at once; the payment result follows over the
/// WebSocket and on `GET /api/orders/{id}`.
#[post("/api/coupons/{id}/purchase")]
async fn purchase_coupon(
    req: HttpRequest,
    AuthUser(user): AuthUser,
    purchases: web::Data<Purchases>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let coupon = coupon_id(&id)?;
    let accepted = purchases
        .purchase(&user.user_id, coupon, idempotency_key(&req)?)
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/orders/{}", accepted.order_id)))
        .json(serde_json::json!({
            "order_id": accepted.order_id,
            "status": OrderStatus::Pending,
        })))
}

#[get("/api/orders/{id}")]
async fn get_order(
    AuthUser(user): AuthUser,
    orders: web::Data<Orders>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = OrderId::parse(&id).ok_or(OrderError::NotFound)?;
    let order = orders.get(&user.user_id, id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(order))
}

/// The caller's orders, newest first.
#[get("/api/orders")]
async fn list_orders(
    AuthUser(user): AuthUser,
    orders: web::Data<Orders>,
) -> Result<HttpResponse, AppError> {
    let list = orders.list(&user.user_id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "items": list })))
}
