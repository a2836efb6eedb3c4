//! `POST /api/coupons/{id}/purchase` and the shopper's orders.

use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::orders::Orders;
use crate::app::purchase::Purchases;
use crate::app::throttle::Admission;
use crate::domain::coupon::CouponId;
use crate::domain::order::{OrderId, OrderStatus, OrderView};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{
    AdmissionPass, AuthRejections, AuthUser, ClientIp, CouponPath, IdempotencyKey, OrderPath,
};
use crate::http::request_id::RequestId;

/// The header a purchase of a waiting-room sale carries its admission pass in.
pub const ADMISSION_PASS: &str = "x-admission-pass";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(purchase_coupon)
        .service(get_order)
        .service(list_orders);
}

/// How often one account and one client IP may ask to buy: checked before the purchase
/// touches Redis, so a bot asking thousands of times a second (for a sold-out coupon,
/// say) does not take the gate's time from everyone else.
pub struct PurchaseAdmission(pub std::sync::Arc<Admission>);

#[derive(Serialize, ToSchema)]
pub(super) struct PurchaseAccepted {
    order_id: OrderId,
    /// Always PENDING here.
    status: OrderStatus,
}

/// Buys one unit.
///
/// 202 with the order id at once; the payment result follows over the WebSocket (`/ws`)
/// and on `GET /api/orders/{id}`.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(
        ("id" = CouponId, Path, description = "The coupon's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", nullable = false,
         description = "1-128 visible ASCII characters: a retry with the same key gets the first answer"),
        ("X-Admission-Pass" = Option<String>, Header, nullable = false,
         description = "For a sale with a waiting room (`waiting_room_per_sec`): the pass `/api/coupons/{id}/queue` gave when the caller's turn came"),
    ),
    responses(
        (status = 202, description = "Accepted; `Location` is the order's URL", body = PurchaseAccepted),
        (status = 400, description = "error: INVALID_REQUEST (bad id or Idempotency-Key)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "error: SOLD_OUT, PURCHASE_LIMIT_REACHED, SALE_NOT_STARTED, SALE_ENDED, ADMISSION_PASS_REQUIRED, ADMISSION_PASS_EXPIRED", body = ErrorBody),
        (status = 429, description = "error: TOO_MANY_REQUESTS (this account or client asks too often; `Retry-After`); nothing was decided", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY; nothing was sold", body = ErrorBody),
        AuthRejections,
    ),
)]
#[post("/api/coupons/{id}/purchase")]
#[allow(clippy::too_many_arguments)] // one extractor per part of the request
pub(super) async fn purchase_coupon(
    AuthUser(user): AuthUser,
    ClientIp(client_ip): ClientIp,
    admission: web::Data<PurchaseAdmission>,
    purchases: web::Data<Purchases>,
    CouponPath(coupon): CouponPath,
    idempotency_key: IdempotencyKey,
    RequestId(request_id): RequestId,
    AdmissionPass(pass): AdmissionPass,
) -> Result<HttpResponse, AppError> {
    admission.0.admit(&user.user_id, &client_ip)?;
    let accepted = purchases
        .purchase(
            &user.user_id,
            coupon,
            idempotency_key.as_deref(),
            request_id.as_deref(),
            pass.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/orders/{}", accepted.order_id)))
        .json(PurchaseAccepted {
            order_id: accepted.order_id,
            status: OrderStatus::Pending,
        }))
}

/// One of the caller's orders.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = OrderId, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order (`Cache-Control: no-store`)", body = OrderView),
        (status = 404, description = "error: ORDER_NOT_FOUND (also for another user's order)", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AuthRejections,
    ),
)]
#[get("/api/orders/{id}")]
pub(super) async fn get_order(
    AuthUser(user): AuthUser,
    orders: web::Data<Orders>,
    OrderPath(id): OrderPath,
) -> Result<HttpResponse, AppError> {
    let order = orders.get(&user.user_id, id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(order))
}

#[derive(Serialize, ToSchema)]
pub(super) struct OrderList {
    items: Vec<OrderView>,
}

/// The caller's orders, newest first (the latest 100).
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The orders (`Cache-Control: no-store`)", body = OrderList),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AuthRejections,
    ),
)]
#[get("/api/orders")]
pub(super) async fn list_orders(
    AuthUser(user): AuthUser,
    orders: web::Data<Orders>,
) -> Result<HttpResponse, AppError> {
    let items = orders.list(&user.user_id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(OrderList { items }))
}
