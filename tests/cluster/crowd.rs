//! Shoppers at work during a drill, and the exact counts a sale must end with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::harness::{Cluster, Outcome, address, buy};

/// What a crowd heard: each shopper's outcome and when it came.
pub struct Heard {
    pub outcomes: Vec<(String, Outcome, Instant)>,
}

impl Heard {
    pub fn accepted(&self) -> BTreeSet<String> {
        self.outcomes
            .iter()
            .filter_map(|(_, outcome, _)| match outcome {
                Outcome::Accepted(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .map(|(_, outcome, _)| outcome)
            .filter(|outcome| matches!(outcome, Outcome::Failed(_)))
            .collect()
    }

    /// Counts by outcome, for the drill's report.
    pub fn summary(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (_, outcome, _) in &self.outcomes {
            let key = match outcome {
                Outcome::Accepted(_) => "accepted".to_owned(),
                Outcome::Refused(code) => code.clone(),
                Outcome::Failed(_) => "failed".to_owned(),
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }
}

/// `shoppers` shoppers named `<prefix>-<n>` buy one unit each, `concurrency` at a time,
/// each starting `spacing` after the previous one.
pub async fn shop(
    cluster: Arc<Cluster>,
    coupon: i64,
    prefix: String,
    shoppers: usize,
    concurrency: usize,
    spacing: Duration,
) -> Heard {
    let outcomes = futures_util::stream::iter(0..shoppers)
        .map(|n| {
            let cluster = cluster.clone();
            let user = format!("{prefix}-{n}");
            async move {
                tokio::time::sleep(spacing * u32::try_from(n).unwrap_or(u32::MAX)).await;
                let token = cluster.token(&user, "user");
                let outcome = buy(
                    &cluster,
                    &token,
                    &address(n),
                    coupon,
                    Duration::from_secs(60),
                )
                .await;
                (user, outcome, Instant::now())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Heard { outcomes }
}

/// The shape of a drill's sale: shoppers, how many at a time, the pause between starts.
pub struct Sale {
    pub total: i64,
    pub shoppers: usize,
    pub concurrency: usize,
    pub spacing: Duration,
}

/// A sale of a new coupon named `name` in which `fault` strikes once `after` units are
/// sold: the coupon, what the shoppers heard, and when the fault struck.
pub async fn sale_with_fault(
    cluster: &Arc<Cluster>,
    name: &str,
    sale: Sale,
    after: i64,
    fault: impl AsyncFnOnce(i64),
) -> (i64, Heard, Instant) {
    let coupon = cluster.open_coupon(name, sale.total).await;
    let crowd = tokio::spawn(shop(
        cluster.clone(),
        coupon,
        name.to_lowercase().replace(' ', "-"),
        sale.shoppers,
        sale.concurrency,
        sale.spacing,
    ));
    until_sold(cluster, coupon, sale.total, after).await;
    let struck = Instant::now();
    fault(coupon).await;
    (coupon, crowd.await.unwrap(), struck)
}

/// Waits until `units` of the coupon are sold, judged by its stock.
pub async fn until_sold(cluster: &Cluster, coupon: i64, total: i64, units: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while total - cluster.stock(coupon).await < units {
        assert!(Instant::now() < deadline, "{units} units not sold in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The promises after a sale of `total` units: no failed purchase, every 202 a PAID
/// order (and no other order), nobody holds two, and stock left + units sold = total.
/// Returns the number of units sold.
pub async fn assert_exact(cluster: &Cluster, coupon: i64, total: i64, heard: &Heard) -> usize {
    assert!(
        heard.failures().is_empty(),
        "failed purchases: {:?}",
        heard.failures()
    );
    let accepted = heard.accepted();
    let orders = cluster.settled(coupon, accepted.len()).await;
    let ids: BTreeSet<String> = orders.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(ids, accepted, "every 202 is an order, and no other order");
    let unpaid: Vec<_> = orders.iter().filter(|(_, _, s)| s != "PAID").collect();
    assert!(unpaid.is_empty(), "not paid: {unpaid:?}");
    let buyers: BTreeSet<&String> = orders.iter().map(|(_, user, _)| user).collect();
    assert_eq!(buyers.len(), orders.len(), "nobody bought twice");
    let sold = i64::try_from(orders.len()).unwrap();
    assert_eq!(
        cluster.stock(coupon).await + sold,
        total,
        "stock left + units sold = total"
    );
    orders.len()
}
