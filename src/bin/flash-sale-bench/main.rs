//! Helper of `make bench` (scripts/bench.sh): mints tokens for wrk, turns wrk and
//! redis-benchmark output into report entries, checks a sale's final counts against
//! MySQL, Redis and Kafka, measures the payment drain and the WebSocket relay, and
//! writes the report. The HTTP load itself comes from wrk; this tool never generates it.
//!
//! Every subcommand reads the same configuration as the server (`--config-dir`,
//! `FLASH_ENV`, `FLASH__*`), so it looks at the very database, namespace and topics the
//! benchmarked processes use. Entries are printed as JSON lines on stdout.

mod check_sale;
mod common;
mod drain;
mod redis_benchmark;
mod report;
mod tokens;
mod wrk;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flash_sale::bench_report::Entry;

use crate::common::emit;

#[derive(Parser)]
#[command(name = "flash-sale-bench", about = "Measurement helper of make bench")]
struct Cli {
    #[arg(long, default_value = "config", global = true)]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a Lua file returning `count` bearer tokens (subjects `<prefix>-<n>`).
    Tokens(tokens::Args),
    /// Converts the JSON line printed by bench/wrk/*.lua into a run entry.
    Wrk(wrk::Args),
    /// Converts `redis-benchmark --csv` output into a run entry.
    RedisBenchmark(redis_benchmark::Args),
    /// Checks a sale's final counts: Redis stock, buyer records, events on the topic
    /// (and, with --orders, order rows) against the number of accepted purchases.
    CheckSale(check_sale::Args),
    /// Waits until `expected` orders are settled (PAID or FAILED); prints orders/s.
    Drain(drain::Args),
    /// Holds idle sockets on a ws instance, reports memory per socket, then measures
    /// publish-to-socket latency.
    Ws(ws::Args),
    /// Prints a machine fact entry.
    Fact { name: String, value: String },
    /// Writes the Markdown and JSON report; exits 1 when a correctness check failed.
    Report(report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("flash-sale-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("flash-sale-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_dir = &cli.config_dir;
    match cli.command {
        Command::Tokens(args) => tokens::run(args, config_dir)?,
        Command::Wrk(args) => wrk::run(args)?,
        Command::RedisBenchmark(args) => redis_benchmark::run(args)?,
        Command::CheckSale(args) => check_sale::run(args, config_dir).await?,
        Command::Drain(args) => drain::run(args, config_dir).await?,
        Command::Ws(args) => ws::run(args, config_dir).await?,
        Command::Fact { name, value } => emit(&Entry::Fact { name, value }),
        Command::Report(args) => {
            if !report::run(args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
