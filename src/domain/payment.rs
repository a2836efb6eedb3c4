//! Payment outcomes. The requirements have no real payment: a simulated gateway stands
//! in (`adapters::gateway`), behind the [`PaymentGateway`](super::ports::PaymentGateway)
//! port so a real one can replace it.

use super::order::OrderStatus;

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
