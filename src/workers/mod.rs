//! Long-running loops: the payment role's consumer, coordinator and worker pool.

pub mod payment;
pub mod relay;
