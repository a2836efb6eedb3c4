//! Long-running loops: the payment role's group consumer, worker pool and settler, the
//! WebSocket relay, and the drift audit.

pub mod audit;
pub mod payment;
pub mod relay;
