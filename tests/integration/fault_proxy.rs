//! A TCP proxy in front of a Kafka broker that can lose the broker's answers to
//! produce requests while still forwarding the requests: the events reach the log, the
//! producer never hears so. It reads just enough of the Kafka framing for that (the
//! size prefix, the request's API key and correlation id, the response's correlation
//! id). The broker must advertise the proxy's port so every connection goes through it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PRODUCE: i16 = 0;

pub struct KafkaFaultProxy {
    drop_produce_answers: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KafkaFaultProxy {
    /// Listens on `port` and forwards every connection to the broker on `broker_port`.
    pub async fn start(port: u16, broker_port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("proxy port");
        let drop_produce_answers = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let drop_answers = drop_produce_answers.clone();
            let dropped = dropped.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                        continue;
                    };
                    tokio::spawn(relay(client, broker, drop_answers.clone(), dropped.clone()));
                }
            }
        });
        Self {
            drop_produce_answers,
            dropped,
            task,
        }
    }

    /// Answers to produce requests swallowed so far.
    pub fn dropped_answers(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// While on, answers to produce requests are swallowed (the requests still pass).
    pub fn drop_produce_answers(&self, on: bool) {
        self.drop_produce_answers.store(on, Ordering::SeqCst);
    }
}

impl Drop for KafkaFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    broker: TcpStream,
    drop_answers: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_broker, mut to_broker) = broker.into_split();
    // Correlation ids of produce requests sent while answers are being dropped.
    let doomed = Arc::new(Mutex::new(HashSet::<i32>::new()));
    let requests = {
        let doomed = doomed.clone();
        async move {
            while let Some(frame) = read_frame(&mut from_client).await {
                // Request header: api_key i16, api_version i16, correlation_id i32.
                if frame.len() >= 12 && drop_answers.load(Ordering::SeqCst) {
                    let api_key = i16::from_be_bytes([frame[4], frame[5]]);
                    let correlation =
                        i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                    if api_key == PRODUCE {
                        doomed.lock().unwrap().insert(correlation);
                    }
                }
                if to_broker.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
    };
    let answers = async move {
        while let Some(frame) = read_frame(&mut from_broker).await {
            // Response header: correlation_id i32.
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            if doomed.lock().unwrap().remove(&correlation) {
                dropped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            if to_client.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(requests, answers);
}

/// One size-prefixed frame, prefix included; None at the end of the stream.
async fn read_frame(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.ok()?;
    let len = usize::try_from(i32::from_be_bytes(size)).ok()?;
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&size);
    stream.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

/// A TCP proxy that delays every answer of the server by a fixed time (requests pass at
/// once, answers keep their order). With a delay far above everything else a request
/// does, its latency counts the round trips it waits for.
pub struct DelayProxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    pub async fn start(server_port: u16, delay: std::time::Duration) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy port");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                tokio::spawn(delay_answers(client, server, delay));
            }
        });
        Self { port, task }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn delay_answers(client: TcpStream, server: TcpStream, delay: std::time::Duration) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel();
    let requests = async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
    };
    let reads = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_server.read(&mut buf).await {
            if n == 0
                || due_tx
                    .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                return;
            }
        }
    };
    let answers = async move {
        while let Some((due, chunk)) = due_rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to_client.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(requests, reads, answers);
}

/// A TCP proxy that can be cut: while cut, its open connections are closed and new
/// ones are closed as soon as they are accepted, as when a server becomes unreachable.
pub struct CutProxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(server_port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy port");
        let port = listener.local_addr().unwrap().port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *watch.borrow() {
                    continue;
                }
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut, task }
    }

    pub fn cut(&self, on: bool) {
        self.cut.send_replace(on);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
