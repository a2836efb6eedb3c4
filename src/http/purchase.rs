//! `POST /api/coupons/{id}/purchase` and the shopper's orders.

use actix_web::{HttpResponse, get, post, web};

use crate::app::orders::Orders;
use crate::app::purchase::Purchases;
use crate::domain::order::OrderStatus;
use crate::error::AppError;
use crate::http::extract::{AuthUser, CouponPath, IdempotencyKey, OrderPath};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(purchase_coupon)
        .service(get_order)
        .service(list_orders);
}

/// Buys one unit. 202 with the order id at once; the payment result follows over the
/// WebSocket and on `GET /api/orders/{id}`.
#[post("/api/coupons/{id}/purchase")]
async fn purchase_coupon(
    AuthUser(user): AuthUser,
    purchases: web::Data<Purchases>,
    CouponPath(coupon): CouponPath,
    idempotency_key: IdempotencyKey,
) -> Result<HttpResponse, AppError> {
    let accepted = purchases
        .purchase(&user.user_id, coupon, idempotency_key.as_deref())
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
    OrderPath(id): OrderPath,
) -> Result<HttpResponse, AppError> {
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
