//! The ws role: the `/ws` endpoint, the socket hub and the payment-result relay.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use super::{StartupError, required, start_admission};
use crate::adapters::Adapters;
use crate::adapters::redis::ws_routes::WsRoutes;
use crate::app::throttle::Rate;
use crate::config::Settings;
use crate::http::ws::{self, UpgradeAdmission};
use crate::live::Hub;
use crate::live::hub::{SocketLimits, WsMetrics};
use crate::live::session::{ConnectionsClosing, SocketTiming};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::workers::relay;

#[derive(Clone)]
pub(super) struct WsModules {
    hub: web::Data<Hub>,
    timing: web::Data<SocketTiming>,
    closing: web::Data<ConnectionsClosing>,
    admission: web::Data<UpgradeAdmission>,
}

impl WsModules {
    pub(super) fn build(
        settings: &Settings,
        adapters: &Adapters,
        server_id: String,
        metrics: &Metrics,
        shutdown: &Shutdown,
    ) -> Result<Self, StartupError> {
        let redis = required(&adapters.redis, "Redis")?;
        let config = &settings.ws;
        let route_ttl = Duration::from_millis(config.route_ttl_ms);
        let ws_metrics = WsMetrics::new().map_err(StartupError::runtime)?;
        for collector in ws_metrics.collectors() {
            metrics.register(collector).map_err(StartupError::runtime)?;
        }
        let subscribers = redis.subscribers().to_vec();
        let routes = WsRoutes::new(redis, adapters.keys.clone(), server_id.clone(), route_ttl);
        let hub = Arc::new(Hub::new(
            routes,
            config.send_queue,
            SocketLimits {
                total: config.max_connections,
                per_user: config.max_sockets_per_user,
            },
            ws_metrics,
        ));
        relay::start(hub.clone(), subscribers, server_id, route_ttl, shutdown);
        let admission = start_admission(
            "ws_upgrades",
            "WebSocket upgrades refused with 429, by the limit hit",
            [
                Rate {
                    per_sec: config.upgrade_user_rate_per_sec,
                    burst: config.upgrade_user_burst,
                },
                Rate {
                    per_sec: config.upgrade_ip_rate_per_sec,
                    burst: config.upgrade_ip_burst,
                },
            ],
            metrics,
            shutdown,
        )?;
        Ok(Self {
            admission: web::Data::new(UpgradeAdmission(admission)),
            hub: web::Data::from(hub),
            timing: web::Data::new(SocketTiming {
                heartbeat: Duration::from_millis(config.heartbeat_interval_ms),
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            }),
            closing: web::Data::new(ConnectionsClosing(shutdown.connections())),
        })
    }

    pub(super) fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.hub.clone())
            .app_data(self.timing.clone())
            .app_data(self.closing.clone())
            .app_data(self.admission.clone())
            .configure(ws::configure);
    }
}
