//! `GET /ws`: authenticate, register with the hub, upgrade. Browsers cannot set headers
//! on a WebSocket, so the token comes as the subprotocol pair `bearer, <token>`
//! (answered with `bearer`); never in the URL, which proxies and access logs keep. A
//! missing or bad token is a 401 before any upgrade.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::app::access::Authenticator;
use crate::app::throttle::Admission;
use crate::domain::identity::IdentityError;
use crate::error::{AppError, ErrorBody};
use crate::http::extract::ClientIp;
use crate::live::Hub;
use crate::live::session::{self, ConnectionsClosing, SocketTiming};
use crate::shutdown::Draining;

/// How often one user and one client IP may ask for a socket.
pub struct UpgradeAdmission(pub Arc<Admission>);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(upgrade);
}

/// The token of a WebSocket handshake: the subprotocols `bearer, <token>`.
pub fn handshake_token(req: &HttpRequest) -> Option<String> {
    let protocols = req
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())?;
    let mut parts = protocols.split(',').map(str::trim);
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("bearer") {
            return parts.next().map(str::to_owned);
        }
    }
    None
}

/// WebSocket of payment results.
///
/// The token comes as the subprotocols `bearer, <token>` (answered with `bearer`), never
/// in the URL. At most `ws.max_sockets_per_user` sockets per user, and upgrades at the
/// `ws.upgrade_*` rates. Messages are JSON:
/// `{"type": "payment_update", "order_id", "status"}`.
#[utoipa::path(
    tag = "live",
    params(
        ("Sec-WebSocket-Protocol" = Option<String>, Header, nullable = false,
         description = "`bearer, <token>`"),
    ),
    responses(
        (status = 101, description = "Switching protocols"),
        (status = 400, description = "error: INVALID_REQUEST (not a WebSocket handshake)", body = ErrorBody),
        (status = 401, description = "error: UNAUTHORIZED", body = ErrorBody),
        (status = 429, description = "error: TOO_MANY_CONNECTIONS (this user's sockets), TOO_MANY_REQUESTS (upgrades asked too often; `Retry-After`)", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[get("/ws")]
// One extractor per thing the handshake needs is clearer than a bundle.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    ClientIp(client_ip): ClientIp,
    admission: web::Data<UpgradeAdmission>,
    authenticator: web::Data<Authenticator>,
    hub: web::Data<Hub>,
    timing: web::Data<SocketTiming>,
    closing: web::Data<ConnectionsClosing>,
    draining: Option<web::Data<Draining>>,
) -> Result<HttpResponse, AppError> {
    if draining.is_some_and(|d| d.is_set()) {
        hub.metrics().refused.with_label_values(&["draining"]).inc();
        return Err(AppError::Draining);
    }
    admission.0.admit_ip(&client_ip)?;
    let token = handshake_token(&req).ok_or(IdentityError::Unauthorized("missing bearer token"))?;
    let principal = authenticator.verify(&token).await?;
    admission.0.admit_user(&principal.user_id)?;
    let hub: Arc<Hub> = hub.into_inner();
    let (registration, outbox) = hub.register(&principal.user_id).await?;
    let (response, socket, stream) = actix_ws::handle_with_protocols(&req, body, &["bearer"])
        .map_err(|e| AppError::BadRequest(format!("not a WebSocket handshake: {e}")))?;
    // The socket's loop runs on this worker's runtime (the stream is not Send).
    actix_web::rt::spawn(session::run(
        socket,
        stream,
        registration,
        outbox,
        **timing,
        closing.0.clone(),
    ));
    Ok(response)
}
