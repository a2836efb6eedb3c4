//! CPU profile of the running process, for `make profile` only: compiled in with the
//! `profile` cargo feature, never in a release image. pprof-rs samples every thread's
//! stack by signal, so no system profiler is needed.
//!
//! `GET /debug/profile?seconds=10` samples for that long and answers the flame graph
//! (SVG) and the functions that held the CPU most, by their own samples and including
//! what they called.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Samples per second: a prime, so sampling does not beat with periodic work.
const FREQUENCY: i32 = 997;
const TOP: usize = 40;

#[derive(Deserialize)]
struct Window {
    seconds: Option<u64>,
}

#[derive(Serialize)]
struct Hot {
    function: String,
    samples: isize,
    percent: f64,
}

#[derive(Serialize)]
struct Profile {
    seconds: u64,
    samples: isize,
    /// Own samples: the function was on top of the stack.
    top_self: Vec<Hot>,
    /// The function was anywhere on the stack.
    top_inclusive: Vec<Hot>,
    /// Like `top_inclusive`, this crate's functions only: where our code spends.
    top_ours: Vec<Hot>,
    flamegraph_svg: String,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(profile);
}

#[get("/debug/profile")]
async fn profile(window: web::Query<Window>) -> Result<HttpResponse, AppError> {
    let seconds = window.seconds.unwrap_or(10).clamp(1, 120);
    let failed = |e: pprof::Error| AppError::BadRequest(format!("profiler: {e}"));
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(failed)?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let report = guard.report().build().map_err(failed)?;
    drop(guard);

    let mut own: HashMap<String, isize> = HashMap::new();
    let mut anywhere: HashMap<String, isize> = HashMap::new();
    let mut samples = 0;
    for (stack, count) in &report.data {
        samples += count;
        // frames[0] is the innermost frame; within a frame, symbol 0 is the innermost
        // inlined function.
        if let Some(leaf) = stack.frames.first().and_then(|f| f.first()) {
            *own.entry(function_name(&leaf.name())).or_default() += count;
        }
        let mut seen = std::collections::HashSet::new();
        for symbol in stack.frames.iter().flatten() {
            let name = function_name(&symbol.name());
            if seen.insert(name.clone()) {
                *anywhere.entry(name).or_default() += count;
            }
        }
    }
    let svg = flamegraph(&report).map_err(|e| AppError::BadRequest(format!("flame graph: {e}")))?;
    Ok(HttpResponse::Ok().json(Profile {
        seconds,
        samples,
        top_self: top(own, samples),
        top_ours: top(
            anywhere
                .iter()
                .filter(|(name, _)| name.contains("flash_sale::"))
                .map(|(name, n)| (name.clone(), *n))
                .collect(),
            samples,
        ),
        top_inclusive: top(anywhere, samples),
        flamegraph_svg: String::from_utf8_lossy(&svg).into_owned(),
    }))
}

/// The stacks as folded lines (`thread;root;...;leaf count`), drawn by inferno.
fn flamegraph(report: &pprof::Report) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let lines: Vec<String> = report
        .data
        .iter()
        .map(|(stack, count)| {
            let mut line = stack.thread_name_or_id();
            for symbol in stack.frames.iter().rev().flat_map(|f| f.iter().rev()) {
                line.push(';');
                line.push_str(&function_name(&symbol.name()));
            }
            format!("{line} {count}")
        })
        .collect();
    let mut svg = Vec::new();
    if !lines.is_empty() {
        inferno::flamegraph::from_lines(
            &mut inferno::flamegraph::Options::default(),
            lines.iter().map(String::as_str),
            &mut svg,
        )?;
    }
    Ok(svg)
}

fn top(counts: HashMap<String, isize>, total: isize) -> Vec<Hot> {
    let mut hot: Vec<_> = counts.into_iter().collect();
    hot.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hot.into_iter()
        .take(TOP)
        .map(|(function, samples)| Hot {
            percent: 100.0 * samples as f64 / total.max(1) as f64,
            function,
            samples,
        })
        .collect()
}

/// A demangled name without the trailing hash (`::h0123456789abcdef`).
fn function_name(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_owned()
        }
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn hashes_are_dropped_from_names() {
        assert_eq!(
            function_name("flash_sale::app::purchase::Purchases::purchase::h0123456789abcdef"),
            "flash_sale::app::purchase::Purchases::purchase"
        );
        assert_eq!(function_name("memcpy"), "memcpy");
        assert_eq!(function_name("a::hello"), "a::hello");
    }
}
