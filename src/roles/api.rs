//! The api role's modules: identity endpoints (and, with the built-in provider, its
//! discovery document and JWKS).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use super::{StartupError, ensure_orders_topic, required, start_admission};
use crate::adapters::Adapters;
use crate::adapters::kafka::producer::{OrderPublisher, PublisherLimits};
use crate::adapters::mysql::MysqlPool;
use crate::adapters::mysql::search::MysqlSearch;
use crate::adapters::oidc::{EmbeddedIssuer, KeycloakProvider, SigningKeys};
use crate::adapters::opensearch::OpenSearch;
use crate::adapters::redis::catalog_cache::CatalogCache;
use crate::adapters::redis::coupon_state::CouponState;
use crate::adapters::redis::notifier::PaymentNotifier;
use crate::adapters::redis::pending_orders::PendingOrders;
use crate::adapters::redis::rate_limit::{LoginLimiter, RegistrationLimiter};
use crate::adapters::redis::rebuild_lock::RebuildLocks;
use crate::adapters::redis::stock_gate::StockGate;
use crate::adapters::redis::waiting_room::WaitingRoomStore;
use crate::adapters::tantivy_index::TantivySearch;
use crate::app::access::IssuerDocuments;
use crate::app::catalog::{Catalog, CatalogMetrics};
use crate::app::identity::Identity;
use crate::app::orders::Orders;
use crate::app::purchase::Purchases;
use crate::app::reconcile::{Reconciler, SaleRebuilds};
use crate::app::throttle::Rate;
use crate::app::waiting_room::{WaitingRoomMetrics, WaitingRooms};
use crate::config::{
    IdentityProviderKind, ObjectStoreKind, PurchaseStrategy, SearchEngine, Settings,
};
use crate::domain::ports::{IdentityProvider, SearchIndex};
use crate::domain::waiting_room::PassSigner;
use crate::http;
use crate::http::purchase::PurchaseAdmission;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::workers::audit::{self, AuditMetrics};
use crate::workers::{search_follow, waiting_room};
use secrecy::ExposeSecret;

#[derive(Clone)]
pub(super) struct ApiModules {
    catalog: web::Data<Catalog>,
    purchases: web::Data<Purchases>,
    admission: web::Data<PurchaseAdmission>,
    orders: web::Data<Orders>,
    /// Serve `/objects/`: always for the filesystem store, and for S3 when the public
    /// image URLs are paths on this host (images pass through the entrance, so the
    /// pages' content policy needs no other origin).
    serve_objects: bool,
    /// Built web pages, served at `/` when present.
    static_dir: std::path::PathBuf,
    identity: web::Data<Identity>,
    issuer: Option<web::Data<IssuerDocuments>>,
    rooms: web::Data<WaitingRooms>,
}

impl ApiModules {
    pub(super) async fn build(
        settings: &Settings,
        adapters: &Adapters,
        issuer_url: String,
        metrics: &Metrics,
        shutdown: &Shutdown,
    ) -> Result<Self, StartupError> {
        let catalog = Arc::new(build_catalog(settings, adapters, metrics)?);
        // Put every live sale into Redis (idempotent; never resets a sale in progress).
        match catalog.warm_up_all().await {
            Ok(count) => tracing::info!(coupons = count, "sale state warmed up in Redis"),
            Err(error) => {
                tracing::warn!(%error, "could not warm up sale state; will retry on admin changes")
            }
        }
        start_search(&catalog, settings, shutdown).await;
        let identity_settings = &settings.identity;
        let (provider, issuer): (Arc<dyn IdentityProvider>, _) = match identity_settings.provider {
            IdentityProviderKind::Embedded => {
                let keys = SigningKeys::load(&identity_settings.embedded).map_err(|e| {
                    StartupError::Configuration(format!(
                        "configuration error: identity.embedded.signing_key: {e}"
                    ))
                })?;
                let mysql = required(&adapters.mysql, "MySQL")?;
                let issuer = Arc::new(
                    EmbeddedIssuer::new(
                        mysql,
                        Arc::new(keys),
                        issuer_url,
                        identity_settings.audience.clone(),
                        identity_settings.embedded.token_ttl_secs,
                    )
                    .await
                    .map_err(StartupError::runtime)?,
                );
                (
                    issuer.clone(),
                    Some(web::Data::new(IssuerDocuments::new(issuer))),
                )
            }
            IdentityProviderKind::Keycloak => {
                let keycloak = KeycloakProvider::new(
                    &identity_settings.keycloak,
                    &identity_settings.issuer,
                    Duration::from_millis(identity_settings.http_timeout_ms),
                )
                .map_err(StartupError::runtime)?;
                (Arc::new(keycloak), None)
            }
        };
        let fail_open = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "limiter_fail_open_total",
                "Attempts a Redis-backed limiter let through unchecked (Redis did not answer)",
            ),
            &["limiter"],
        )
        .map_err(StartupError::runtime)?;
        metrics
            .register(Box::new(fail_open.clone()))
            .map_err(StartupError::runtime)?;
        let limiter = LoginLimiter::new(
            required(&adapters.redis, "Redis")?,
            adapters.keys.clone(),
            [
                identity_settings.login_attempts_per_email,
                identity_settings.login_attempts_per_ip,
            ],
            fail_open.with_label_values(&["login"]),
        );
        let registrations = RegistrationLimiter::new(
            required(&adapters.redis, "Redis")?,
            adapters.keys.clone(),
            [
                identity_settings.registrations_per_ip,
                identity_settings.registrations_total,
            ],
            fail_open.with_label_values(&["sign-up"]),
        );
        let passes = PassSigner::new(settings.kafka.event_signing_key.expose_secret().as_bytes());
        let (purchases, orders) = build_purchases(
            settings,
            adapters,
            catalog.clone(),
            passes.clone(),
            metrics,
            shutdown,
        )
        .await?;
        let rooms = build_waiting_rooms(settings, adapters, passes, metrics, shutdown)?;
        let admission = build_admission(settings, metrics, shutdown)?;
        Ok(Self {
            catalog: web::Data::from(catalog),
            purchases: web::Data::new(purchases),
            admission,
            orders: web::Data::new(orders),
            serve_objects: settings.object_store.kind == ObjectStoreKind::Filesystem
                || settings.object_store.public_base_url.starts_with('/'),
            static_dir: settings.server.static_dir.clone(),
            identity: web::Data::new(Identity::new(provider, limiter, registrations)),
            issuer,
            rooms,
        })
    }

    pub(super) fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.catalog.clone())
            .app_data(self.purchases.clone())
            .app_data(self.admission.clone())
            .app_data(self.orders.clone())
            .app_data(self.rooms.clone())
            .configure(http::catalog::configure)
            .configure(http::purchase::configure)
            .configure(http::waiting_room::configure)
            .configure(http::admin::configure);
        if self.serve_objects {
            cfg.configure(http::catalog::configure_objects);
        }
        cfg.app_data(self.identity.clone())
            .configure(http::auth::configure);
        if let Some(issuer) = &self.issuer {
            cfg.app_data(issuer.clone())
                .configure(http::auth::configure_issuer);
        }
    }

    /// The pages' catch-all; mounted after every other module so it shadows no route.
    pub(super) fn configure_pages(&self, cfg: &mut web::ServiceConfig) {
        if !self.static_dir.as_os_str().is_empty() {
            cfg.configure(http::pages::configure(&self.static_dir));
        }
    }
}

fn build_catalog(
    settings: &Settings,
    adapters: &Adapters,
    metrics: &Metrics,
) -> Result<Catalog, StartupError> {
    let redis = required(&adapters.redis, "Redis")?;
    let keys = adapters.keys.clone();
    let catalog_metrics = CatalogMetrics::new().map_err(StartupError::runtime)?;
    metrics
        .register(catalog_metrics.collector())
        .map_err(StartupError::runtime)?;
    let locks = RebuildLocks::new(
        redis.clone(),
        Duration::from_millis(settings.catalog.lock_ttl_ms),
    );
    let mysql = required(&adapters.mysql, "MySQL")?;
    let search: Arc<dyn SearchIndex> = match settings.catalog.search.engine {
        SearchEngine::Tantivy => Arc::new(
            TantivySearch::new(settings.catalog.search.niceness).map_err(StartupError::runtime)?,
        ),
        SearchEngine::Mariadb => Arc::new(MysqlSearch::new(mysql.clone())),
        SearchEngine::Opensearch => {
            Arc::new(OpenSearch::new(&settings.catalog.search).map_err(StartupError::runtime)?)
        }
    };
    Ok(Catalog::new(
        mysql,
        CatalogCache::new(redis.clone(), keys.clone()),
        CouponState::new(redis, keys),
        locks,
        required(&adapters.objects, "object store")?,
        search,
        settings.catalog.clone(),
        crate::adapters::object_store::public_base_url(&settings.object_store),
        catalog_metrics,
    ))
}

/// Brings the search engine up to date with MySQL before the instance serves. An
/// external engine may have missed changes while this instance was down; an index of
/// its own starts empty, and keeps following the changes made elsewhere.
async fn start_search(catalog: &Arc<Catalog>, settings: &Settings, shutdown: &Shutdown) {
    let search = &settings.catalog.search;
    let filled = match search.engine {
        SearchEngine::Mariadb => return,
        SearchEngine::Opensearch => catalog.rebuild_search().await,
        SearchEngine::Tantivy => {
            let filled = catalog.follow_search_changes().await;
            shutdown.spawn(search_follow::run(
                catalog.clone(),
                Duration::from_millis(search.follow_ms),
                shutdown.token(),
            ));
            filled
        }
    };
    match filled {
        Ok(count) => tracing::info!(
            coupons = count,
            engine = catalog.search_engine(),
            "search engine filled from MySQL"
        ),
        Err(error) => tracing::warn!(
            error = crate::domain::failure::chain(&error),
            "could not fill the search engine; searches answer 503 or may miss coupons until it can"
        ),
    }
}

fn build_waiting_rooms(
    settings: &Settings,
    adapters: &Adapters,
    passes: PassSigner,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<web::Data<WaitingRooms>, StartupError> {
    let redis = required(&adapters.redis, "Redis")?;
    let room_metrics = WaitingRoomMetrics::new().map_err(StartupError::runtime)?;
    for collector in room_metrics.collectors() {
        metrics.register(collector).map_err(StartupError::runtime)?;
    }
    let rooms = Arc::new(WaitingRooms::new(
        WaitingRoomStore::new(redis.clone(), adapters.keys.clone()),
        passes,
        PaymentNotifier::new(redis, adapters.keys.clone()),
        Duration::from_secs(settings.purchase.admission_pass_ttl_secs),
        room_metrics,
    ));
    shutdown.spawn(waiting_room::run(
        rooms.clone(),
        required(&adapters.mysql, "MySQL")?,
        Duration::from_millis(settings.purchase.waiting_room_tick_ms),
        shutdown.token(),
    ));
    Ok(web::Data::from(rooms))
}

fn build_admission(
    settings: &Settings,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<web::Data<PurchaseAdmission>, StartupError> {
    let purchase = &settings.purchase;
    let admission = start_admission(
        "purchases",
        "Purchase requests refused with 429 before reaching the gate, by the limit hit",
        [
            Rate {
                per_sec: purchase.user_rate_per_sec,
                burst: purchase.user_burst,
            },
            Rate {
                per_sec: purchase.ip_rate_per_sec,
                burst: purchase.ip_burst,
            },
        ],
        metrics,
        shutdown,
    )?;
    Ok(web::Data::new(PurchaseAdmission(admission)))
}

async fn build_purchases(
    settings: &Settings,
    adapters: &Adapters,
    catalog: Arc<Catalog>,
    passes: PassSigner,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<(Purchases, Orders), StartupError> {
    let redis = required(&adapters.redis, "Redis")?;
    let kafka = required(&adapters.kafka, "Kafka")?;
    let keys = adapters.keys.clone();
    let topic = settings.kafka.orders_topic_name();
    let partitions = ensure_orders_topic(settings, &kafka).await?;
    let purchase = &settings.purchase;
    let publish_deadline = OrderPublisher::deadline_for(&kafka);
    let reconcile_kafka = kafka.clone();
    let publisher = OrderPublisher::start(
        kafka,
        topic.clone(),
        partitions,
        PublisherLimits {
            queue: purchase.publish_queue,
            max_batch: purchase.publish_max_batch,
            in_flight: purchase.publish_in_flight,
        },
        shutdown,
    );
    register_queue_gauges(&publisher, metrics)?;
    let pending = PendingOrders::start(
        redis.clone(),
        keys.clone(),
        Duration::from_secs(purchase.pending_ttl_secs),
        shutdown,
    );
    let gate = StockGate::new(
        redis,
        keys,
        Duration::from_secs(purchase.idempotency_ttl_secs),
    );
    let mysql = required(&adapters.mysql, "MySQL")?;
    let rebuilds = Arc::new(SaleRebuilds::new(Reconciler {
        mysql: mysql.clone(),
        kafka: reconcile_kafka,
        gate: gate.clone(),
        topic,
        partitions,
        // Every purchase decided before the rebuild mark has then been published or
        // given back (the release is one more Redis call).
        settle: publish_deadline + Duration::from_millis(settings.redis.timeout_ms + 300),
    }));
    if purchase.audit_interval_secs > 0 {
        let audit_metrics = AuditMetrics::new().map_err(StartupError::runtime)?;
        for collector in audit_metrics.collectors() {
            metrics.register(collector).map_err(StartupError::runtime)?;
        }
        shutdown.spawn(audit::run(
            mysql.clone(),
            gate.clone(),
            rebuilds.clone(),
            audit_metrics,
            Duration::from_secs(purchase.audit_interval_secs),
            shutdown.token(),
        ));
    }
    let orders = Orders::new(mysql.clone(), pending.clone());
    let purchases = Purchases::new(
        gate,
        publisher,
        pending,
        orders.clone(),
        catalog,
        Some(rebuilds),
        passes,
        shutdown,
    )
    .map_err(StartupError::runtime)?;
    let purchases = with_strategy(purchases, purchase.strategy, &mysql)?;
    for collector in purchases.collectors() {
        metrics.register(collector).map_err(StartupError::runtime)?;
    }
    Ok((purchases, orders))
}

/// `purchase_publish_queue_depth` and `_capacity`: accepted purchases waiting for the
/// broker (full means new purchases are answered 503).
fn register_queue_gauges(
    publisher: &OrderPublisher,
    metrics: &Metrics,
) -> Result<(), StartupError> {
    let depth = publisher.clone();
    let room = publisher.clone();
    let gauges = [
        crate::metrics::ComputedGauge::new(
            "purchase_publish_queue_depth",
            "Accepted purchases whose order event waits for the broker",
            &[],
            move || {
                vec![(
                    Vec::new(),
                    i64::try_from(depth.queued().0).unwrap_or(i64::MAX),
                )]
            },
        ),
        crate::metrics::ComputedGauge::new(
            "purchase_publish_queue_capacity",
            "Room of the order event queues (beyond it purchases are answered 503)",
            &[],
            move || {
                vec![(
                    Vec::new(),
                    i64::try_from(room.queued().1).unwrap_or(i64::MAX),
                )]
            },
        ),
    ];
    for gauge in gauges {
        let gauge = gauge.map_err(StartupError::runtime)?;
        metrics
            .register(Box::new(gauge))
            .map_err(StartupError::runtime)?;
    }
    Ok(())
}

/// The gate `purchase.strategy` names: Redis, or (benchmark builds only) a MySQL gate.
#[cfg(feature = "bench")]
fn with_strategy(
    purchases: Purchases,
    strategy: PurchaseStrategy,
    mysql: &MysqlPool,
) -> Result<Purchases, StartupError> {
    use crate::app::purchase::mysql_gates::MysqlGate;
    if strategy == PurchaseStrategy::Redis {
        return Ok(purchases);
    }
    tracing::warn!(
        ?strategy,
        "purchase strategy for benchmarks only: the purchase path uses MySQL locks"
    );
    Ok(purchases.with_mysql_gate(MysqlGate {
        mysql: mysql.clone(),
        optimistic: strategy == PurchaseStrategy::MysqlOptimistic,
    }))
}

#[cfg(not(feature = "bench"))]
fn with_strategy(
    purchases: Purchases,
    strategy: PurchaseStrategy,
    _: &MysqlPool,
) -> Result<Purchases, StartupError> {
    if strategy == PurchaseStrategy::Redis {
        Ok(purchases)
    } else {
        Err(StartupError::Configuration(format!(
            "purchase.strategy {strategy:?} needs a build with the `bench` feature"
        )))
    }
}
