//! Payment outcomes. The requirements have no real payment: a simulated gateway stands
//! in (`adapters::gateway`), behind the [`PaymentGateway`](super::ports::PaymentGateway)
//! port so a real one can replace it.

use super::coupon::CouponId;
use super::identity::UserId;
use super::order::{OrderId, OrderPlaced, OrderStatus};

/// One payment to run.
#[derive(Debug, Clone)]
pub struct PaymentJob {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub coupon_id: CouponId,
    pub price_cents: i64,
    /// The purchase's idempotency record, dropped if the payment fails. Unknown for a
    /// payment resumed after a crash (orders rows do not keep it): that record then
    /// simply expires.
    pub idempotency_digest: Option<String>,
    /// The request that placed the order, for the logs (unknown after a crash, too).
    pub request_id: Option<String>,
}

impl From<&OrderPlaced> for PaymentJob {
    fn from(event: &OrderPlaced) -> Self {
        Self {
            order_id: event.order_id,
            user_id: event.user_id.clone(),
            coupon_id: event.coupon_id,
            price_cents: event.price_cents,
            idempotency_digest: event.idempotency_digest.clone(),
            request_id: event.request_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved,
    Declined,
}

impl PaymentOutcome {
    /// The order status this outcome settles to.
    pub fn order_status(self) -> OrderStatus {
        match self {
            Self::Approved => OrderStatus::Paid,
            Self::Declined => OrderStatus::Failed,
        }
    }
}
