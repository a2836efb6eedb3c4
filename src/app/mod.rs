//! Use cases, one file per verb; each owns its transaction boundary.

pub mod seed_demo;
