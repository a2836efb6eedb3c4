//! Fault drills against the production shape (`make cluster`): NGINX in front of two
//! instances of each role, a Redis Cluster and three Kafka brokers. Each drill breaks
//! one part while shoppers buy, then checks exact counts: every 202 is a PAID order,
//! stock left + units sold = total, no shopper holds two.
//!
//! Run by `make test-cluster` (scripts/test-cluster.sh brings the cluster up and passes
//! its address); without it every drill prints that it was skipped. The drills run one
//! at a time: they stop and start the cluster's shared processes.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crowd;
mod drills;
mod harness;
