//! Wiring only: which adapters a role needs, which HTTP modules it mounts, which
//! workers it starts, and the order things stop in.
//!
//! Roles are cargo features too (`api`, `payment`, `ws`), so an operator can build a slim
//! binary; asking at run time for a role that was not compiled in is a configuration
//! error.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::adapters::oidc::TokenVerifier;
use crate::adapters::{Adapters, Dependency};
use crate::app::access::Authenticator;
use crate::app::health::Health;
use crate::config::{IdentityProviderKind, Settings};
use crate::http::{self, ops::InstanceInfo};
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown};

#[cfg(feature = "api")]
mod api;
#[cfg(feature = "payment")]
mod payment;
#[cfg(feature = "ws")]
mod ws;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Catalog, purchase and auth endpoints.
    Api,
    /// Kafka consumer, payment worker pool, order state in MySQL.
    Payment,
    /// WebSocket relay of payment results.
    Ws,
    /// Every role in one process (local development).
    All,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Payment => "payment",
            Self::Ws => "ws",
            Self::All => "all",
        }
    }

    /// The single roles this one stands for (`all` is every role).
    fn parts(self) -> &'static [Role] {
        match self {
            Self::Api => &[Self::Api],
            Self::Payment => &[Self::Payment],
            Self::Ws => &[Self::Ws],
            Self::All => &[Self::Api, Self::Payment, Self::Ws],
        }
    }

    fn compiled_in(self) -> bool {
        match self {
            Self::Api => cfg!(feature = "api"),
            Self::Payment => cfg!(feature = "payment"),
            Self::Ws => cfg!(feature = "ws"),
            Self::All => Self::All.parts().iter().all(|r| r.compiled_in()),
        }
    }

    /// External services this role talks to; `/readyz` probes exactly these.
    pub fn dependencies(self) -> BTreeSet<Dependency> {
        self.parts()
            .iter()
            .flat_map(|part| match part {
                Self::Api => &[
                    Dependency::Mysql,
                    Dependency::Redis,
                    Dependency::Kafka,
                    Dependency::ObjectStore,
                ][..],
                Self::Payment => &[Dependency::Mysql, Dependency::Redis, Dependency::Kafka][..],
                Self::Ws => &[Dependency::Redis][..],
                Self::All => &[][..],
            })
            .copied()
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The operator's mistake: exit code 2.
    #[error("{0}")]
    Configuration(String),
    #[error("{0}")]
    Runtime(String),
}

impl StartupError {
    pub fn runtime(error: impl std::fmt::Display) -> Self {
        Self::Runtime(error.to_string())
    }
}

/// The adapter a module needs; an error means the role's dependency list did not build
/// it (a wiring bug).
#[cfg_attr(
    not(any(feature = "api", feature = "payment", feature = "ws")),
    allow(dead_code)
)]
fn required<T: Clone>(adapter: &Option<T>, what: &str) -> Result<T, StartupError> {
    adapter
        .clone()
        .ok_or_else(|| StartupError::Runtime(format!("this role needs the {what} adapter")))
}

/// Creates the orders topic if absent and answers the partitions to use: the topic's
/// own count when it exists with another than configured (reported: producing to a
/// partition that does not exist would fail every purchase of its coupons), else the
/// configured one. A broker that is down now is retried by the producers and consumers
/// themselves, so that only warns.
#[cfg(any(feature = "api", feature = "payment"))]
async fn ensure_orders_topic(settings: &Settings, kafka: &crate::adapters::kafka::Kafka) -> i32 {
    let topic = settings.kafka.orders_topic_name();
    let configured = settings.kafka.orders_partitions;
    let spec = crate::adapters::kafka::TopicSpec {
        partitions: configured,
        replication_factor: settings.kafka.orders_replication_factor,
        min_insync_replicas: settings.kafka.orders_min_insync_replicas,
    };
    match kafka.ensure_topic(&topic, &spec).await {
        Ok(actual) if actual != configured => {
            tracing::warn!(
                topic,
                partitions = actual,
                configured,
                "the orders topic has another partition count than kafka.orders_partitions; \
                 using the topic's (add partitions with kafka-topics --alter, or change the setting)"
            );
            actual
        }
        Ok(actual) => actual,
        Err(error) => {
            tracing::warn!(%error, topic, "orders topic not reachable yet; retried on first use");
            configured
        }
    }
}

/// A role serving HTTP; stop it with [`RunningApp::stop`] or let a signal do it.
pub struct RunningApp {
    addr: SocketAddr,
    instance: InstanceInfo,
    adapters: Adapters,
    server: ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Shutdown,
    grace: Duration,
}

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
    let app_health = web::Data::new(Health::new(adapters.clone()));
    let app_metrics = web::Data::new(metrics);
    let app_instance = web::Data::new(instance.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_health.clone())
            .app_data(app_metrics.clone())
            .app_data(app_instance.clone())
            .wrap(from_fn(http::metrics::record))
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
    })
}

/// The HTTP modules a role mounts, with their state built once.
#[derive(Clone)]
struct Modules {
    /// Verifies bearer tokens (api and ws).
    verifier: Option<web::Data<Authenticator>>,
    #[cfg(feature = "api")]
    api: Option<api::ApiModules>,
    #[cfg(feature = "ws")]
    ws: Option<ws::WsModules>,
}

impl Modules {
    #[cfg_attr(not(all(feature = "api", feature = "ws")), allow(unused_variables))]
    async fn build(
        settings: &Settings,
        role: Role,
        adapters: &Adapters,
        addr: SocketAddr,
        metrics: &Metrics,
        shutdown: &Shutdown,
        server_id: &str,
    ) -> Result<Self, StartupError> {
        let serves_api = role.parts().contains(&Role::Api);
        let needs_tokens = role
            .parts()
            .iter()
            .any(|r| matches!(r, Role::Api | Role::Ws));
        if !needs_tokens {
            return Ok(Self {
                verifier: None,
                #[cfg(feature = "api")]
                api: None,
                #[cfg(feature = "ws")]
                ws: None,
            });
        }
        let issuer = resolve_issuer(settings, serves_api, addr)?;
        let verifier = TokenVerifier::new(&settings.identity, issuer.clone())
            .map_err(|e| StartupError::Configuration(e.to_string()))?;
        Ok(Self {
            verifier: Some(web::Data::new(Authenticator::new(verifier))),
            #[cfg(feature = "api")]
            api: if serves_api {
                Some(api::ApiModules::build(settings, adapters, issuer, metrics, shutdown).await?)
            } else {
                None
            },
            #[cfg(feature = "ws")]
            ws: if role.parts().contains(&Role::Ws) {
                Some(ws::WsModules::build(
                    settings,
                    adapters,
                    server_id.to_owned(),
                    metrics,
                    shutdown,
                )?)
            } else {
                None
            },
        })
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        if let Some(verifier) = &self.verifier {
            cfg.app_data(verifier.clone());
        }
        #[cfg(feature = "api")]
        if let Some(api) = &self.api {
            api.configure(cfg);
        }
        #[cfg(feature = "ws")]
        if let Some(ws) = &self.ws {
            ws.configure(cfg);
        }
        #[cfg(feature = "api")]
        if let Some(api) = &self.api {
            api.configure_pages(cfg);
        }
    }
}

/// The issuer URL tokens must carry: the configured one, or (embedded issuer in this
/// very process) this server's own address.
fn resolve_issuer(
    settings: &Settings,
    serves_api: bool,
    addr: SocketAddr,
) -> Result<String, StartupError> {
    let configured = settings.identity.issuer.trim_end_matches('/');
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    if !serves_api || settings.identity.provider != IdentityProviderKind::Embedded {
        return Err(StartupError::Configuration(
            "configuration error: identity.issuer: must be set when this process does not \
             serve the built-in issuer (e.g. the URL of the api role)"
                .to_owned(),
        ));
    }
    let host = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    Ok(format!("http://{}", SocketAddr::new(host, addr.port())))
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
        self.stop().await;
        Ok(())
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
