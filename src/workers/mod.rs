//! Long-running loops: the payment role's group consumer, worker pool and settler, the
//! WebSocket relay, the drift audit and small housekeeping sweeps.

pub mod audit;
pub mod payment;
pub mod relay;
pub mod sweep;
