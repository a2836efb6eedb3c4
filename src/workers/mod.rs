//! Long-running loops: the payment role's consumer, coordinator and worker pool, the
//! WebSocket relay, and the drift audit.

pub mod audit;
pub mod payment;
pub mod relay;
