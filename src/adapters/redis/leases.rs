//! Partition leases for the payment role (rskafka has no consumer groups): an owner
//! claims a partition with a TTL, renews it while consuming, and a dead owner's lease
//! lapses so another instance takes over within one TTL. Each new owner gets a larger
//! epoch, which fences stale owners' offset commits in MySQL.

use std::time::Duration;

use deadpool_redis::redis;

use super::scripts::LEASE;
use super::{Keys, RedisError, RedisPool};

#[derive(Clone)]
pub struct PartitionLeases {
    redis: RedisPool,
    keys: Keys,
    topic: String,
    owner: String,
    ttl: Duration,
}

impl PartitionLeases {
    pub fn new(redis: RedisPool, keys: Keys, topic: String, owner: String, ttl: Duration) -> Self {
        Self {
            redis,
            keys,
            topic,
            owner,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn call(
        &self,
        partition: i32,
        action: &str,
        epoch: Option<i64>,
    ) -> Result<i64, RedisError> {
        let mut invocation = LEASE.prepare_invoke();
        invocation
            .key(self.keys.partition_lease(&self.topic, partition))
            .key(self.keys.partition_lease_epoch(&self.topic, partition))
            .arg(action)
            .arg(&self.owner)
            .arg(self.ttl_ms());
        if let Some(epoch) = epoch {
            invocation.arg(epoch);
        }
        self.redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// Claims a free partition; its epoch, or `None` when someone holds it.
    pub async fn acquire(&self, partition: i32) -> Result<Option<i64>, RedisError> {
        let epoch = self.call(partition, "acquire", None).await?;
        Ok((epoch > 0).then_some(epoch))
    }

    /// Extends a held lease; false when it was lost (expired and maybe taken).
    pub async fn renew(&self, partition: i32, epoch: i64) -> Result<bool, RedisError> {
        Ok(self.call(partition, "renew", Some(epoch)).await? == 1)
    }

    pub async fn release(&self, partition: i32, epoch: i64) -> Result<bool, RedisError> {
        Ok(self.call(partition, "release", Some(epoch)).await? == 1)
    }

    /// Records this instance as alive for two TTLs and returns how many instances are.
    pub async fn heartbeat(&self) -> Result<usize, RedisError> {
        let key = self.keys.payment_instances();
        let owner = self.owner.clone();
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        self.redis
            .run_shared(|mut conn| async move {
                let (now_s, now_us): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
                let now_ms = now_s * 1000 + now_us / 1000;
                let (_, _, live, _): ((), i64, usize, ()) = redis::pipe()
                    .atomic()
                    .zadd(&key, &owner, now_ms + 2 * ttl_ms)
                    .zrembyscore(&key, "-inf", now_ms)
                    .zcard(&key)
                    .pexpire(&key, 4 * ttl_ms)
                    .query_async(&mut conn)
                    .await?;
                Ok(live)
            })
            .await
    }

    /// Removes this instance from the live set (clean shutdown).
    pub async fn leave(&self) -> Result<(), RedisError> {
        let key = self.keys.payment_instances();
        let owner = self.owner.clone();
        self.redis
            .run_shared(|mut conn| async move {
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(owner)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }
}
