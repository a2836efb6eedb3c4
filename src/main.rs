use std::process::ExitCode;

use clap::Parser;
use flash_sale::cli::{Cli, Command};
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
