//! Where each shopper's socket lives: `user → server_id`, with a TTL kept alive by the
//! holding instance, so a killed instance's routes expire by themselves.

use std::time::Duration;

use super::scripts::WS_ROUTE;
use super::{Keys, RedisError, RedisPool};
use crate::domain::identity::UserId;

#[derive(Clone)]
pub struct WsRoutes {
    redis: RedisPool,
    keys: Keys,
    server_id: String,
    ttl: Duration,
}

impl WsRoutes {
    pub fn new(redis: RedisPool, keys: Keys, server_id: String, ttl: Duration) -> Self {
        Self {
            redis,
            keys,
            server_id,
            ttl,
        }
    }

    async fn call(&self, user: &UserId, action: &str) -> Result<bool, RedisError> {
        let mut invocation = WS_ROUTE.prepare_invoke();
        invocation
            .key(self.keys.ws_route(user.as_str()))
            .arg(action)
            .arg(&self.server_id)
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        let done: i64 = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(done == 1)
    }

    /// Points the user's route at this server (a new socket here).
    pub async fn claim(&self, user: &UserId) -> Result<(), RedisError> {
        self.call(user, "claim").await.map(drop)
    }

    /// Extends the route's TTL if it still points here.
    pub async fn refresh(&self, user: &UserId) -> Result<bool, RedisError> {
        self.call(user, "refresh").await
    }

    /// Removes the route if it still points here (the user's last socket closed).
    pub async fn remove(&self, user: &UserId) -> Result<bool, RedisError> {
        self.call(user, "remove").await
    }
}
