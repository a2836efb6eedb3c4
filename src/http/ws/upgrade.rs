//! `GET /ws`: authenticate, then upgrade. Browsers cannot set headers on a WebSocket, so
//! the token comes as the subprotocol pair `bearer, <token>` (answered with `bearer`)
//! or as the `access_token` query parameter. A missing or bad token is a 401 before
//! any upgrade.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{CloseCode, CloseReason, Message};
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, HubError};
use crate::adapters::oidc::TokenVerifier;
use crate::domain::identity::IdentityError;
use crate::error::AppError;

/// Timing of one socket.
#[derive(Clone, Copy)]
pub struct SocketTiming {
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
}

/// Cancelled when the server stops: sockets close with 1001 "going away".
#[derive(Clone)]
pub struct ConnectionsClosing(pub CancellationToken);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(upgrade);
}

/// The token of a WebSocket handshake: subprotocols `bearer, <token>`, else the query.
fn handshake_token(req: &HttpRequest) -> Option<String> {
    if let Some(protocols) = req
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = protocols.split(',').map(str::trim);
        while let Some(part) = parts.next() {
            if part.eq_ignore_ascii_case("bearer") {
                return parts.next().map(str::to_owned);
            }
        }
    }
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("access_token").cloned())
}

#[get("/ws")]
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    verifier: web::Data<TokenVerifier>,
    hub: web::Data<Hub>,
    timing: web::Data<SocketTiming>,
    closing: web::Data<ConnectionsClosing>,
) -> Result<HttpResponse, AppError> {
    let token = handshake_token(&req).ok_or(IdentityError::Unauthorized("missing bearer token"))?;
    let principal = verifier.verify(&token).await?;
    let hub: Arc<Hub> = hub.into_inner();
    let (registration, mut outbox) =
        hub.register(&principal.user_id)
            .await
            .map_err(|e| match e {
                HubError::Full(_) => AppError::Catalog(crate::domain::coupon::CatalogError::Busy),
                HubError::Redis(e) => AppError::Identity(IdentityError::Unavailable(e.to_string())),
            })?;
    let (response, mut session, mut stream) =
        actix_ws::handle_with_protocols(&req, body, &["bearer"])
            .map_err(|e| AppError::BadRequest(format!("not a WebSocket handshake: {e}")))?;
    let timing = **timing;
    let closing = closing.0.clone();

    // The socket's loop runs on this worker's runtime (the stream is not Send).
    actix_web::rt::spawn(async move {
        let _registration = registration;
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
                () = closing.cancelled() => break Some(CloseReason {
                    code: CloseCode::Away,
                    description: Some("server shutting down".into()),
                }),
            }
        };
        let _ = session.close(reason).await;
    });
    Ok(response)
}
