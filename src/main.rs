use std::process::ExitCode;

use clap::Parser;
use flash_sale::cli::{Cli, Command, KeysCommand, UserCommand};
use flash_sale::config::Settings;
use flash_sale::roles::{self, StartupError};
use flash_sale::{adapters, app, telemetry};

/// Exit code for configuration mistakes (bad value, role not compiled in, port in use).
const EXIT_CONFIG: u8 = 2;
/// Exit code for runtime failures.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.config_dir) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("flash-sale: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("flash-sale: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(run(cli, settings))
}

async fn run(cli: Cli, settings: Settings) -> ExitCode {
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.role, settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::SeedDemo => seed_demo(&settings).await,
        Command::User(command) => user(&settings, command).await,
        Command::Keys(KeysCommand::Generate { path }) => generate_key(&path),
        Command::Reconcile { coupon_id } => reconcile(&settings, coupon_id).await,
        Command::Audit => return audit(&settings).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ StartupError::Configuration(_)) => {
            eprintln!("flash-sale: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            eprintln!("flash-sale: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn serve(role: roles::Role, settings: Settings) -> Result<(), StartupError> {
    let app = roles::start(settings, role).await?;
    app.run_until_signal().await
}

async fn migrate(settings: &Settings) -> Result<(), StartupError> {
    let pool = adapters::mysql::MysqlPool::new(&settings.mysql).map_err(StartupError::runtime)?;
    let applied = adapters::mysql::migrate::run_pending(&pool)
        .await
        .map_err(StartupError::runtime)?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        println!(
            "applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(())
}

async fn seed_demo(settings: &Settings) -> Result<(), StartupError> {
    let pool = adapters::mysql::MysqlPool::new(&settings.mysql).map_err(StartupError::runtime)?;
    let inserted = app::seed_demo::run(&pool)
        .await
        .map_err(StartupError::runtime)?;
    if inserted == 0 {
        println!("catalog already has coupons; nothing seeded");
    } else {
        println!("seeded {inserted} demo coupon(s)");
    }
    Ok(())
}

async fn user(settings: &Settings, command: UserCommand) -> Result<(), StartupError> {
    use flash_sale::app::identity::UserAdmin;
    use flash_sale::config::IdentityProviderKind;
    let accounts = match settings.identity.provider {
        IdentityProviderKind::Embedded => UserAdmin::Embedded(
            adapters::mysql::MysqlPool::new(&settings.mysql).map_err(StartupError::runtime)?,
        ),
        IdentityProviderKind::Keycloak => UserAdmin::Keycloak(Box::new(
            adapters::oidc::KeycloakProvider::new(
                &settings.identity.keycloak,
                &settings.identity.issuer,
                std::time::Duration::from_millis(settings.identity.http_timeout_ms),
            )
            .map_err(StartupError::runtime)?,
        )),
    };
    match command {
        UserCommand::Promote { email } => {
            accounts
                .set_admin(&email, true)
                .await
                .map_err(StartupError::runtime)?;
            println!("{email} is now an admin (from their next login)");
        }
        UserCommand::Demote { email } => {
            accounts
                .set_admin(&email, false)
                .await
                .map_err(StartupError::runtime)?;
            println!("{email} is no longer an admin (from their next login)");
        }
        UserCommand::Create { email, admin } => {
            let password = std::env::var("FLASH_USER_PASSWORD").map_err(|_| {
                StartupError::Configuration(
                    "set FLASH_USER_PASSWORD to the new user's password".into(),
                )
            })?;
            let created = accounts
                .create_user(&email, &password)
                .await
                .map_err(StartupError::runtime)?;
            if admin {
                accounts
                    .set_admin(&email, true)
                    .await
                    .map_err(StartupError::runtime)?;
            }
            let state = if created { "created" } else { "already exists" };
            println!("{email}: {state}{}", if admin { ", admin" } else { "" });
        }
    }
    Ok(())
}

fn generate_key(path: &std::path::Path) -> Result<(), StartupError> {
    adapters::oidc::keys::write_new_key(path).map_err(StartupError::runtime)?;
    println!("wrote a new RS256 signing key to {}", path.display());
    Ok(())
}

/// Exit 0 when every live sale is consistent, 1 when one is not (or the audit failed).
async fn audit(settings: &Settings) -> ExitCode {
    use flash_sale::adapters::redis::{Keys, RedisPool, stock_gate::StockGate};
    let run = async {
        let mysql =
            adapters::mysql::MysqlPool::new(&settings.mysql).map_err(StartupError::runtime)?;
        let redis = RedisPool::new(&settings.redis).map_err(StartupError::runtime)?;
        let gate = StockGate::new(
            redis,
            Keys::new(settings.redis.namespace.clone()),
            std::time::Duration::from_secs(settings.purchase.idempotency_ttl_secs),
        );
        app::audit::audit_live(&mysql, &gate)
            .await
            .map_err(StartupError::runtime)
    };
    let lines = match run.await {
        Ok(lines) => lines,
        Err(error) => {
            eprintln!("flash-sale: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut consistent = true;
    for line in &lines {
        let verdict = match line.drift() {
            Some(0) => "ok".to_owned(),
            Some(drift) => format!(
                "DRIFT {drift:+} (run `flash-sale reconcile {}`)",
                line.coupon_id
            ),
            None => format!(
                "STATE MISSING (run `flash-sale reconcile {}`)",
                line.coupon_id
            ),
        };
        consistent &= line.is_consistent();
        println!(
            "coupon {}: total {}, stock {}, units held {}: {verdict}",
            line.coupon_id,
            line.total,
            line.stock.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            line.units_held
        );
    }
    println!("{} live sale(s) audited", lines.len());
    if consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

async fn reconcile(settings: &Settings, coupon_id: i64) -> Result<(), StartupError> {
    use flash_sale::adapters::redis::{Keys, RedisPool, stock_gate::StockGate};
    use flash_sale::app::reconcile::Reconciler;
    let coupon = flash_sale::domain::coupon::CouponId::new(coupon_id)
        .ok_or_else(|| StartupError::Configuration(format!("{coupon_id} is not a coupon id")))?;
    let redis = RedisPool::new(&settings.redis).map_err(StartupError::runtime)?;
    let kafka = adapters::kafka::Kafka::new(&settings.kafka);
    let reconciler = Reconciler {
        mysql: adapters::mysql::MysqlPool::new(&settings.mysql).map_err(StartupError::runtime)?,
        kafka: kafka.clone(),
        gate: StockGate::new(
            redis,
            Keys::new(settings.redis.namespace.clone()),
            std::time::Duration::from_secs(settings.purchase.idempotency_ttl_secs),
        ),
        topic: settings.kafka.orders_topic_name(),
        partitions: settings.kafka.orders_partitions,
        settle: adapters::kafka::producer::OrderPublisher::deadline_for(&kafka)
            + std::time::Duration::from_millis(settings.redis.timeout_ms + 300),
    };
    let report = reconciler
        .reconcile(coupon)
        .await
        .map_err(StartupError::runtime)?;
    println!(
        "coupon {}: stock {} -> {} ({} units in MySQL orders, {} in unconsumed events, {} buyers)",
        report.coupon_id,
        report
            .previous_stock
            .map_or_else(|| "missing".to_owned(), |s| s.to_string()),
        report.stock,
        report.units_in_mysql,
        report.units_in_flight,
        report.buyers
    );
    Ok(())
}
