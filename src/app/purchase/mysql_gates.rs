//! The MySQL purchase gates the requirements rejected (a row lock, or a compare-and-set
//! retry loop), compiled only into benchmark builds so that `make bench` can measure the
//! Redis gate against them.

use crate::adapters::mysql::{MysqlError, MysqlPool, sale_stock};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, Reservation, StateGeneration};

pub struct MysqlGate {
    pub mysql: MysqlPool,
    pub optimistic: bool,
}

impl MysqlGate {
    /// The MySQL gate's decision, in the Redis gate's terms (no idempotency keys: the
    /// comparison is about the stock step).
    pub async fn reserve(
        &self,
        coupon: CouponId,
        user: &UserId,
        order_id: OrderId,
    ) -> Result<Reservation, MysqlError> {
        let decision = self
            .mysql
            .with_conn(async |conn| {
                let decided = if self.optimistic {
                    sale_stock::reserve_optimistic(conn, coupon, user).await
                } else {
                    sale_stock::reserve_pessimistic(conn, coupon, user).await
                };
                decided.map_err(|e| MysqlError::Unavailable(e.to_string()))
            })
            .await?;
        Ok(match decision {
            Ok(price) => Reservation::Accepted(order_id, price, StateGeneration::default()),
            Err(rejection) => Reservation::Rejected(rejection),
        })
    }
}
