//! The flash purchase: one Redis script decides, Kafka records, the client hears 202.
//!
//! 1. `lua/purchase.lua` checks window, limit and stock and records the buyer
//!    atomically (no MySQL on this path).
//! 2. The `OrderPlaced` event is published and acknowledged by the broker.
//! 3. If it cannot be published, `lua/release.lua` gives the unit back before the client
//!    hears anything (503): nothing is oversold and no accepted purchase is lost.
//! 4. A short-lived pending record, written off the request path, lets
//!    `GET /api/orders/{id}` answer before the payment role has written the order.

use crate::telemetry::{LogThrottle, REPEATED_ERROR_EVERY};
use std::sync::Arc;

use chrono::Utc;
use prometheus::IntCounterVec;

use crate::adapters::kafka::producer::OrderPublisher;
use crate::adapters::redis::pending_orders::PendingOrders;
use crate::adapters::redis::stock_gate::{Release, ReleaseReason, StockGate, idempotency_digest};
use crate::app::catalog::Catalog;
use crate::app::orders::Orders;
use crate::app::reconcile::SaleRebuilds;
use crate::domain::coupon::{CatalogError, CouponId};
use crate::domain::failure::Failure;
use crate::domain::identity::UserId;
use crate::domain::order::{
    OrderError, OrderId, OrderPlaced, OrderStatus, OrderView, PurchaseError, PurchaseRejection,
    Reservation, StateGeneration,
};
use crate::domain::waiting_room::{PassProblem, PassSigner};
use crate::shutdown::Shutdown;

/// The answer to an accepted purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub order_id: OrderId,
    /// A retry with the same `Idempotency-Key`: the first request's order.
    pub replayed: bool,
}

mod give_backs;
#[cfg(feature = "bench")]
pub mod mysql_gates;

use give_backs::{GiveBacks, HeldUnit};

pub struct Purchases {
    gate: StockGate,
    /// Set only when `purchase.strategy` is one of the MySQL strategies.
    #[cfg(feature = "bench")]
    mysql_gate: Option<mysql_gates::MysqlGate>,
    publisher: OrderPublisher,
    pending: PendingOrders,
    /// Read on replays only, to tell whether the replayed order exists.
    orders: Orders,
    catalog: Arc<Catalog>,
    /// Restores a sale state found missing (absent: report it, an operator runs
    /// `flash-sale reconcile`).
    rebuilds: Option<Arc<SaleRebuilds>>,
    /// Checks the admission passes of sales with a waiting room.
    passes: PassSigner,
    outcomes: IntCounterVec,
    /// Retries the give-backs Redis did not answer, and counts the units still held.
    give_backs: GiveBacks,
}

fn unavailable(e: impl Into<Failure>) -> PurchaseError {
    PurchaseError::Unavailable(e.into())
}

impl Purchases {
    #[allow(clippy::too_many_arguments)] // one per collaborator
    pub fn new(
        gate: StockGate,
        publisher: OrderPublisher,
        pending: PendingOrders,
        orders: Orders,
        catalog: Arc<Catalog>,
        rebuilds: Option<Arc<SaleRebuilds>>,
        passes: PassSigner,
        shutdown: &Shutdown,
    ) -> Result<Self, prometheus::Error> {
        let outcomes = IntCounterVec::new(
            prometheus::Opts::new("purchases_total", "Purchase attempts by outcome"),
            &["outcome"],
        )?;
        let give_backs = GiveBacks::start(gate.clone(), shutdown)?;
        Ok(Self {
            gate,
            #[cfg(feature = "bench")]
            mysql_gate: None,
            publisher,
            pending,
            orders,
            catalog,
            rebuilds,
            passes,
            outcomes,
            give_backs,
        })
    }

    /// Decides purchases with a MySQL gate instead of Redis (benchmarks only).
    #[cfg(feature = "bench")]
    pub fn with_mysql_gate(mut self, gate: mysql_gates::MysqlGate) -> Self {
        self.mysql_gate = Some(gate);
        self
    }

    pub fn collectors(&self) -> [Box<dyn prometheus::core::Collector>; 2] {
        [Box::new(self.outcomes.clone()), self.give_backs.collector()]
    }

    fn count(&self, outcome: &'static str) {
        self.outcomes.with_label_values(&[outcome]).inc();
    }

    /// `admission_pass`: needed only for a sale with a waiting room.
    pub async fn purchase(
        &self,
        user: &UserId,
        coupon: CouponId,
        idempotency_key: Option<&str>,
        request_id: Option<&str>,
        admission_pass: Option<&str>,
    ) -> Result<Accepted, PurchaseError> {
        let result = self
            .attempt(user, coupon, idempotency_key, request_id, admission_pass)
            .await;
        self.count(match &result {
            Ok(Accepted {
                replayed: false, ..
            }) => "accepted",
            Ok(Accepted { replayed: true, .. }) => "replayed",
            Err(PurchaseError::Rejected(PurchaseRejection::SoldOut)) => "sold_out",
            Err(PurchaseError::Rejected(PurchaseRejection::LimitReached)) => "limit_reached",
            Err(PurchaseError::Rejected(PurchaseRejection::SaleNotStarted)) => "not_started",
            Err(PurchaseError::Rejected(PurchaseRejection::SaleEnded)) => "ended",
            Err(PurchaseError::Rejected(PurchaseRejection::CouponNotFound)) => "not_found",
            Err(PurchaseError::Rejected(
                PurchaseRejection::PassRequired | PurchaseRejection::NoWaitingRoom,
            )) => "no_pass",
            Err(PurchaseError::Rejected(PurchaseRejection::PassExpired)) => "pass_expired",
            Err(PurchaseError::Unavailable(_)) => "unavailable",
            Err(PurchaseError::Rebuilding) => "rebuilding",
        });
        result
    }

    /// The rare branches (replays, stale records, a missing sale state, a failed
    /// publication) await boxed futures: they read MySQL, and their futures inline would
    /// make every purchase's future several times larger, copied on every move.
    async fn attempt(
        &self,
        user: &UserId,
        coupon: CouponId,
        idempotency_key: Option<&str>,
        request_id: Option<&str>,
        admission_pass: Option<&str>,
    ) -> Result<Accepted, PurchaseError> {
        // Checked here, required (or not) by the sale's state in the gate.
        let pass = self
            .passes
            .check(admission_pass, user, coupon, Utc::now().timestamp_millis());
        let mut reservation = self
            .reserve(user, coupon, idempotency_key, pass.is_ok(), false)
            .await?;
        if let Reservation::Stale(order_id) = reservation {
            if Box::pin(self.order_exists(user, order_id)).await? {
                return Ok(Accepted {
                    order_id,
                    replayed: true,
                });
            }
            reservation = self
                .reserve(user, coupon, idempotency_key, pass.is_ok(), true)
                .await?;
        }
        let (order_id, price_cents, reserved_in) = match reservation {
            Reservation::Accepted(order_id, price, generation) => (order_id, price, generation),
            Reservation::Replayed(order_id, price, reserved_in) => {
                let placement = Placement {
                    order_id,
                    price_cents: price,
                    idempotency_key,
                    request_id,
                    reserved_in,
                };
                Box::pin(self.confirm_replay(user, coupon, placement)).await?;
                return Ok(Accepted {
                    order_id,
                    replayed: true,
                });
            }
            Reservation::Rejected(PurchaseRejection::CouponNotFound) => {
                return Err(Box::pin(self.missing_sale_state(coupon)).await);
            }
            Reservation::Rebuilding => return Err(PurchaseError::Rebuilding),
            // Only when asked not to reserve a stale record's order again.
            Reservation::Stale(_) => {
                return Err(unavailable(Failure::unavailable(
                    "the purchase's record is stale",
                )));
            }
            Reservation::Rejected(PurchaseRejection::PassRequired)
                if pass == Err(PassProblem::Expired) =>
            {
                return Err(PurchaseRejection::PassExpired.into());
            }
            Reservation::Rejected(rejection) => return Err(rejection.into()),
        };
        let placement = Placement {
            order_id,
            price_cents,
            idempotency_key,
            request_id,
            reserved_in,
        };
        self.place(user, coupon, placement).await?;
        Ok(Accepted {
            order_id,
            replayed: false,
        })
    }

    async fn reserve(
        &self,
        user: &UserId,
        coupon: CouponId,
        idempotency_key: Option<&str>,
        has_pass: bool,
        reserve_stale: bool,
    ) -> Result<Reservation, PurchaseError> {
        let candidate = OrderId::generate();
        #[cfg(feature = "bench")]
        if let Some(gate) = &self.mysql_gate {
            return gate
                .reserve(coupon, user, candidate)
                .await
                .map_err(unavailable);
        }
        self.gate
            .reserve(
                coupon,
                user,
                candidate,
                idempotency_key,
                has_pass,
                reserve_stale,
            )
            .await
            .map_err(unavailable)
    }

    /// Whether the order exists (in MySQL, or pending after a confirmed publication):
    /// then a rebuild counted its unit.
    async fn order_exists(&self, user: &UserId, order_id: OrderId) -> Result<bool, PurchaseError> {
        match self.orders.get(user, order_id).await {
            Ok(_) => Ok(true),
            Err(OrderError::NotFound) => Ok(false),
            Err(OrderError::Unavailable(failure)) => Err(PurchaseError::Unavailable(failure)),
        }
    }

    /// Publishes the order's event and records it as pending. When the event cannot be
    /// published the unit is given back (once per order) and the caller hears 503.
    async fn place(
        &self,
        user: &UserId,
        coupon: CouponId,
        placement: Placement<'_>,
    ) -> Result<(), PurchaseError> {
        let placed_at = Utc::now();
        let order_id = placement.order_id;
        let event = OrderPlaced {
            order_id,
            user_id: user.clone(),
            coupon_id: coupon,
            price_cents: placement.price_cents,
            placed_at,
            idempotency_digest: placement.idempotency_key.map(idempotency_digest),
            request_id: placement.request_id.map(str::to_owned),
        };
        if let Err(error) = self.publisher.publish(&event).await
            && !Box::pin(self.give_back_unpublished(&event, &placement.reserved_in, &error)).await
        {
            return Err(unavailable(error));
        }
        // Debug level, like the payment and ws roles' lines about the same order: the
        // request span names the request id.
        tracing::debug!(order.id = %order_id, coupon.id = %coupon, "purchase accepted");
        let view = OrderView {
            order_id,
            coupon_id: coupon,
            status: OrderStatus::Pending,
            created_at: placed_at,
            updated_at: placed_at,
        };
        self.pending.record(user, &view);
        Ok(())
    }

    /// Gives the unit of an order whose publication failed back; false when that was
    /// done (or could not be: the shopper hears 503 either way), true when the payment
    /// role had already claimed the order: the event did reach the broker, the order
    /// will exist, and the shopper hears 202.
    async fn give_back_unpublished(
        &self,
        event: &OrderPlaced,
        reserved_in: &StateGeneration,
        error: &impl std::fmt::Display,
    ) -> bool {
        let (order_id, coupon) = (event.order_id, event.coupon_id);
        let released = self
            .gate
            .release(
                coupon,
                &event.user_id,
                order_id,
                event.idempotency_digest.as_deref(),
                ReleaseReason::Unpublished,
            )
            .await;
        match released {
            Ok(Release::Consumed) => {
                tracing::info!(order.id = %order_id, coupon.id = %coupon, %error, "publication unconfirmed, but the payment role has the order");
                true
            }
            Ok(
                Release::Released
                | Release::AlreadyReleased
                | Release::AfterRebuild
                | Release::Rebuilt,
            ) => {
                // Every purchase fails alike while the broker is away: a line now and then.
                static THROTTLE: LogThrottle = LogThrottle::new(REPEATED_ERROR_EVERY);
                if let Some(held_back) = THROTTLE.admit() {
                    tracing::warn!(order.id = %order_id, coupon.id = %coupon, %error, held_back, "order event not published; unit given back");
                }
                false
            }
            Err(release_error) => {
                // The unit stays reserved with no order until a retry gives it back.
                tracing::warn!(order.id = %order_id, coupon.id = %coupon, %error, error.release = %release_error, "order event not published and the unit not given back yet; retrying in the background");
                self.give_backs.retry(HeldUnit {
                    coupon,
                    user: event.user_id.clone(),
                    order_id,
                    idempotency_digest: event.idempotency_digest.clone(),
                    reserved_in: reserved_in.clone(),
                });
                false
            }
        }
    }

    /// A replayed purchase answers 202 only for an order that will exist. When the first
    /// attempt reserved the unit but its event never reached the broker (Redis answered
    /// after the client's timeout, say, so that attempt heard 503), the order is placed
    /// now, under the same id; the payment role writes an order id once, so a late first
    /// event is harmless.
    async fn confirm_replay(
        &self,
        user: &UserId,
        coupon: CouponId,
        placement: Placement<'_>,
    ) -> Result<(), PurchaseError> {
        let order_id = placement.order_id;
        if self.order_exists(user, order_id).await? {
            return Ok(());
        }
        tracing::warn!(order.id = %order_id, coupon.id = %coupon, "replayed purchase has no order yet; placing it");
        self.place(user, coupon, placement).await?;
        // The first attempt may still be failing: whichever of its release and this
        // claim comes first decides whether the order exists.
        match self.gate.confirm_published(coupon, order_id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(unavailable(Failure::unavailable(
                "the first attempt gave the unit back",
            ))),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// The script found no sale state: either the coupon does not exist (the catalog's
    /// verdict, cached) or Redis lost its state, which only the reconciler may restore
    /// (re-warming would reset the stock and oversell).
    async fn missing_sale_state(&self, coupon: CouponId) -> PurchaseError {
        match self.catalog.coupon(coupon).await {
            Err(CatalogError::NotFound) => PurchaseRejection::CouponNotFound.into(),
            // The state of a finished sale expires; there is nothing to rebuild.
            Ok(found) if found.sale_ends_at <= Utc::now() => PurchaseRejection::SaleEnded.into(),
            Ok(_) => match &self.rebuilds {
                Some(rebuilds) => {
                    tracing::warn!(coupon.id = %coupon, "sale state missing in Redis; rebuilding it from MySQL and Kafka");
                    rebuilds.start(coupon);
                    PurchaseError::Rebuilding
                }
                None => {
                    tracing::error!(coupon.id = %coupon, "sale state missing in Redis; run `flash-sale reconcile {coupon}`");
                    unavailable(Failure::unavailable("sale state missing"))
                }
            },
            Err(CatalogError::Unavailable(failure)) => PurchaseError::Unavailable(failure),
            Err(other) => unavailable(Failure::unavailable(other)),
        }
    }
}
/// The order a reservation granted, to be published.
struct Placement<'a> {
    order_id: OrderId,
    price_cents: i64,
    idempotency_key: Option<&'a str>,
    request_id: Option<&'a str>,
    /// The sale state the unit was reserved in.
    reserved_in: StateGeneration,
}
