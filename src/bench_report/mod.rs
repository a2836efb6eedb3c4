//! The benchmark report of `make bench`: runs (from wrk and redis-benchmark), figures
//! (WebSocket memory, orders/s), correctness checks, and the targets we aim for. A run
//! whose correctness checks fail is a failed run, whatever its speed.

mod entry;
mod markdown;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use entry::{Check, Entry, Figure, Run};

/// Every entry of one `make bench`, grouped by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub facts: BTreeMap<String, String>,
    pub runs: Vec<Run>,
    pub checks: Vec<Check>,
    pub figures: Vec<Figure>,
}

impl Report {
    /// Builds a report from JSON lines (blank lines ignored).
    pub fn from_lines(text: &str) -> Result<Self, serde_json::Error> {
        let mut report = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Entry>(line)? {
                Entry::Run(run) => report.runs.push(run),
                Entry::Check(check) => report.checks.push(check),
                Entry::Figure(figure) => report.figures.push(figure),
                Entry::Fact { name, value } => {
                    report.facts.insert(name, value);
                }
            }
        }
        Ok(report)
    }

    /// True when every correctness check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    fn run(&self, scenario: &str, connections: u32) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.scenario == scenario && r.connections == connections)
    }

    /// `run.rps / baseline.rps` for the same connection count.
    pub fn ratio(&self, run: &Run) -> Option<f64> {
        let baseline = self.run(run.baseline.as_deref()?, run.connections)?;
        (baseline.rps > 0.0).then(|| run.rps / baseline.rps)
    }

    /// A process's CPU per request in `run` divided by the same in its baseline run (the
    /// hello-world request of the same server at the same connections).
    pub fn cpu_ratio(&self, run: &Run, process: &str) -> Option<f64> {
        let baseline = self.run(run.baseline.as_deref()?, run.connections)?;
        let (mine, base) = (run.cpu_us.get(process)?, baseline.cpu_us.get(process)?);
        (*base > 0.0).then(|| mine / base)
    }

    /// The targets the benchmark aims for, evaluated (reported, never a failure).
    pub fn targets(&self) -> Vec<(String, Option<bool>, String)> {
        let mut targets = Vec::new();
        let purchase = self.run("purchase (hot coupon, redis)", 256);
        let baseline = self.run("baseline (GET /healthz)", 256);
        let pessimistic = self.run("purchase (hot coupon, mysql pessimistic)", 256);
        let browse = self.run("browse (cached page)", 256);
        let ratio = |a: Option<&Run>, b: Option<&Run>| match (a, b) {
            (Some(a), Some(b)) if b.rps > 0.0 => Some(a.rps / b.rps),
            _ => None,
        };
        let r = ratio(purchase, baseline);
        targets.push((
            "purchase >= 50% of baseline RPS at 256 connections".to_owned(),
            r.map(|r| r >= 0.5),
            r.map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0)),
        ));
        let p99 = purchase.map(|p| p.p99_ms);
        targets.push((
            "purchase p99 <= 25 ms at 256 connections".to_owned(),
            p99.map(|p| p <= 25.0),
            p99.map_or("n/a".into(), |p| format!("{p:.1} ms")),
        ));
        let r = ratio(purchase, pessimistic);
        targets.push((
            "purchase >= 20x the pessimistic-lock strategy".to_owned(),
            r.map(|r| r >= 20.0),
            r.map_or("n/a".into(), |r| format!("{r:.1}x")),
        ));
        let r = ratio(browse, baseline);
        targets.push((
            "browse >= 70% of baseline RPS".to_owned(),
            r.map(|r| r >= 0.7),
            r.map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0)),
        ));
        let purchase64 = self.run("purchase (hot coupon, redis)", 64);
        let r = purchase64.and_then(|p| self.cpu_ratio(p, "app"));
        targets.push((
            "app CPU per accepted purchase <= 2.5x per hello-world request (64 connections)"
                .to_owned(),
            r.map(|r| r <= 2.5),
            r.map_or("n/a".into(), |r| format!("{r:.1}x")),
        ));
        let raw = self.run("raw Redis (EVALSHA purchase.lua)", 64);
        let r = match (purchase64, raw) {
            (Some(p), Some(raw)) => match (p.cpu_us.get("redis"), raw.cpu_us.get("redis")) {
                (Some(mine), Some(base)) if *base > 0.0 => Some(mine / base),
                _ => None,
            },
            _ => None,
        };
        targets.push((
            "Redis CPU per accepted purchase <= 1.2x one raw EVALSHA (64 connections)".to_owned(),
            r.map(|r| r <= 1.2),
            r.map_or("n/a".into(), |r| format!("{r:.2}x")),
        ));
        targets.push(median_target(
            "accepted purchases/s while shoppers search >= 95% of the same load without (median of the pairs)",
            &self.search_pair_ratios(),
            |m| m >= 0.95,
        ));
        targets.push(median_target(
            "api CPU per accepted purchase outside its search threads while shoppers search <= 105% of the same without (median of the pairs)",
            &self.search_pair_cpu_ratios(),
            |m| m <= 1.05,
        ));
        targets
    }

    /// The api's CPU per accepted purchase, its search threads' share taken out, with
    /// shoppers searching beside the purchases divided by the same without: whether the
    /// purchase path itself gets dearer while searches run, whatever CPU they take.
    pub fn search_pair_cpu_ratios(&self) -> Vec<f64> {
        self.pair_ratios(|run| {
            let app = run.cpu_us.get("app")? - run.cpu_us.get("search").copied().unwrap_or(0.0);
            let accepted = run.statuses.get("202").copied().unwrap_or(0);
            (accepted > 0).then(|| app * run.requests as f64 / accepted as f64)
        })
    }

    /// Accepted purchases per second with shoppers searching beside them divided by the
    /// same load without, one ratio per pair of neighbouring runs (in the order the
    /// pairs ran). Accepted, not answered: a 409 costs far less than a purchase.
    pub fn search_pair_ratios(&self) -> Vec<f64> {
        self.pair_ratios(|run| {
            let accepted = run.statuses.get("202").copied().unwrap_or(0);
            Some(run.rps * accepted as f64 / run.requests.max(1) as f64)
        })
    }

    /// `measure` of the run with searches divided by that of the run without, for each
    /// pair of section 4c (in the order they ran); a pair without a positive base is left
    /// out.
    fn pair_ratios(&self, measure: impl Fn(&Run) -> Option<f64>) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|without| {
                let pair = without.scenario.strip_prefix(PAIR_WITHOUT_SEARCHES)?;
                let with = self.run(&format!("{PAIR_WITH_SEARCHES}{pair}"), without.connections)?;
                let base = measure(without).filter(|base| *base > 0.0)?;
                Some(measure(with)? / base)
            })
            .collect()
    }
}

/// The scenario names of the paired purchase runs, followed by the pair's number.
pub const PAIR_WITHOUT_SEARCHES: &str = "purchase (hot coupon) without searches, pair ";
pub const PAIR_WITH_SEARCHES: &str = "purchase (hot coupon) while shoppers search, pair ";

/// A target judged by the median of per-pair ratios; the value lists every pair too.
fn median_target(
    name: &str,
    ratios: &[f64],
    met: fn(f64) -> bool,
) -> (String, Option<bool>, String) {
    let m = median(ratios);
    let value = m.map_or("n/a".into(), |m| {
        let each: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        format!("{:.0}% (pairs: {})", m * 100.0, each.join(", "))
    });
    (name.to_owned(), m.map(met), value)
}

/// The middle value (the mean of the two middle ones for an even count): one slow or
/// fast pair on a shared machine does not move it.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, connections: u32, rps: f64, baseline: Option<&str>) -> Entry {
        Entry::Run(Run {
            scenario: scenario.into(),
            connections,
            requests: 1000,
            rps,
            p50_ms: 1.0,
            p99_ms: 5.0,
            errors: 0,
            statuses: BTreeMap::from([("202".into(), 1000)]),
            baseline: baseline.map(str::to_owned),
            cpu_us: BTreeMap::new(),
        })
    }

    fn lines(entries: &[Entry]) -> String {
        entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_failing_check_fails_the_run() {
        let entries = [
            run("baseline (GET /healthz)", 256, 100_000.0, None),
            Entry::Check(Check::equal("sold units = stock", 100, 100)),
            Entry::Check(Check::equal("events on topic = accepted", 100, 101)),
        ];
        let report = Report::from_lines(&lines(&entries)).unwrap();
        assert!(!report.passed());
        let md = report.to_markdown("t");
        assert!(md.contains("FAILED"), "{md}");
        assert!(
            md.contains("| events on topic = accepted | 100 | 101 | **NO** |"),
            "{md}"
        );
    }

    #[test]
    fn passing_checks_and_ratios() {
        let entries = [
            Entry::Fact {
                name: "cores".into(),
                value: "2".into(),
            },
            run("baseline (GET /healthz)", 256, 100_000.0, None),
            run(
                "purchase (hot coupon, redis)",
                256,
                60_000.0,
                Some("baseline (GET /healthz)"),
            ),
            run(
                "purchase (hot coupon, mysql pessimistic)",
                256,
                1_000.0,
                Some("baseline (GET /healthz)"),
            ),
            Entry::Check(Check::equal("no oversell", 0, 0)),
            Entry::Check(Check::at_most("units of the busiest user", 1, 1)),
        ];
        let report = Report::from_lines(&lines(&entries)).unwrap();
        assert!(report.passed());
        let purchase = &report.runs[1];
        assert_eq!(report.ratio(purchase), Some(0.6));
        let targets = report.targets();
        assert_eq!(targets[0].1, Some(true), "60% >= 50%");
        assert_eq!(targets[2].1, Some(true), "60x >= 20x");
        assert_eq!(targets[3].1, None, "browse not measured");
        assert!(report.to_markdown("t").contains("PASSED"));
    }

    #[test]
    fn cpu_per_request_is_compared_with_the_baseline_and_raw_evalsha() {
        let with_cpu = |entry: Entry, cpu: &[(&str, f64)]| match entry {
            Entry::Run(mut run) => {
                run.cpu_us = cpu.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
                Entry::Run(run)
            }
            other => other,
        };
        let base = "baseline (GET /healthz)";
        let entries = [
            with_cpu(run(base, 64, 100_000.0, None), &[("app", 10.0)]),
            with_cpu(
                run("raw Redis (EVALSHA purchase.lua)", 64, 30_000.0, None),
                &[("redis", 20.0)],
            ),
            with_cpu(
                run("purchase (hot coupon, redis)", 64, 10_000.0, Some(base)),
                &[("app", 20.0), ("redis", 30.0)],
            ),
        ];
        let report = Report::from_lines(&lines(&entries)).unwrap();
        assert_eq!(report.cpu_ratio(&report.runs[2], "app"), Some(2.0));
        let targets = report.targets();
        assert_eq!(targets[4].1, Some(true), "2.0x <= 2.5x: {:?}", targets[4]);
        assert_eq!(targets[5].1, Some(false), "1.5x > 1.2x: {:?}", targets[5]);
        let md = report.to_markdown("t");
        assert!(
            md.contains("| purchase (hot coupon, redis) | 64 | 20.0 | 2.0× |"),
            "{md}"
        );
    }

    #[test]
    fn paired_search_runs_are_judged_by_their_median_ratio() {
        let base = "baseline (GET /healthz)";
        let pair = |n: u32, without: f64, with: f64| {
            [
                run(
                    &format!("{PAIR_WITHOUT_SEARCHES}{n}"),
                    256,
                    without,
                    Some(base),
                ),
                run(&format!("{PAIR_WITH_SEARCHES}{n}"), 256, with, Some(base)),
            ]
        };
        let mut entries = vec![run(base, 256, 100_000.0, None)];
        entries.extend(pair(1, 1000.0, 700.0)); // one unlucky pair
        entries.extend(pair(2, 1000.0, 990.0));
        entries.extend(pair(3, 1000.0, 1020.0));
        let report = Report::from_lines(&lines(&entries)).unwrap();
        assert_eq!(report.search_pair_ratios(), vec![0.7, 0.99, 1.02]);
        let targets = report.targets();
        let target = &targets[targets.len() - 2];
        assert_eq!(target.1, Some(true), "{target:?}");
        assert_eq!(target.2, "99% (pairs: 70%, 99%, 102%)");
        assert_eq!(targets.last().unwrap().1, None, "no CPU measured");
        assert_eq!(median(&[1.0, 3.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_purchase_path_is_compared_without_the_search_threads() {
        let base = "baseline (GET /healthz)";
        let measured =
            |scenario: String, app: f64, search: f64| match run(&scenario, 256, 1000.0, Some(base))
            {
                Entry::Run(mut run) => {
                    run.cpu_us =
                        BTreeMap::from([("app".to_owned(), app), ("search".to_owned(), search)]);
                    Entry::Run(run)
                }
                other => other,
            };
        let entries = [
            measured(format!("{PAIR_WITHOUT_SEARCHES}1"), 100.0, 0.0),
            measured(format!("{PAIR_WITH_SEARCHES}1"), 130.0, 28.0),
            measured(format!("{PAIR_WITHOUT_SEARCHES}2"), 100.0, 0.0),
            measured(format!("{PAIR_WITH_SEARCHES}2"), 120.0, 10.0),
        ];
        let report = Report::from_lines(&lines(&entries)).unwrap();
        let ratios = report.search_pair_cpu_ratios();
        assert_eq!(ratios.len(), 2);
        assert!(
            (ratios[0] - 1.02).abs() < 1e-9 && (ratios[1] - 1.10).abs() < 1e-9,
            "{ratios:?}"
        );
        let target = report.targets().pop().unwrap();
        assert_eq!(target.1, Some(false), "median 106% > 105%: {target:?}");
        assert_eq!(target.2, "106% (pairs: 102%, 110%)");
    }

    #[test]
    fn no_checks_is_not_a_pass() {
        let report =
            Report::from_lines(&lines(&[run("baseline (GET /healthz)", 64, 1.0, None)])).unwrap();
        assert!(!report.passed());
        assert!(!Check::at_most("x", 1, 2).ok);
    }
}
