//! Reconciling a sale while it sells.

use std::time::Duration;

use flash_sale::app::reconcile::ReconcileError;
use flash_sale::domain::coupon::CouponId;

use crate::fixtures::{OpenSale, answered, assert_sold_out_exactly, reconciler};
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
