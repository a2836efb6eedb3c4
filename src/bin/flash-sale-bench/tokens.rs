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
    /// Also write, in the same order, an admission pass of each subject for this
    /// waiting-room coupon (valid for an hour; signed with the server's key).
    #[arg(long, requires = "passes_out")]
    pass_coupon: Option<i64>,
    #[arg(long)]
    passes_out: Option<PathBuf>,
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
    std::fs::write(&args.out, lua)?;
    if let (Some(coupon), Some(out)) = (args.pass_coupon, &args.passes_out) {
        use secrecy::ExposeSecret;
        let coupon = flash_sale::domain::coupon::CouponId::new(coupon)
            .ok_or_else(|| anyhow::anyhow!("--pass-coupon must be positive"))?;
        let signer = flash_sale::domain::waiting_room::PassSigner::new(
            settings.kafka.event_signing_key.expose_secret().as_bytes(),
        );
        let expires_ms = chrono::Utc::now().timestamp_millis() + 3_600_000;
        let mut passes = String::from("return {\n");
        for n in 0..args.count {
            let user =
                flash_sale::domain::identity::UserId::parse(&format!("{}-{n}", args.prefix))?;
            passes.push_str(&format!(
                "\"{}\",\n",
                signer.sign(&user, coupon, expires_ms)
            ));
        }
        passes.push_str("}\n");
        std::fs::write(out, passes)?;
    }
    Ok(())
}
