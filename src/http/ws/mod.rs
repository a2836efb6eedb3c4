//! The WebSocket relay: `GET /ws` upgrades an authenticated shopper, the [`hub::Hub`]
//! keeps this instance's sockets, and payment results arriving on
//! `payment_update:<server_id>` are forwarded to the user's sockets.

pub mod hub;
pub mod upgrade;

pub use hub::Hub;
pub use upgrade::configure;
