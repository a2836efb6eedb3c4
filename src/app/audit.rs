//! The drift audit: for every live coupon, does Redis still hold what the sale promises?
//! Stock + the units its buyer records hold must equal the total; a sale whose state is
//! gone is reported as such. It reads Redis only (one script per coupon), so it is cheap
//! enough to run often; `flash-sale reconcile` repairs what it finds.

use serde::Serialize;

use crate::adapters::mysql::{MysqlPool, coupons, orders};
use crate::adapters::redis::stock_gate::StockGate;
use crate::domain::coupon::CouponId;

/// One coupon's audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleAudit {
    pub coupon_id: CouponId,
    pub total: i64,
    /// None: the sale's state is missing from Redis.
    pub stock: Option<i64>,
    pub units_held: i64,
}

impl SaleAudit {
    /// stock + units held − total: 0 when consistent, above 0 when more can be sold than
    /// the total allows (overselling), below 0 when units are stuck.
    pub fn drift(&self) -> Option<i64> {
        self.stock.map(|stock| stock + self.units_held - self.total)
    }

    pub fn is_consistent(&self) -> bool {
        self.drift() == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("audit failed: {0}")]
pub struct AuditError(String);

/// Orders written but not settled yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingOrders {
    pub count: i64,
    /// Age of the oldest, in seconds (0 with none).
    pub oldest_secs: i64,
}

/// The PENDING orders: a payment role that stopped settling shows here first.
pub async fn pending_orders(mysql: &MysqlPool) -> Result<PendingOrders, AuditError> {
    let (count, oldest) = mysql
        .with_conn(async |conn| orders::pending_summary(conn).await)
        .await
        .map_err(|e| AuditError(e.to_string()))?;
    let oldest_secs = oldest.map_or(0, |created| {
        (chrono::Utc::now().naive_utc() - created)
            .num_seconds()
            .max(0)
    });
    Ok(PendingOrders { count, oldest_secs })
}

/// Audits every live coupon (not deleted, sale not ended).
pub async fn audit_live(mysql: &MysqlPool, gate: &StockGate) -> Result<Vec<SaleAudit>, AuditError> {
    let live = mysql
        .with_conn(async |conn| coupons::live(conn).await)
        .await
        .map_err(|e| AuditError(e.to_string()))?;
    let mut lines = Vec::with_capacity(live.len());
    for coupon in live {
        let (stock, units_held) = gate
            .audit(coupon.id)
            .await
            .map_err(|e| AuditError(e.to_string()))?;
        lines.push(SaleAudit {
            coupon_id: coupon.id,
            total: coupon.total_quantity,
            stock,
            units_held,
        });
    }
    Ok(lines)
}
