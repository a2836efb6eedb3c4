//! Prometheus metrics, one registry per running app (no global state, so tests that run
//! several apps in one process read their own numbers).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("flash_sale".to_owned()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
        })
    }

    /// The process's own metrics (CPU, memory, open files: `flash_sale_process_*`) and
    /// `build_info{version, role}`, so dashboards can tell instances and releases apart.
    pub fn describe_instance(&self, role: &str) -> Result<(), prometheus::Error> {
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "1, labelled with the running version and role",
            ),
            &["version", "role"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), role])
            .set(1);
        self.registry.register(Box::new(build))?;
        self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
    }

    /// Registers a module's own collector (cache counters, consumer lag, ...).
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// A gauge whose values are read from live state when scraped (pool use, queue depth)
/// rather than kept up to date on every change. Series the reader no longer reports
/// disappear.
pub struct ComputedGauge {
    gauge: IntGaugeVec,
    read: Box<dyn Fn() -> Vec<(Vec<String>, i64)> + Send + Sync>,
}

impl ComputedGauge {
    pub fn new(
        name: &str,
        help: &str,
        labels: &[&str],
        read: impl Fn() -> Vec<(Vec<String>, i64)> + Send + Sync + 'static,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            gauge: IntGaugeVec::new(Opts::new(name, help), labels)?,
            read: Box::new(read),
        })
    }
}

impl Collector for ComputedGauge {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.reset();
        for (labels, value) in (self.read)() {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            self.gauge.with_label_values(&labels).set(value);
        }
        self.gauge.collect()
    }
}

/// The pools of `adapters` as `pool_connections{pool, state}`, `pool_max_connections`
/// and `pool_waiting`.
pub fn pool_gauges(
    adapters: &crate::adapters::Adapters,
) -> Result<Vec<Box<dyn Collector>>, prometheus::Error> {
    fn each(
        adapters: &crate::adapters::Adapters,
        value: impl Fn(&crate::adapters::PoolUse) -> Vec<(Option<&'static str>, usize)>
        + Send
        + Sync
        + 'static,
    ) -> impl Fn() -> Vec<(Vec<String>, i64)> + Send + Sync + 'static {
        let adapters = adapters.clone();
        move || {
            let mut out = Vec::new();
            for (pool, usage) in adapters.pool_usage() {
                for (state, n) in value(&usage) {
                    let mut labels = vec![pool.to_owned()];
                    labels.extend(state.map(str::to_owned));
                    out.push((labels, i64::try_from(n).unwrap_or(i64::MAX)));
                }
            }
            out
        }
    }
    Ok(vec![
        Box::new(ComputedGauge::new(
            "pool_connections",
            "Connections of each pool by state (in_use, idle)",
            &["pool", "state"],
            each(adapters, |u| {
                vec![(Some("in_use"), u.in_use), (Some("idle"), u.idle)]
            }),
        )?),
        Box::new(ComputedGauge::new(
            "pool_max_connections",
            "Largest size of each pool",
            &["pool"],
            each(adapters, |u| vec![(None, u.max)]),
        )?),
        Box::new(ComputedGauge::new(
            "pool_waiting",
            "Callers waiting for a connection of each pool",
            &["pool"],
            each(adapters, |u| vec![(None, u.waiting)]),
        )?),
    ])
}

/// Readiness as metrics: `dependency_up{dependency}` per probed store and `ready` (1 when
/// every store answers and the instance is not draining), refreshed by the health worker.
#[derive(Clone)]
pub struct HealthGauges {
    pub dependency_up: IntGaugeVec,
    pub ready: IntGauge,
}

impl HealthGauges {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            dependency_up: IntGaugeVec::new(
                Opts::new(
                    "dependency_up",
                    "1 when the store answered this instance's last readiness probe",
                ),
                &["dependency"],
            )?,
            ready: IntGauge::new(
                "ready",
                "1 when the instance is ready for traffic (stores answer, not draining)",
            )?,
        })
    }

    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.dependency_up.clone()),
            Box::new(self.ready.clone()),
        ]
    }
}
