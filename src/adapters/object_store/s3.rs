use std::time::Duration;

use aws_config::BehaviorVersion;
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
    /// A client with the static keys of the settings when `access_key_id` is set, else
    /// with AWS's default credential chain: the environment (`AWS_ACCESS_KEY_ID`, ...),
    /// a web identity token (IRSA on EKS: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`),
    /// the ECS container or EC2 instance role. The chain is only consulted, and its
    /// temporary credentials refreshed, when a call needs them, so building never waits
    /// on the network.
    pub async fn new(settings: &S3StoreSettings) -> Self {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(timeout)
            .operation_timeout(timeout)
            .build();
        let mut shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .timeout_config(timeouts);
        if !settings.access_key_id.is_empty() {
            shared = shared.credentials_provider(Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.expose_secret().to_owned(),
                None,
                None,
                "flash-sale-config",
            ));
        }
        let mut config = aws_sdk_s3::config::Builder::from(&shared.load().await)
            .force_path_style(settings.path_style);
        if !settings.endpoint.is_empty() {
            config = config.endpoint_url(settings.endpoint.clone());
        }
        Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
        }
    }

    /// Where the bucket's objects are read from the outside: virtual-hosted style
    /// (`https://<bucket>.s3.<region>.amazonaws.com`, or the bucket as the first label of
    /// the endpoint's host), or `<endpoint>/<bucket>` with path style.
    pub fn public_base_url(settings: &S3StoreSettings) -> String {
        let bucket = &settings.bucket;
        let endpoint = settings.endpoint.trim_end_matches('/');
        if endpoint.is_empty() {
            // China's regions live under their own domain.
            let domain = if settings.region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            let region = &settings.region;
            return if settings.path_style {
                format!("https://s3.{region}.{domain}/{bucket}")
            } else {
                format!("https://{bucket}.s3.{region}.{domain}")
            };
        }
        if settings.path_style {
            return format!("{endpoint}/{bucket}");
        }
        match url::Url::parse(endpoint) {
            Ok(mut url) => {
                let host = url.host_str().unwrap_or_default().to_owned();
                if url.set_host(Some(&format!("{bucket}.{host}"))).is_ok() {
                    url.as_str().trim_end_matches('/').to_owned()
                } else {
                    format!("{endpoint}/{bucket}")
                }
            }
            // The settings were validated; keep an address rather than fail here.
            Err(_) => format!("{endpoint}/{bucket}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bucket: &str, region: &str, endpoint: &str, path_style: bool) -> S3StoreSettings {
        S3StoreSettings {
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            endpoint: endpoint.to_owned(),
            path_style,
            timeout_ms: 1000,
            access_key_id: String::new(),
            secret_access_key: String::new().into(),
        }
    }

    #[test]
    fn public_urls_follow_the_bucket_addressing() {
        for (settings, expected) in [
            (
                settings("coupons", "eu-west-1", "", false),
                "https://coupons.s3.eu-west-1.amazonaws.com",
            ),
            (
                settings("coupons", "eu-west-1", "", true),
                "https://s3.eu-west-1.amazonaws.com/coupons",
            ),
            (
                settings("coupons", "cn-north-1", "", false),
                "https://coupons.s3.cn-north-1.amazonaws.com.cn",
            ),
            (
                settings("coupons", "us-east-1", "http://127.0.0.1:19000/", true),
                "http://127.0.0.1:19000/coupons",
            ),
            (
                settings("coupons", "us-east-1", "https://s3.example.com", false),
                "https://coupons.s3.example.com",
            ),
            (
                settings("coupons", "us-east-1", "https://s3.example.com:9000", false),
                "https://coupons.s3.example.com:9000",
            ),
        ] {
            assert_eq!(
                S3Store::public_base_url(&settings),
                expected,
                "{settings:?}"
            );
        }
    }
}
