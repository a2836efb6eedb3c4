use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use secrecy::ExposeSecret;

use super::{ObjectStore, ObjectStoreError, StoredObject, check_key};
use crate::config::S3StoreSettings;
use crate::domain::failure::chain;

/// Objects in an S3 bucket (AWS, or an S3-compatible server with `endpoint` and
/// `path_style`). Every call is bounded by the configured timeout.
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    pub fn new(settings: &S3StoreSettings) -> Self {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(settings.region.clone()))
            .force_path_style(settings.path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            );
        if !settings.access_key_id.is_empty() {
            config = config.credentials_provider(Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.expose_secret().to_owned(),
                None,
                None,
                "flash-sale-config",
            ));
        }
        if !settings.endpoint.is_empty() {
            config = config.endpoint_url(settings.endpoint.clone());
        }
        Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
        }
    }
}

fn remote<E: std::error::Error + 'static>(e: E) -> ObjectStoreError {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    ObjectStoreError::Remote(chain(&e))
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), ObjectStoreError> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<StoredObject, ObjectStoreError> {
        check_key(key)?;
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(ObjectStoreError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(remote(e)),
        };
        let content_type = output
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = output.body.collect().await.map_err(remote)?.into_bytes();
        Ok(StoredObject {
            bytes,
            content_type,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        check_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), ObjectStoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(remote)?;
        Ok(())
    }
}
