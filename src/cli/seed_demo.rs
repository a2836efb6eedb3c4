//! `flash-sale seed-demo`: demo coupons for an empty catalog.

use crate::app;
use crate::config::Settings;
use crate::roles::StartupError;

pub async fn run(settings: &Settings) -> Result<(), StartupError> {
    let pool = super::mysql(settings)?;
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
