// Summarises `cargo deny --format json check` output (read on stdin): the counts of each
// check, then one line for the crates locked at more than one version (warnings in
// deny.toml; cargo-deny's report of each, with its inclusion graph, runs to thousands
// of lines). Exits 2 when there are other diagnostics, which the caller shows in
// cargo-deny's own format.
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const dups = [];
  let others = 0;
  for (const line of input.split("\n")) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      if (line.trim()) others++; // not JSON: an error before any check ran
      continue;
    }
    if (msg.type === "summary") {
      for (const [check, n] of Object.entries(msg.fields)) {
        const state = n.errors > 0 ? "FAILED" : "ok";
        console.log(`${check} ${state}: ${n.errors} errors, ${n.warnings} warnings, ${n.notes} notes`);
      }
    } else if (msg.type === "diagnostic" && msg.fields?.code === "duplicate") {
      const versions = msg.fields.graphs.map((g) => g.Krate.version);
      dups.push(`${msg.fields.graphs[0].Krate.name} ${versions.join(", ")}`);
    } else if (msg.type === "diagnostic" || msg.type === "log") {
      others++;
    }
  }
  console.log(`${dups.length} crates locked at more than one version: ${dups.join("; ") || "none"}`);
  process.exit(others > 0 ? 2 : 0);
});
