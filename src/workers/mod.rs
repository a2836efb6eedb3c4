//! Long-running loops: the payment role's group consumer, worker pool and settler, the
//! WebSocket relay, the drift audit, the health gauges, the search index's follower
//! and small housekeeping sweeps.

pub mod audit;
pub mod health;
pub mod payment;
pub mod relay;
pub mod search_follow;
pub mod sweep;
pub mod waiting_room;
