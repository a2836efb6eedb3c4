//! What several subcommands share: the server's settings, its signing key, and the JSON
//! lines they print.

use std::path::Path;

use flash_sale::adapters::oidc::SigningKeys;
use flash_sale::bench_report::Entry;
use flash_sale::config::Settings;

/// CPU time per request of each process, in µs, from `name=ticks` pairs (comma
/// separated, clock ticks of /proc/<pid>/stat spent during the run).
pub fn cpu_per_request(
    ticks: &str,
    clock_ticks: f64,
    requests: u64,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let mut out = std::collections::BTreeMap::new();
    if requests == 0 || clock_ticks <= 0.0 {
        return Ok(out);
    }
    for pair in ticks
        .split(',')
        .filter(|p| !p.trim().is_empty() && !p.starts_with('='))
    {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--cpu-ticks: {pair:?} is not name=ticks"))?;
        let ticks: f64 = value.trim().parse()?;
        out.insert(
            name.trim().to_owned(),
            ticks / clock_ticks * 1e6 / requests as f64,
        );
    }
    Ok(out)
}

/// Prints one report entry as a JSON line on stdout.
pub fn emit(entry: &Entry) {
    match serde_json::to_string(entry) {
        Ok(line) => println!("{line}"),
        Err(error) => eprintln!("flash-sale-bench: {error}"),
    }
}

pub fn load_settings(dir: &Path) -> anyhow::Result<Settings> {
    Ok(Settings::load(dir)?)
}

pub fn signing_keys(settings: &Settings) -> anyhow::Result<SigningKeys> {
    let pem = std::fs::read_to_string(&settings.identity.embedded.signing_key)?;
    Ok(SigningKeys::from_pem(&pem)?)
}

/// A one-hour shopper token for `sub`, as the built-in issuer would sign it.
pub fn mint(
    keys: &SigningKeys,
    settings: &Settings,
    issuer: &str,
    sub: &str,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    Ok(keys.sign(&serde_json::json!({
        "iss": issuer, "sub": sub, "aud": settings.identity.audience,
        "iat": now, "nbf": now, "exp": now + 3600, "roles": ["user"],
    }))?)
}
