//! `flash-sale migrate`: apply pending database migrations.

use crate::adapters::mysql::migrate::run_pending;
use crate::config::Settings;
use crate::roles::StartupError;

pub async fn run(settings: &Settings) -> Result<(), StartupError> {
    let pool = super::mysql(settings)?;
    let applied = run_pending(&pool).await.map_err(StartupError::runtime)?;
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
