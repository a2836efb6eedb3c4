//! Use cases, one file per verb; each owns its transaction boundary.

pub mod catalog;
pub mod identity;
pub mod seed_demo;
