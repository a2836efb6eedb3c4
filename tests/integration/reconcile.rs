//! Reconciling a sale while it sells.

use std::time::Duration;

use flash_sale::adapters::redis::stock_gate::{Release, ReleaseReason, StockGate};
use flash_sale::app::reconcile::ReconcileError;
use flash_sale::domain::coupon::CouponId;
use flash_sale::domain::identity::UserId;
use flash_sale::domain::order::{OrderId, Reservation, StateGeneration};
use flash_sale::roles::Role;
use redis::AsyncCommands;

use crate::fixtures::{OpenSale, answered, assert_sold_out_exactly, reconciler, redis_stock};
use crate::helpers::TestContext;

/// Two reconciles started together while shoppers buy, then a third: one of the pair
/// is refused (busy), the others rebuild while purchases wait (503), and none writes a
/// stale count. The stock sells out exactly, every 202 is an order, nobody buys twice.
#[tokio::test(flavor = "multi_thread")]
async fn reconciling_twice_during_live_purchases_never_oversells() {
    const STOCK: i64 = 150;
    const SHOPPERS: usize = 220;
    let ctx = TestContext::new().await;
    let sale = OpenSale::start(&ctx, ctx.settings.clone(), "Live", STOCK).await;
    let coupon = sale.coupon;
    let (shoppers, counts) = sale
        .spawn_shoppers(&ctx, SHOPPERS, Duration::from_millis(20), true)
        .await;
    // A fifth sold.
    counts.wait_for_accepted(30).await;

    let id = CouponId::new(coupon).unwrap();
    let (first, second) = (reconciler(&ctx.settings), reconciler(&ctx.settings));
    let (a, b) = tokio::join!(first.reconcile(id), second.reconcile(id));
    let busy = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(ReconcileError::Busy(_))))
        .count();
    assert_eq!(busy, 1, "one rebuild at a time: {a:?} {b:?}");
    let third = reconciler(&ctx.settings).reconcile(id).await.unwrap();
    assert!(third.previous_stock.is_some(), "{third:?}");

    let answered = answered(shoppers).await;
    assert!(counts.busy() > 0, "purchases waited during the rebuilds");
    assert_eq!(answered.len(), STOCK as usize, "sold out exactly");
    assert_sold_out_exactly(&ctx, coupon, STOCK, &answered).await;
    sale.stop().await;
}

fn retried(reserved_in: &StateGeneration) -> ReleaseReason<'_> {
    ReleaseReason::UnpublishedRetried { reserved_in }
}

async fn reserve(gate: &StockGate, coupon: CouponId, user: &UserId) -> (OrderId, StateGeneration) {
    match gate
        .reserve(coupon, user, OrderId::generate(), None, false, false)
        .await
        .unwrap()
    {
        Reservation::Accepted(order, _, generation) => (order, generation),
        other => panic!("not reserved: {other:?}"),
    }
}

/// A give-back retried late (its order was never published) returns its unit only to
/// the sale state the unit was reserved in. After a rebuild, which counted the unit from
/// MySQL and the log (where its order is not: so it is back in stock), it changes
/// nothing: giving it back again would sell it twice. During a rebuild it waits.
#[tokio::test(flavor = "multi_thread")]
async fn a_give_back_retried_after_a_rebuild_never_returns_the_unit_twice() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let coupon = app.open_coupon(&ctx, "Late give-back", 10).await;
    let id = CouponId::new(coupon).unwrap();
    let reconcile = reconciler(&ctx.settings);
    let gate = &reconcile.gate;
    let (bob, alice, carol) = (
        UserId::parse("bob").unwrap(),
        UserId::parse("alice").unwrap(),
        UserId::parse("carol").unwrap(),
    );
    let (bobs, bobs_state) = reserve(gate, id, &bob).await;
    let (alices, alices_state) = reserve(gate, id, &alice).await;
    assert_eq!(redis_stock(&ctx, coupon).await, Some(8));

    // In the state it was reserved in, the unit goes back, once.
    let late = gate.release(id, &alice, alices, None, retried(&alices_state));
    assert_eq!(late.await.unwrap(), Release::Released);
    let again = gate.release(id, &alice, alices, None, retried(&alices_state));
    assert_eq!(again.await.unwrap(), Release::AlreadyReleased);
    assert_eq!(redis_stock(&ctx, coupon).await, Some(9));

    // Rebuilt: neither order is in MySQL or the log, so every unit is in stock.
    let report = reconcile.reconcile(id).await.unwrap();
    assert_eq!((report.stock, report.buyers), (10, 0), "{report:?}");
    let late = gate.release(id, &bob, bobs, None, retried(&bobs_state));
    assert_eq!(late.await.unwrap(), Release::Rebuilt);
    assert_eq!(
        redis_stock(&ctx, coupon).await,
        Some(10),
        "the unit the rebuild counted was not given back twice"
    );

    // Reserved in the rebuilt state, retried while the next rebuild runs: it waits, then
    // goes back once the state it was reserved in is still the current one.
    let (carols, carols_state) = reserve(gate, id, &carol).await;
    let mark = ctx.keys().coupon_rebuild(coupon);
    let mut redis = ctx.redis().await;
    let () = redis.set(&mark, "someone else's rebuild").await.unwrap();
    let late = gate.release(id, &carol, carols, None, retried(&carols_state));
    assert_eq!(late.await.unwrap(), Release::AfterRebuild);
    assert_eq!(redis_stock(&ctx, coupon).await, Some(9));
    let () = redis.del(&mark).await.unwrap();
    let late = gate.release(id, &carol, carols, None, retried(&carols_state));
    assert_eq!(late.await.unwrap(), Release::Released);
    assert_eq!(redis_stock(&ctx, coupon).await, Some(10));
    app.stop().await;
}
