//! A sale's waiting room: joining, a shopper's place, and the operator's view.

use actix_web::{HttpResponse, get, post, web};

use crate::app::catalog::Catalog;
use crate::app::waiting_room::{QueueStatus, RoomTerms, RoomView, WaitingRooms};
use crate::domain::coupon::CouponId;
use crate::domain::order::{PurchaseError, PurchaseRejection};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{AdminRejections, AdminUser, AuthRejections, AuthUser, CouponPath};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(join_queue)
        .service(queue_status)
        .service(waiting_room);
}

/// The coupon's room; 404 for a coupon that does not exist, 409 NO_WAITING_ROOM for
/// one without a room.
async fn terms(
    catalog: &Catalog,
    rooms: &WaitingRooms,
    coupon: CouponId,
) -> Result<RoomTerms, AppError> {
    match rooms.terms(coupon).await {
        Err(PurchaseError::Rejected(PurchaseRejection::NoWaitingRoom)) => {
            // Only now the catalog (cached): is the coupon there at all, and is its sale
            // over (its state in Redis is gone a day after the end)?
            let view = catalog.coupon(coupon).await?;
            let rejection =
                if view.waiting_room_per_sec.is_some() && view.sale_ends_at <= chrono::Utc::now() {
                    PurchaseRejection::SaleEnded
                } else {
                    PurchaseRejection::NoWaitingRoom
                };
            Err(PurchaseError::from(rejection).into())
        }
        other => Ok(other?),
    }
}

/// Joins a sale's waiting room.
///
/// Before the opening: a place in the draw that orders the early arrivals at random;
/// afterwards: the next place. One place per account (joining again answers it).
/// Follow the place here or over the WebSocket (`waiting_room` messages on admission
/// and sell-out).
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = CouponId, Path, description = "The coupon's id")),
    responses(
        (status = 200, description = "The caller's place", body = QueueStatus),
        (status = 400, description = "error: INVALID_REQUEST (not a number)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "error: NO_WAITING_ROOM, SALE_ENDED", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AuthRejections,
    ),
)]
#[post("/api/coupons/{id}/queue")]
pub(super) async fn join_queue(
    AuthUser(user): AuthUser,
    catalog: web::Data<Catalog>,
    rooms: web::Data<WaitingRooms>,
    CouponPath(coupon): CouponPath,
) -> Result<HttpResponse, AppError> {
    let terms = terms(&catalog, &rooms, coupon).await?;
    Ok(place(rooms.join(&user.user_id, coupon, terms).await?))
}

/// A shopper's place: never cached, it changes with every admission.
fn place(status: QueueStatus) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(status)
}

/// The caller's place in a sale's waiting room, and the admission pass once admitted.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = CouponId, Path, description = "The coupon's id")),
    responses(
        (status = 200, description = "The caller's place (`Cache-Control: no-store`)", body = QueueStatus),
        (status = 400, description = "error: INVALID_REQUEST (not a number)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "error: NO_WAITING_ROOM, SALE_ENDED", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AuthRejections,
    ),
)]
#[get("/api/coupons/{id}/queue")]
pub(super) async fn queue_status(
    AuthUser(user): AuthUser,
    catalog: web::Data<Catalog>,
    rooms: web::Data<WaitingRooms>,
    CouponPath(coupon): CouponPath,
) -> Result<HttpResponse, AppError> {
    let terms = terms(&catalog, &rooms, coupon).await?;
    Ok(place(
        rooms
            .status(&user.user_id, coupon, terms.admit_per_sec)
            .await?,
    ))
}

/// A sale's waiting room: the draw's seed and the counts.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = CouponId, Path, description = "The coupon's id")),
    responses(
        (status = 200, description = "The room", body = RoomView),
        (status = 400, description = "error: INVALID_REQUEST (not a number)", body = ErrorBody),
        (status = 404, description = "error: COUPON_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "error: NO_WAITING_ROOM", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AdminRejections,
    ),
)]
#[get("/api/admin/coupons/{id}/waiting-room")]
pub(super) async fn waiting_room(
    AdminUser(_admin): AdminUser,
    catalog: web::Data<Catalog>,
    rooms: web::Data<WaitingRooms>,
    CouponPath(coupon): CouponPath,
) -> Result<HttpResponse, AppError> {
    terms(&catalog, &rooms, coupon).await?;
    Ok(HttpResponse::Ok().json(rooms.room(coupon).await?))
}
