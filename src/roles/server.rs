//! A running role: its HTTP server, listener and graceful stop.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use super::modules::Modules;
#[cfg(feature = "payment")]
use super::payment;
use super::{Role, StartupError};
use crate::adapters::Adapters;
use crate::app::health::Health;
use crate::config::Settings;
use crate::http::{self, ops::InstanceInfo};
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown};

/// A role serving HTTP; stop it with [`RunningApp::stop`] or let a signal do it.
pub struct RunningApp {
    addr: SocketAddr,
    instance: InstanceInfo,
    adapters: Adapters,
    server: ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Shutdown,
    grace: Duration,
    drain: Duration,
}

/// How often the health gauges probe the stores.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Builds the role's adapters, binds its listener and starts serving in the background.
pub async fn start(settings: Settings, role: Role) -> Result<RunningApp, StartupError> {
    if !role.compiled_in() {
        return Err(StartupError::Configuration(format!(
            "role {:?} is not compiled into this binary (rebuild with the cargo feature(s) {:?})",
            role.name(),
            role.parts().iter().map(|r| r.name()).collect::<Vec<_>>()
        )));
    }
    let adapters = Adapters::connect(&settings, &role.dependencies())
        .await
        .map_err(|e| StartupError::Configuration(e.to_string()))?;
    if settings.mysql.migrate_on_start
        && let Some(mysql) = &adapters.mysql
    {
        // Development convenience; a failure here is reported by /readyz, not fatal.
        match crate::adapters::mysql::migrate::run_pending(mysql).await {
            Ok(applied) if !applied.is_empty() => {
                tracing::info!(migrations = ?applied, "applied pending migrations");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not apply migrations at start-up"),
        }
    }
    let metrics = Metrics::new().map_err(StartupError::runtime)?;
    metrics
        .describe_instance(role.name())
        .map_err(StartupError::runtime)?;
    for collector in crate::metrics::pool_gauges(&adapters).map_err(StartupError::runtime)? {
        metrics.register(collector).map_err(StartupError::runtime)?;
    }
    let instance = InstanceInfo {
        role: role.name(),
        server_id: uuid::Uuid::new_v4(),
        version: env!("CARGO_PKG_VERSION"),
    };
    let shutdown = Shutdown::new();

    let bind = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = TcpListener::bind(&bind).map_err(|e| {
        StartupError::Configuration(format!(
            "cannot listen on {bind} (server.host/server.port): {e}"
        ))
    })?;
    let addr = listener.local_addr().map_err(StartupError::runtime)?;

    let server_id = instance.server_id.to_string();
    let modules = Modules::build(
        &settings, role, &adapters, addr, &metrics, &shutdown, &server_id,
    )
    .await?;
    #[cfg(feature = "payment")]
    if role.parts().contains(&Role::Payment) {
        payment::start(
            &settings,
            &adapters,
            instance.server_id.to_string(),
            &metrics,
            &shutdown,
        )
        .await?;
    }
    let health_gauges = crate::metrics::HealthGauges::new().map_err(StartupError::runtime)?;
    for collector in health_gauges.collectors() {
        metrics.register(collector).map_err(StartupError::runtime)?;
    }
    shutdown.spawn(crate::workers::health::run(
        Health::new(adapters.clone()),
        health_gauges,
        shutdown.draining(),
        HEALTH_INTERVAL,
        shutdown.token(),
    ));
    let app_health = web::Data::new(Health::new(adapters.clone()));
    let app_metrics = web::Data::new(metrics);
    let app_instance = web::Data::new(instance.clone());
    let draining = web::Data::new(shutdown.draining());
    let trusted_hops = web::Data::new(http::client_ip::TrustedHops::new(
        &settings.server.trusted_proxies,
    ));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_health.clone())
            .app_data(app_metrics.clone())
            .app_data(app_instance.clone())
            .app_data(trusted_hops.clone())
            .app_data(draining.clone())
            .wrap(from_fn(http::metrics::record))
            .wrap(from_fn(http::request_id::tag))
            .configure(http::configure_extractors)
            .configure(http::ops::configure)
            .configure(|cfg| modules.configure(cfg))
            .default_service(web::to(http::not_found))
    })
    // Signals are handled by `run_until_signal`, which stops HTTP first, then workers.
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let server = server
        .listen(listener)
        .map_err(|e| StartupError::Configuration(format!("cannot listen on {bind}: {e}")))?
        .run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    tracing::info!(
        role = role.name(),
        server.id = %instance.server_id,
        address = %addr,
        "listening"
    );
    Ok(RunningApp {
        addr,
        instance,
        adapters,
        server: handle,
        server_task,
        shutdown,
        grace: Duration::from_secs(settings.server.shutdown_timeout_secs),
        drain: Duration::from_secs(settings.server.drain_secs),
    })
}

impl RunningApp {
    /// The bound address (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn instance(&self) -> &InstanceInfo {
        &self.instance
    }

    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// Serves until SIGTERM/SIGINT (or until the server fails), then stops gracefully.
    pub async fn run_until_signal(mut self) -> Result<(), StartupError> {
        let early_exit = tokio::select! {
            result = &mut self.server_task => Some(result),
            () = shutdown::signal() => None,
        };
        if let Some(result) = early_exit {
            self.shutdown.stop(self.grace).await;
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StartupError::Runtime(format!("HTTP server failed: {e}"))),
                Err(e) => Err(StartupError::Runtime(format!("HTTP server panicked: {e}"))),
            };
        }
        self.drain_and_stop().await;
        Ok(())
    }

    /// Reports not ready and closes the WebSockets at once, serves for the drain time
    /// (so balancers move traffic away first), then stops gracefully.
    pub async fn drain_and_stop(self) {
        self.begin_drain();
        if !self.drain.is_zero() {
            tracing::info!(
                drain_secs = self.drain.as_secs(),
                "draining: not ready, still serving"
            );
            tokio::time::sleep(self.drain).await;
        }
        self.stop().await;
    }

    /// The first step of [`RunningApp::drain_and_stop`].
    pub fn begin_drain(&self) {
        self.shutdown.begin_drain();
    }

    /// Graceful stop: stop accepting and drain in-flight requests, then cancel the
    /// background workers and wait for them, each within the configured grace period.
    pub async fn stop(self) {
        self.shutdown.close_connections();
        self.server.stop(true).await;
        let _ = self.server_task.await;
        if !self.shutdown.stop(self.grace).await {
            tracing::warn!(
                grace_secs = self.grace.as_secs(),
                "background tasks still running at the deadline; exiting anyway"
            );
        }
        tracing::info!(role = self.instance.role, "stopped");
    }
}
