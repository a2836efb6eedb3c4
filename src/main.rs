use std::process::ExitCode;

use clap::Parser;
use flash_sale::cli::{self, Cli, Command};
use flash_sale::config::Settings;
use flash_sale::roles::StartupError;
use flash_sale::telemetry;

// Every request allocates and frees its (boxed) handler future, buffers and headers on
// worker threads that hand data to each other; glibc's allocator spent a fifth of the
// api's CPU on that under purchase load (free-list consolidation, cross-thread frees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    flash_sale::adapters::tls::install_crypto_provider();
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
        Command::Serve => cli::serve::run(cli.role, settings).await,
        Command::Migrate => cli::migrate::run(&settings).await,
        Command::SeedDemo => cli::seed_demo::run(&settings).await,
        Command::User(command) => cli::user::run(&settings, command).await,
        Command::Keys(command) => cli::keys::run(command),
        Command::Reconcile { coupon_id } => cli::reconcile::run(&settings, coupon_id).await,
        Command::Audit => match cli::audit::run(&settings).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(EXIT_FAILURE),
            Err(error) => Err(error),
        },
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
