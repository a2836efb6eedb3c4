//! Live payment results: this instance's sockets by user ([`hub::Hub`]) and the loop of
//! one socket ([`session`]). The handshake that opens a socket is in `http/ws.rs`; the
//! relay that feeds the hub from Redis is a worker.

pub mod hub;
pub mod session;

pub use hub::Hub;
