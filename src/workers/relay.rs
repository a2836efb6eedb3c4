//! The ws role's background work: the subscription to `payment_update:<server_id>`
//! (reconnecting with backoff after a Redis outage; messages published meanwhile are
//! lost, which the design tolerates: orders are readable through the API), and the
//! heartbeat that keeps this instance's user routes alive. On a Redis Cluster the
//! subscription is classic pub/sub on any node (a PUBLISH reaches every node); after a
//! node is lost the next one in the list is tried.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::Client;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::adapters::redis::notifier::{PAYMENT_UPDATE_PREFIX, PaymentUpdate, WaitingRoomUpdate};
use crate::live::Hub;
use crate::shutdown::Shutdown;

pub fn start(
    hub: Arc<Hub>,
    redis: Vec<Client>,
    server_id: String,
    route_ttl: Duration,
    shutdown: &Shutdown,
) {
    shutdown.spawn(subscribe(hub.clone(), redis, server_id, shutdown.token()));
    shutdown.spawn(refresh_routes(hub, route_ttl, shutdown.token()));
}

async fn subscribe(hub: Arc<Hub>, redis: Vec<Client>, server_id: String, stop: CancellationToken) {
    let channel = format!("{PAYMENT_UPDATE_PREFIX}{server_id}");
    let mut backoff = Duration::from_millis(100);
    for client in redis.iter().cycle() {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            tracing::info!(channel, "relaying payment results");
            Ok::<_, deadpool_redis::redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio::time::timeout(Duration::from_secs(5), session) => connected,
        };
        match pubsub {
            Ok(Ok(mut pubsub)) => {
                backoff = Duration::from_millis(100);
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let payload: String = match message.get_payload() {
                        Ok(payload) => payload,
                        Err(error) => {
                            tracing::warn!(%error, "unreadable pub/sub message");
                            continue;
                        }
                    };
                    if let Ok(update) = serde_json::from_str::<WaitingRoomUpdate>(&payload)
                        && update.kind == "waiting_room"
                    {
                        hub.deliver_waiting_room(&update);
                        continue;
                    }
                    match serde_json::from_str::<PaymentUpdate>(&payload) {
                        Ok(update) => hub.deliver(&update),
                        Err(error) => {
                            tracing::warn!(%error, "unexpected message on the payment channel")
                        }
                    }
                }
                tracing::warn!(channel, "payment channel subscription ended; reconnecting");
            }
            Ok(Err(error)) => {
                tracing::warn!(channel, %error, "cannot subscribe to the payment channel")
            }
            Err(_) => tracing::warn!(channel, "subscribing to the payment channel timed out"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn refresh_routes(hub: Arc<Hub>, route_ttl: Duration, stop: CancellationToken) {
    let period = route_ttl / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        for user in hub.users() {
            if let Err(error) = hub.routes().refresh(&user).await {
                tracing::warn!(%error, "could not refresh socket routes");
                break;
            }
        }
    }
}
