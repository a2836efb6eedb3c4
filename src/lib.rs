//! # flash-sale
//!
//! A flash-sale (limited coupon drop) system as one binary with several roles:
//! `api` (catalog, purchase, auth), `payment` (Kafka consumer, worker pool, orders in
//! MySQL) and `ws` (WebSocket relay of payment results); `all` runs every role in one
//! process for development.
//!
//! ## Layout
//! Dependencies point inward, and `layering.rs` checks it by reading the sources:
//! - [`domain`] holds types and rules and does no I/O; its [`domain::ports`] are the
//!   traits for services that cannot run here (identity provider, object store,
//!   payment gateway).
//! - [`app`] holds the use cases (purchase, catalog, orders, payments, reconcile, …);
//!   they call [`adapters`], which talk to MySQL, Redis, Kafka and object storage, each
//!   call bounded by a timeout, none connecting eagerly (a role starts and reports "not
//!   ready" while a dependency is down).
//! - [`http`] holds thin handlers over the use cases; [`error`] is the one place errors
//!   become responses. [`live`] keeps the open WebSockets; [`workers`] only loop
//!   (payment consumer, relay, audit), calling use cases.
//! - [`roles`] wires a role: builds the adapters it needs, mounts the HTTP modules,
//!   starts the workers, and owns graceful shutdown ([`shutdown`]).
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

#[cfg(test)]
mod layering;
