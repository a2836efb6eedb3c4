//! The entries `flash-sale-bench` prints, one JSON line each: runs, checks, figures and
//! machine facts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One load run of one scenario at one concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub scenario: String,
    pub connections: u32,
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Transport errors and unexpected statuses (5xx, timeouts).
    pub errors: u64,
    /// Responses by HTTP status.
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
    /// The scenario this run's ratio is computed against (same connections).
    #[serde(default)]
    pub baseline: Option<String>,
    /// CPU time per request of each process over the measured run, in µs, read from
    /// /proc: `app` (the api process), `payment`, `redis`, `broker`, `mysql`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_us: BTreeMap<String, f64>,
}

/// A correctness check attached to a run (no oversell, no user over limit, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
}

impl Check {
    pub fn equal(name: &str, expected: impl ToString, actual: impl ToString) -> Self {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        Self {
            name: name.to_owned(),
            ok: expected == actual,
            expected,
            actual,
        }
    }

    pub fn at_most(name: &str, limit: i64, actual: i64) -> Self {
        Self {
            name: name.to_owned(),
            expected: format!("<= {limit}"),
            actual: actual.to_string(),
            ok: actual <= limit,
        }
    }
}

/// A measured figure that is not a request rate (memory per socket, orders/s, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    #[serde(default)]
    pub note: String,
}

/// Everything one `make bench` produced; one JSON line each in the raw results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Run(Run),
    Check(Check),
    Figure(Figure),
    Fact { name: String, value: String },
}
