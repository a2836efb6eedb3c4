//! `wrk`: the JSON line printed by bench/wrk/*.lua as a run entry.

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
    #[arg(long)]
    baseline: Option<String>,
    /// Statuses that are expected answers, not errors (e.g. 409 on a sold-out sale).
    #[arg(long, value_delimiter = ',')]
    expected: Vec<u16>,
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
    let raw = std::fs::read_to_string(&args.input)?;
    let line = raw
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("no result line in {}", args.input.display()))?;
    let value: serde_json::Value = serde_json::from_str(line)?;
    let statuses: BTreeMap<String, u64> = value["statuses"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let unexpected: u64 = statuses
        .iter()
        .filter(|(status, _)| {
            let code: u16 = status.parse().unwrap_or(0);
            !(200..300).contains(&code) && !args.expected.contains(&code)
        })
        .map(|(_, n)| n)
        .sum();
    let requests = value["requests"].as_u64().unwrap_or(0);
    let cpu_us = cpu_per_request(&args.cpu_ticks, args.clock_ticks, requests)?;
    let secs = value["duration_us"].as_f64().unwrap_or(1.0) / 1e6;
    emit(&Entry::Run(Run {
        scenario: args.scenario,
        connections: args.connections,
        requests,
        rps: requests as f64 / secs.max(1e-9),
        p50_ms: value["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
        p99_ms: value["p99_us"].as_f64().unwrap_or(0.0) / 1000.0,
        errors: value["socket_errors"].as_u64().unwrap_or(0) + unexpected,
        statuses,
        baseline: args.baseline,
        cpu_us,
    }));
    Ok(())
}
