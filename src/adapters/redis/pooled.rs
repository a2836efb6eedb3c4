//! The pool's connections: multiplexed connections checked with a `PING` at most once a
//! second rather than on every checkout.
//!
//! deadpool-redis's manager sends `UNWATCH` and `PING` each time a connection leaves the
//! pool: every pooled command cost two round trips, the check as dear as the work. The
//! adapters never `WATCH`, so nothing is left to undo. A connection that broke unseen
//! (a server restart, say) fails the one command that finds it, and is checked, found
//! closed and replaced before its next use.

use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::{self, Client, Cmd, Pipeline, RedisFuture, Value};

/// How long a connection that answered is taken on trust.
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub type Pool = managed::Pool<Manager>;
/// A connection checked out of the pool; back in it when dropped.
pub type Pooled = managed::Object<Manager>;

pub struct Manager {
    /// Holds the URL's credentials and TLS settings.
    client: Client,
}

impl Manager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// A pooled connection and when it last proved alive (`None`: a command failed on it
/// since).
pub struct Checked {
    conn: MultiplexedConnection,
    checked_at: Option<Instant>,
}

impl managed::Manager for Manager {
    type Type = Checked;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Checked, redis::RedisError> {
        let conn = self.client.get_multiplexed_async_connection().await?;
        Ok(Checked {
            conn,
            checked_at: Some(Instant::now()),
        })
    }

    async fn recycle(&self, conn: &mut Checked, _: &Metrics) -> RecycleResult<redis::RedisError> {
        if conn.checked_at.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return Ok(());
        }
        redis::cmd("PING")
            .query_async::<String>(&mut conn.conn)
            .await?;
        conn.checked_at = Some(Instant::now());
        Ok(())
    }
}

impl Checked {
    fn distrust_after<T>(&mut self, result: &redis::RedisResult<T>) {
        if result.is_err() {
            self.checked_at = None;
        }
    }
}

impl ConnectionLike for Checked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = self.conn.req_packed_command(cmd).await;
            self.distrust_after(&reply);
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let replies = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.distrust_after(&replies);
            replies
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
