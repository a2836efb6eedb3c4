//! One socket's life after the handshake: payment results out, pings both ways, closed
//! for idleness, for falling behind, or when the server stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::Registration;

/// Timing of one socket.
#[derive(Clone, Copy)]
pub struct SocketTiming {
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
}

/// Cancelled when the server drains or stops: sockets close with 1012 "service restart".
#[derive(Clone)]
pub struct ConnectionsClosing(pub CancellationToken);

/// Runs the socket until it closes, then leaves the hub.
pub async fn run(
    mut session: Session,
    mut stream: MessageStream,
    registration: Registration,
    mut outbox: mpsc::Receiver<Arc<str>>,
    timing: SocketTiming,
    closing: CancellationToken,
) {
    let mut last_seen = Instant::now();
    let mut heartbeat = tokio::time::interval(timing.heartbeat);
    let reason = loop {
        tokio::select! {
            message = outbox.recv() => match message {
                Some(text) => {
                    if session.text(text.to_string()).await.is_err() {
                        break None;
                    }
                }
                // The hub dropped us: this client fell too far behind.
                None => break Some(CloseReason {
                    code: CloseCode::Policy,
                    description: Some("too slow to keep up".into()),
                }),
            },
            incoming = stream.recv() => match incoming {
                Some(Ok(Message::Ping(bytes))) => {
                    last_seen = Instant::now();
                    if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                // Pongs and any client message count as signs of life.
                Some(Ok(_)) => last_seen = Instant::now(),
            },
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > timing.idle_timeout {
                    break Some(CloseReason {
                        code: CloseCode::Away,
                        description: Some("idle timeout".into()),
                    });
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
            // 1012: the client should reconnect, which reaches another instance.
            () = closing.cancelled() => break Some(CloseReason {
                code: CloseCode::Restart,
                description: Some("service restart".into()),
            }),
        }
    };
    let _ = session.close(reason).await;
    registration.leave().await;
}
