//! The services the roles talk to: MySQL, Redis, Kafka and object storage.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database`; may carry a password, so never logged.
    pub url: SecretString,
    pub max_connections: usize,
    pub connect_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `standalone`: one server at `url`. `cluster`: a Redis Cluster reached through
    /// `nodes`.
    pub mode: RedisMode,
    /// The server in standalone mode; may carry a password, so never logged.
    pub url: SecretString,
    /// Seed nodes of the cluster (`redis://host:port`, any subset of its nodes): the
    /// client learns the slot map from the first that answers.
    pub nodes: Vec<SecretString>,
    /// Prefix of every key this deployment writes.
    pub namespace: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Standalone,
    Cluster,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: Vec<String>,
    pub topic_prefix: String,
    pub orders_topic: String,
    pub orders_partitions: i32,
    /// Copies of each partition when the application creates the topic.
    pub orders_replication_factor: i16,
    /// Replicas that must hold an event before the broker acknowledges it (the topic's
    /// `min.insync.replicas`, set when the application creates the topic).
    pub orders_min_insync_replicas: i16,
    pub timeout_ms: u64,
    /// HMAC key of order events, the same in every api and payment instance: the
    /// payment role reads only events signed with it.
    pub event_signing_key: SecretString,
}

impl KafkaSettings {
    /// Full name of the orders topic, with the deployment's prefix.
    pub fn orders_topic_name(&self) -> String {
        format!("{}{}", self.topic_prefix, self.orders_topic)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    Filesystem,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSettings {
    pub kind: ObjectStoreKind,
    pub public_base_url: String,
    pub filesystem: FilesystemStoreSettings,
    pub s3: S3StoreSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemStoreSettings {
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3StoreSettings {
    pub bucket: String,
    pub region: String,
    /// Empty for AWS itself; the URL of an S3-compatible server otherwise.
    pub endpoint: String,
    pub path_style: bool,
    pub timeout_ms: u64,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}
