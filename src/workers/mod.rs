//! Long-running loops: the payment role's group consumer, worker pool and settler, the
//! WebSocket relay, the drift audit, the health gauges and small housekeeping sweeps.

pub mod audit;
pub mod health;
pub mod payment;
pub mod relay;
pub mod sweep;
pub mod waiting_room;
