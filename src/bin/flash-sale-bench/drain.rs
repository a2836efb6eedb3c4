//! `drain`: how fast the payment role settles a sale's orders.

use std::path::Path;
use std::time::{Duration, Instant};

use flash_sale::bench_report::{Entry, Figure};

use crate::common::{emit, load_settings};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    coupon: i64,
    #[arg(long)]
    expected: i64,
    /// Seconds the load ran before this call (for the sustained rate).
    #[arg(long)]
    load_secs: f64,
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

pub async fn run(args: Args, config_dir: &Path) -> anyhow::Result<()> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use flash_sale::adapters::mysql::schema::orders;
    let Args {
        coupon,
        expected,
        load_secs,
        timeout_secs,
    } = args;
    let settings = load_settings(config_dir)?;
    let pool = flash_sale::adapters::mysql::MysqlPool::new(&settings.mysql)?;
    let count = async |pending: bool| -> anyhow::Result<i64> {
        Ok(pool
            .with_conn(async |conn| {
                let mut query = orders::table
                    .filter(orders::coupon_id.eq(coupon))
                    .into_boxed();
                if !pending {
                    query = query.filter(orders::status.ne("PENDING"));
                }
                Ok(query.count().get_result(conn).await?)
            })
            .await?)
    };
    let at_end_of_load = count(false).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(timeout_secs);
    while count(false).await? < expected {
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {expected} orders settled after {timeout_secs} s",
                count(false).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let total_secs = load_secs + drain_secs;
    emit(&Entry::Figure(Figure {
        name: "payment: orders settled per second (sustained)".into(),
        value: expected as f64 / total_secs,
        unit: "orders/s".into(),
        note: format!("{expected} orders in {load_secs:.1} s of load + {drain_secs:.1} s of drain"),
    }));
    emit(&Entry::Figure(Figure {
        name: "payment: lag at the end of the load".into(),
        value: (expected - at_end_of_load) as f64,
        unit: "orders".into(),
        note: "accepted but not yet settled when the load stopped".into(),
    }));
    Ok(())
}
