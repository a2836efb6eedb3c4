//! `redis-benchmark`: the last row of `redis-benchmark --csv` as a run entry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use flash_sale::bench_report::{Entry, Run};

use crate::common::{cpu_per_request, emit};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    connections: u32,
    /// Calls redis-benchmark made (`-n`), for the CPU per call.
    #[arg(long, default_value_t = 0)]
    requests: u64,
    #[arg(long)]
    input: PathBuf,
    /// CPU clock ticks each process spent during the run: `app=123,redis=45`.
    #[arg(long, default_value = "")]
    cpu_ticks: String,
    /// Clock ticks per second (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100.0)]
    clock_ticks: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let raw = std::fs::read_to_string(&args.input)?;
    let row = raw
        .lines()
        .rfind(|l| !l.starts_with("\"test\""))
        .ok_or_else(|| anyhow::anyhow!("no CSV row in {}", args.input.display()))?;
    let fields: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    let cpu_us = cpu_per_request(&args.cpu_ticks, args.clock_ticks, args.requests)?;
    emit(&Entry::Run(Run {
        scenario: args.scenario,
        connections: args.connections,
        requests: args.requests,
        rps: field(0),
        p50_ms: field(3),
        p99_ms: field(5),
        errors: 0,
        statuses: BTreeMap::new(),
        baseline: None,
        cpu_us,
    }));
    Ok(())
}
