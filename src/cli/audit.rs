//! `flash-sale audit`: compare every live sale in Redis with its total.

use crate::app;
use crate::config::Settings;
use crate::roles::StartupError;

/// Prints one line per live sale; `Ok(false)` when one drifted or lost its state.
pub async fn run(settings: &Settings) -> Result<bool, StartupError> {
    let mysql = super::mysql(settings)?;
    let gate = super::stock_gate(settings)?;
    let lines = app::audit::audit_live(&mysql, &gate)
        .await
        .map_err(StartupError::runtime)?;
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
    Ok(consistent)
}
