//! Integration tests, linked as one binary. They run against the real MariaDB, Redis
//! and Kafka broker that `make test` brings up; see `helpers.rs` for the isolation.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_proxy;
mod fixtures;
mod helpers;
mod private_servers;

mod abuse;
mod catalog;
mod chaos;
mod cli;
mod expiry;
mod harness;
mod identity;
mod kafka;
mod keycloak;
mod migrations;
mod ops;
mod payment;
mod payment_group;
mod publish_faults;
mod purchase;
mod readiness;
mod reconcile;
mod roles;
mod round_trips;
mod search;
mod throttle;
mod tls_stores;
mod waiting_room;
mod ws;
