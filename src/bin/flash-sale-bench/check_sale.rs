//! `check-sale`: a sale's final counts in Redis, on the topic and (optionally) in MySQL,
//! each against the purchases the server accepted.

use std::collections::BTreeMap;
use std::path::Path;

use deadpool_redis::redis::AsyncCommands;
use flash_sale::adapters::kafka::Kafka;
use flash_sale::adapters::kafka::codec::{decode_order_placed, partition_for};
use flash_sale::adapters::kafka::consumer::PartitionReader;
use flash_sale::bench_report::{Check, Entry};
use flash_sale::domain::coupon::CouponId;

use crate::common::{emit, load_settings};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    coupon: i64,
    #[arg(long)]
    total: i64,
    #[arg(long)]
    limit: i64,
    /// Purchases the server accepted (its purchases_total metric).
    #[arg(long)]
    accepted: i64,
    /// 202s wrk saw; requests still in flight when a run ends are accepted by the
    /// server but never counted by the client.
    #[arg(long)]
    client_accepted: i64,
    /// Most requests that can be in flight when the runs end (connections summed).
    #[arg(long)]
    in_flight: i64,
    /// Label prefixed to every check name.
    #[arg(long)]
    label: String,
    #[arg(long)]
    orders: bool,
}

pub async fn run(args: Args, config_dir: &Path) -> anyhow::Result<()> {
    let Args {
        coupon,
        total,
        limit,
        accepted,
        client_accepted,
        in_flight,
        label,
        orders: with_orders,
    } = args;
    emit(&Entry::Check(Check {
        name: format!("{label}: client 202s <= server accepted <= client 202s + in flight"),
        expected: format!("{client_accepted}..={}", client_accepted + in_flight),
        actual: accepted.to_string(),
        ok: (client_accepted..=client_accepted + in_flight).contains(&accepted),
    }));
    let settings = load_settings(config_dir)?;
    let keys = flash_sale::adapters::redis::Keys::new(settings.redis.namespace.clone());
    // The server or the cluster, as the settings say.
    let mut redis = flash_sale::adapters::redis::RedisPool::new(&settings.redis)?
        .shared()
        .await?;
    let stock: Option<i64> = redis.get(keys.coupon_stock(coupon)).await?;
    let stock = stock.unwrap_or(-1);
    let buyers: BTreeMap<String, i64> = if limit == 1 {
        let members: Vec<String> = redis.smembers(keys.coupon_buyers(coupon)).await?;
        members.into_iter().map(|m| (m, 1)).collect()
    } else {
        redis.hgetall(keys.coupon_buyers(coupon)).await?
    };
    let sold: i64 = buyers.values().sum();
    let busiest = buyers.values().copied().max().unwrap_or(0);
    let name = |what: &str| format!("{label}: {what}");
    emit(&Entry::Check(Check::at_most(
        &name("units sold <= stock (no oversell)"),
        total,
        total - stock,
    )));
    emit(&Entry::Check(Check::equal(
        &name("Redis stock = total - accepted"),
        total - accepted,
        stock,
    )));
    emit(&Entry::Check(Check::equal(
        &name("buyer records = accepted"),
        accepted,
        sold,
    )));
    emit(&Entry::Check(Check::at_most(
        &name("units of the busiest user <= limit"),
        limit,
        busiest,
    )));

    let kafka = Kafka::new(&settings.kafka)?;
    let id = CouponId::new(coupon).ok_or_else(|| anyhow::anyhow!("bad coupon id"))?;
    let partition = partition_for(id, settings.kafka.orders_partitions);
    let reader =
        PartitionReader::new(&kafka, &settings.kafka.orders_topic_name(), partition).await?;
    let events = reader
        .read_to_end(0)
        .await?
        .iter()
        .filter_map(|r| decode_order_placed(&r.record, kafka.signer()).ok())
        .filter(|e| e.coupon_id == id)
        .count();
    emit(&Entry::Check(Check::equal(
        &name("events on the topic = accepted"),
        accepted,
        events,
    )));

    if with_orders {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use flash_sale::adapters::mysql::schema::orders;
        let pool = flash_sale::adapters::mysql::MysqlPool::new(&settings.mysql)?;
        let rows: i64 = pool
            .with_conn(async |conn| {
                Ok(orders::table
                    .filter(orders::coupon_id.eq(coupon))
                    .count()
                    .get_result(conn)
                    .await?)
            })
            .await?;
        emit(&Entry::Check(Check::equal(
            &name("order rows = accepted"),
            accepted,
            rows,
        )));
    }
    Ok(())
}
