//! # flash-sale
//!
//! A flash-sale (limited coupon drop) system as one binary with several roles:
//! `api` (catalog, purchase, auth), `payment` (Kafka consumer, worker pool, orders in
//! MySQL) and `ws` (WebSocket relay of payment results); `all` runs every role in one
//! process for development.
//!
//! ## Layout
//! Dependencies point inward:
//! - [`roles`] wires a role: builds the [`adapters`] it needs, mounts [`http`] modules,
//!   starts background workers, and owns graceful shutdown ([`shutdown`]).
//! - [`http`] holds thin handlers; [`error`] is the one place errors become responses.
//! - [`adapters`] talk to MySQL, Redis, Kafka and object storage, each call bounded by a
//!   timeout, none connecting eagerly (a role starts and reports "not ready" while a
//!   dependency is down).
//! - [`config`] loads layered settings once and validates them; nothing reads a global.

pub mod adapters;
pub mod app;
pub mod bench_report;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod live;
pub mod metrics;
pub mod roles;
pub mod shutdown;
pub mod telemetry;
pub mod workers;
