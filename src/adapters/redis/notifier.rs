//! Pushes payment results and waiting-room turns to the ws instance that holds the
//! shopper's socket: Redis channel `payment_update:<server_id>`, server id looked up
//! from the user's route. Pub/sub may lose a message; the order state lives in MySQL
//! and the waiting room answers on `GET /api/coupons/{id}/queue`, so that is tolerated.

use super::scripts::NOTIFY;
use super::{Keys, RedisError, RedisPool};
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderStatus};

/// Channel prefix; the full channel is `payment_update:<server_id>`.
pub const PAYMENT_UPDATE_PREFIX: &str = "payment_update:";

/// The message on the channel (the ws role forwards `type`, `order_id`, `status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentUpdate {
    #[serde(rename = "type")]
    pub kind: String,
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub user_id: UserId,
    /// The request that placed the order, for the ws role's log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A waiting-room turn (the ws role forwards `type`, `coupon_id`, `state`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WaitingRoomUpdate {
    #[serde(rename = "type")]
    pub kind: String,
    pub coupon_id: crate::domain::coupon::CouponId,
    /// `admitted` or `sold_out`.
    pub state: String,
    pub user_id: UserId,
}

#[derive(Clone)]
pub struct PaymentNotifier {
    redis: RedisPool,
    keys: Keys,
}

/// What happened to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Published; this many ws instances were subscribed.
    Published(i64),
    /// The user has no open socket: nothing to send.
    NoSocket,
}

impl PaymentNotifier {
    pub fn new(redis: RedisPool, keys: Keys) -> Self {
        Self { redis, keys }
    }

    pub async fn notify(
        &self,
        user: &UserId,
        order_id: OrderId,
        status: OrderStatus,
        request_id: Option<&str>,
    ) -> Result<Delivery, RedisError> {
        let message = serde_json::to_string(&PaymentUpdate {
            kind: "payment_update".to_owned(),
            order_id,
            status,
            user_id: user.clone(),
            request_id: request_id.map(str::to_owned),
        })
        .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        self.publish(user, message).await
    }

    /// Tells a shopper's sockets about a waiting-room turn.
    pub async fn notify_waiting_room(
        &self,
        user: &UserId,
        coupon_id: crate::domain::coupon::CouponId,
        state: &str,
    ) -> Result<Delivery, RedisError> {
        let message = serde_json::to_string(&WaitingRoomUpdate {
            kind: "waiting_room".to_owned(),
            coupon_id,
            state: state.to_owned(),
            user_id: user.clone(),
        })
        .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        self.publish(user, message).await
    }

    async fn publish(&self, user: &UserId, message: String) -> Result<Delivery, RedisError> {
        let mut invocation = NOTIFY.prepare_invoke();
        invocation
            .key(self.keys.ws_route(user.as_str()))
            .arg(message)
            .arg(PAYMENT_UPDATE_PREFIX);
        let receivers: i64 = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(if receivers < 0 {
            Delivery::NoSocket
        } else {
            Delivery::Published(receivers)
        })
    }
}
