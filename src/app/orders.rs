//! A shopper's orders: MySQL once the payment role has written them, the pending record
//! in Redis before that, so an accepted purchase is never missing.

use crate::adapters::mysql::{MysqlPool, orders};
use crate::adapters::redis::pending_orders::PendingOrders;
use crate::domain::failure::Failure;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderError, OrderId, OrderView};

/// Most orders listed at once.
const LIST_LIMIT: usize = 100;

#[derive(Clone)]
pub struct Orders {
    mysql: MysqlPool,
    pending: PendingOrders,
}

fn unavailable(e: impl Into<Failure>) -> OrderError {
    OrderError::Unavailable(e.into())
}

impl Orders {
    pub fn new(mysql: MysqlPool, pending: PendingOrders) -> Self {
        Self { mysql, pending }
    }

    /// The caller's order; someone else's is `NotFound` too.
    pub async fn get(&self, user: &UserId, id: OrderId) -> Result<OrderView, OrderError> {
        let stored = self
            .mysql
            .with_conn(async |conn| orders::find_for_user(conn, user, id).await)
            .await
            .map_err(unavailable)?;
        if let Some(order) = stored {
            return Ok(order);
        }
        self.pending
            .get(user, id)
            .await
            .map_err(unavailable)?
            .ok_or(OrderError::NotFound)
    }

    /// The caller's orders, newest first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<OrderView>, OrderError> {
        let limit = i64::try_from(LIST_LIMIT).unwrap_or(i64::MAX);
        let mut all = self
            .mysql
            .with_conn(async |conn| orders::list_for_user(conn, user, limit).await)
            .await
            .map_err(unavailable)?;
        for pending in self
            .pending
            .list(user, LIST_LIMIT)
            .await
            .map_err(unavailable)?
        {
            if !all.iter().any(|o| o.order_id == pending.order_id) {
                all.push(pending);
            }
        }
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.order_id.cmp(&a.order_id))
        });
        all.truncate(LIST_LIMIT);
        Ok(all)
    }
}
