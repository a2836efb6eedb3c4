//! Private servers for tests that break them: an Apache Kafka broker (the same jars and
//! configuration as the local stack, scripts/kafka-broker.sh, its own ports and data
//! directory) and a redis-server, so a kill or a stall here never disturbs the shared
//! servers of the other tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A broker process; SIGKILLed on drop (a crash, not a clean shutdown). Its data
/// directory survives [`PrivateBroker::kill`], so a restart finds every event.
pub struct PrivateBroker {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    /// The port clients are told to use, when not the broker's own (a proxy's).
    advertised: Option<u16>,
}

impl PrivateBroker {
    /// A broker with a fresh data directory on a free port pair (client, controller).
    pub async fn start_fresh() -> Self {
        let dir = std::env::temp_dir().join(format!("fst-kafka-{}", uuid::Uuid::new_v4()));
        Self::start(free_port_pair(), dir).await
    }

    /// A fresh broker that tells its clients to connect through `proxy_port`.
    pub async fn start_behind(proxy_port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("fst-kafka-{}", uuid::Uuid::new_v4()));
        let mut broker = Self {
            child: None,
            port: free_port_pair(),
            dir,
            advertised: Some(proxy_port),
        };
        broker.launch().await;
        broker
    }

    /// Starts the broker on `port` with its data in `dir`.
    pub async fn start(port: u16, dir: PathBuf) -> Self {
        let mut broker = Self {
            child: None,
            port,
            dir,
            advertised: None,
        };
        broker.launch().await;
        broker
    }

    async fn launch(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::File::create(self.dir.join("broker.log")).unwrap();
        let child = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/kafka-broker.sh"
        ))
        .arg("run")
        .arg(&self.dir)
        .arg(self.port.to_string())
        .env("KAFKA_HEAP", "512m")
        .env(
            "KAFKA_ADVERTISED_PORT",
            self.advertised.unwrap_or(self.port).to_string(),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("scripts/kafka-broker.sh (make test installs the broker)");
        let child = self.child.insert(child);
        // A JVM start plus formatting on first use, on a machine busy with other tests:
        // allow two minutes.
        for _ in 0..1200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default();
        panic!("Kafka did not listen on {}:\n{log}", self.port);
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash or an OOM kill would end it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again with the same port and data (after [`kill`](Self::kill), or as a
    /// crash-restart when still running).
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose successor is free too (the controller listens there).
///
/// Taken below the kernel's ephemeral range (32768 and up): a port the OS hands out for
/// outgoing connections could be taken again in the seconds before the JVM binds it.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = 21_000 + (uuid::Uuid::new_v4().as_u128() % 8_000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
    panic!("no free port pair");
}

/// A private redis-server for tests that stall Redis as a whole (`CLIENT PAUSE` would
/// stall every other test on the shared one). Killed on drop.
pub struct PrivateRedis {
    child: Child,
    pub url: String,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = crate::helpers::free_port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("redis-server (make test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    child,
                    url: format!("redis://127.0.0.1:{port}"),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not listen on {port}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
