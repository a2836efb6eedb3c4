//! The report as Markdown, as written to `bench/results/<date>-<host>.md`.

use super::Report;

impl Report {
    pub fn to_markdown(&self, title: &str) -> String {
        use std::fmt::Write;
        let mut md = String::new();
        let _ = writeln!(md, "# {title}\n");
        let verdict = if self.passed() {
            "PASSED (every correctness check held)"
        } else {
            "FAILED (a correctness check did not hold)"
        };
        let _ = writeln!(md, "Result: **{verdict}**\n");
        let _ = writeln!(md, "## Machine\n");
        for (name, value) in &self.facts {
            let _ = writeln!(md, "- {name}: {value}");
        }
        let _ = writeln!(md, "\n## Runs\n");
        let _ = writeln!(
            md,
            "| scenario | conns | requests | RPS | p50 ms | p99 ms | errors | ratio | statuses |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|---|");
        for run in &self.runs {
            let ratio = match (self.ratio(run), &run.baseline) {
                (Some(r), Some(base)) => format!("{r:.2} × {base}"),
                _ => "—".to_owned(),
            };
            let statuses = run
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
                run.scenario,
                run.connections,
                run.requests,
                run.rps,
                run.p50_ms,
                run.p99_ms,
                run.errors,
                ratio,
                statuses
            );
        }
        let measured: Vec<_> = self.runs.iter().filter(|r| !r.cpu_us.is_empty()).collect();
        if !measured.is_empty() {
            let _ = writeln!(md, "\n## CPU per request (µs, by process)\n");
            let _ = writeln!(
                md,
                "CPU time of each process over the measured run (/proc), divided by the requests; \
                 the app's ratio is to the hello-world request of the same run; `search` is the \
                 part of the app's CPU its search threads took.\n"
            );
            let _ = writeln!(
                md,
                "| scenario | conns | app | app ratio | search | payment | Redis | broker | MySQL |"
            );
            let _ = writeln!(md, "|---|---:|---:|---|---:|---:|---:|---:|---:|");
            let cell = |run: &super::Run, process: &str| {
                run.cpu_us
                    .get(process)
                    .map_or("—".to_owned(), |us| format!("{us:.1}"))
            };
            for run in measured {
                let ratio = self
                    .cpu_ratio(run, "app")
                    .map_or("—".to_owned(), |r| format!("{r:.1}×"));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    run.scenario,
                    run.connections,
                    cell(run, "app"),
                    ratio,
                    cell(run, "search"),
                    cell(run, "payment"),
                    cell(run, "redis"),
                    cell(run, "broker"),
                    cell(run, "mysql"),
                );
            }
        }
        if !self.figures.is_empty() {
            let _ = writeln!(md, "\n## Figures\n");
            let _ = writeln!(md, "| figure | value | note |");
            let _ = writeln!(md, "|---|---:|---|");
            for figure in &self.figures {
                let _ = writeln!(
                    md,
                    "| {} | {:.2} {} | {} |",
                    figure.name, figure.value, figure.unit, figure.note
                );
            }
        }
        let _ = writeln!(md, "\n## Correctness checks\n");
        let _ = writeln!(md, "| check | expected | actual | ok |");
        let _ = writeln!(md, "|---|---|---|---|");
        for check in &self.checks {
            let ok = if check.ok { "yes" } else { "**NO**" };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                check.name, check.expected, check.actual, ok
            );
        }
        let _ = writeln!(md, "\n## Targets (reported, not enforced)\n");
        for (target, met, value) in self.targets() {
            let mark = match met {
                Some(true) => "met",
                Some(false) => "missed",
                None => "not measured",
            };
            let _ = writeln!(md, "- {target}: {value} ({mark})");
        }
        md
    }
}
