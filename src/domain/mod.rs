//! The centre: types and rules, no I/O. Nothing here imports actix, diesel, redis or
//! rskafka.

pub mod coupon;
pub mod failure;
pub mod identity;
pub mod order;
pub mod payment;
pub mod ports;
pub mod search;
pub mod waiting_room;
