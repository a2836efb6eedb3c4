//! The simulated payment gateway: configurable latency and failure rate, deterministic
//! per (seed, order id) so a retry gets the same answer and tests can predict outcomes.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::domain::order::OrderId;
use crate::domain::payment::PaymentOutcome;
use crate::domain::ports::PaymentGateway;

pub struct SimulatedGateway {
    latency: Duration,
    failure_rate: f64,
    seed: u64,
}

impl SimulatedGateway {
    pub fn new(latency: Duration, failure_rate: f64, seed: u64) -> Self {
        Self {
            latency,
            failure_rate: failure_rate.clamp(0.0, 1.0),
            seed,
        }
    }

    /// The decision for an order, without the latency.
    pub fn decide(&self, order: OrderId) -> PaymentOutcome {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.seed.hash(&mut hasher);
        order.as_uuid().hash(&mut hasher);
        // Uniform in [0, 1).
        let draw = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        if draw < self.failure_rate {
            PaymentOutcome::Declined
        } else {
            PaymentOutcome::Approved
        }
    }
}

#[async_trait::async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(&self, order: OrderId, _amount_cents: i64) -> PaymentOutcome {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.decide(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_rate_is_respected_and_decisions_are_stable() {
        let never = SimulatedGateway::new(Duration::ZERO, 0.0, 1);
        let always = SimulatedGateway::new(Duration::ZERO, 1.0, 1);
        let half = SimulatedGateway::new(Duration::ZERO, 0.5, 7);
        let orders: Vec<OrderId> = (0..2000).map(|_| OrderId::generate()).collect();
        assert!(
            orders
                .iter()
                .all(|o| never.decide(*o) == PaymentOutcome::Approved)
        );
        assert!(
            orders
                .iter()
                .all(|o| always.decide(*o) == PaymentOutcome::Declined)
        );
        let declined = orders
            .iter()
            .filter(|o| half.decide(**o) == PaymentOutcome::Declined)
            .count();
        assert!((800..1200).contains(&declined), "{declined} of 2000 at 50%");
        assert!(
            orders.iter().all(|o| half.decide(*o) == half.decide(*o)),
            "same answer on retry"
        );
    }
}
