//! `tokens`: bearer tokens for wrk, as a Lua file.

use std::path::{Path, PathBuf};

use crate::common::{load_settings, mint, signing_keys};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    count: usize,
    #[arg(long)]
    prefix: String,
    /// The issuer the server expects (its own URL with the built-in issuer).
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, config_dir: &Path) -> anyhow::Result<()> {
    let settings = load_settings(config_dir)?;
    let keys = signing_keys(&settings)?;
    let mut lua = String::from("return {\n");
    for n in 0..args.count {
        lua.push_str(&format!(
            "\"{}\",\n",
            mint(
                &keys,
                &settings,
                &args.issuer,
                &format!("{}-{n}", args.prefix)
            )?
        ));
    }
    lua.push_str("}\n");
    std::fs::write(args.out, lua)?;
    Ok(())
}
