//! The payment role's long-running work; the decisions are the use cases of
//! [`crate::app::payments`].
//!
//! - The **consumer** (`consumer.rs`) is one member of the payment instances' Kafka
//!   consumer group and batches the records it is handed; the **coordinator**
//!   (`coordinator.rs`) keeps the partitions this instance owns (claimed in MySQL with
//!   an epoch that fences every earlier owner) and records each batch with the
//!   partition's next offset in one transaction, so a crash, a replay or a stale owner
//!   never doubles an order. On assignment it resumes payments a previous owner left
//!   PENDING.
//! - A bounded **worker pool** (`pool.rs`) charges each new order through the gateway;
//!   the **settler** (`settler.rs`) moves charged orders to PAID or FAILED in batches.
//!   Full queues block the consumer (backpressure), never memory.

mod consumer;
mod coordinator;
mod metrics;
mod pool;
mod settler;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use metrics::PaymentMetrics;

use crate::adapters::kafka::codec::EventSigner;
use crate::adapters::kafka::group::GroupSettings;
use crate::app::payments::Payments;
use crate::domain::payment::{PaymentJob, PaymentOutcome};
use crate::domain::ports::PaymentGateway;
use crate::shutdown::Shutdown;

/// Everything the payment role's tasks share.
pub struct PaymentDeps {
    pub payments: Payments,
    pub group: GroupSettings,
    pub gateway: Arc<dyn PaymentGateway>,
    pub metrics: PaymentMetrics,
    pub pool_size: usize,
    pub queue: usize,
    /// Checks that each event was signed by an api instance of this deployment.
    pub signer: EventSigner,
}

/// Starts the consumer, the worker pool and the settler; they stop on shutdown in that
/// order (the consumer hands its partitions back, the pool drains its queue, the
/// settler settles every charge).
pub fn start(deps: PaymentDeps, shutdown: &Shutdown) {
    let deps = Arc::new(deps);
    let (jobs, queue) = mpsc::channel::<PaymentJob>(deps.queue.max(1));
    let (charged, results) = mpsc::channel::<(PaymentJob, PaymentOutcome)>(deps.queue.max(1));
    pool::start(deps.clone(), queue, charged, shutdown);
    shutdown.spawn(settler::run(deps.clone(), results));
    // The consumer owns the only job sender: when it stops, the queue closes and the
    // workers exit after draining it.
    shutdown.spawn(consumer::run(deps, jobs, shutdown.token()));
}
