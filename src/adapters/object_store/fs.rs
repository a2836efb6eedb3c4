use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{ObjectStore, ObjectStoreError, StoredObject, check_key};

/// Objects as files under a root directory; the content type is kept in a `.type`
/// sidecar file.
pub struct FilesystemStore {
    root: PathBuf,
}

impl FilesystemStore {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn paths(&self, key: &str) -> Result<(PathBuf, PathBuf), ObjectStoreError> {
        check_key(key)?;
        // The sidecars are this store's bookkeeping, never objects of their own.
        if SIDECARS.iter().any(|suffix| key.ends_with(suffix)) {
            return Err(ObjectStoreError::NotFound(key.to_owned()));
        }
        let data = self.root.join(key);
        let mut meta = data.clone().into_os_string();
        meta.push(".type");
        Ok((data, PathBuf::from(meta)))
    }
}

/// Suffixes of the files kept beside an object: its content type, a write in progress.
const SIDECARS: [&str; 2] = [".type", ".tmp"];

fn not_found(key: &str, e: std::io::Error) -> ObjectStoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ObjectStoreError::NotFound(key.to_owned())
    } else {
        ObjectStoreError::Io(e)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FilesystemStore {
    async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), ObjectStoreError> {
        let (data, meta) = self.paths(key)?;
        if let Some(parent) = data.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Write to a temporary name and rename, so readers never see half a file.
        let mut tmp = data.clone().into_os_string();
        tmp.push(".tmp");
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::write(&meta, content_type.as_bytes()).await?;
        tokio::fs::rename(&tmp, &data).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<StoredObject, ObjectStoreError> {
        let (data, meta) = self.paths(key)?;
        // A directory (a key prefix such as `coupons/7`) is not an object.
        let is_file = tokio::fs::metadata(&data)
            .await
            .map_err(|e| not_found(key, e))?
            .is_file();
        if !is_file {
            return Err(ObjectStoreError::NotFound(key.to_owned()));
        }
        let bytes = tokio::fs::read(&data)
            .await
            .map_err(|e| not_found(key, e))?;
        let content_type = tokio::fs::read_to_string(&meta)
            .await
            .unwrap_or_else(|_| "application/octet-stream".to_owned());
        Ok(StoredObject {
            bytes: Bytes::from(bytes),
            content_type,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        let (data, meta) = self.paths(key)?;
        for path in [data, meta] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), ObjectStoreError> {
        tokio::fs::create_dir_all(&self.root).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_delete() {
        let root = std::env::temp_dir().join(format!("fs-store-{}", uuid::Uuid::new_v4()));
        let store = FilesystemStore::new(&root);
        store.ping().await.unwrap();
        store
            .put(
                "coupons/1/a.png",
                Bytes::from_static(b"\x89PNG"),
                "image/png",
            )
            .await
            .unwrap();
        let got = store.get("coupons/1/a.png").await.unwrap();
        assert_eq!(got.bytes.as_ref(), b"\x89PNG");
        assert_eq!(got.content_type, "image/png");
        store.delete("coupons/1/a.png").await.unwrap();
        assert!(matches!(
            store.get("coupons/1/a.png").await,
            Err(ObjectStoreError::NotFound(_))
        ));
        assert!(matches!(
            store.put("../x", Bytes::new(), "a/b").await,
            Err(ObjectStoreError::InvalidKey(_))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }
}
