//! Use cases, one file per verb; each owns its transaction boundary.

pub mod access;
pub mod audit;
pub mod catalog;
pub mod health;
pub mod identity;
pub mod orders;
pub mod payments;
pub mod purchase;
pub mod reconcile;
pub mod seed_demo;
pub mod throttle;
pub mod waiting_room;
