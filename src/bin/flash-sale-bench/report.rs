//! `report`: the Markdown and JSON report from the collected entries.

use std::path::PathBuf;

use flash_sale::bench_report::Report;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    markdown: PathBuf,
    #[arg(long)]
    json: PathBuf,
    #[arg(long)]
    title: String,
}

/// Writes both files; `Ok(false)` when a correctness check failed.
pub fn run(args: Args) -> anyhow::Result<bool> {
    let report = Report::from_lines(&std::fs::read_to_string(&args.input)?)?;
    std::fs::write(&args.markdown, report.to_markdown(&args.title))?;
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    if !report.passed() {
        eprintln!(
            "flash-sale-bench: a correctness check failed; see {}",
            args.markdown.display()
        );
        return Ok(false);
    }
    Ok(true)
}
