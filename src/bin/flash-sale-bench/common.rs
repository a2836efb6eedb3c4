//! What several subcommands share: the server's settings, its signing key, and the JSON
//! lines they print.

use std::path::Path;

use flash_sale::adapters::oidc::SigningKeys;
use flash_sale::bench_report::Entry;
use flash_sale::config::Settings;

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
