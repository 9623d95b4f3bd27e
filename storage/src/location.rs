//! A capture URL (`s3://bucket/prefix/`, `gs://`, `az://`, `http(s)://`) and the object store
//! it names, with credentials taken the way each cloud's own tools take them.
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

/// The environment variable that points S3 clients at an S3-compatible server (Garage, MinIO,
/// Ceph); `--endpoint` overrides it. The AWS CLI and SDKs read the same one.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}: not a URL: {1}")]
    BadUrl(String, url::ParseError),
    #[error(
        "{0}: fantrace reads and writes s3://, gs://, az:// (or abfs://) and http(s):// URLs; \
         give a local path or one of those"
    )]
    UnknownScheme(String),
    #[error(
        "{url}: cannot set up the object store: {cause}; check the credentials in the \
         environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, \
         AZURE_STORAGE_ACCOUNT_NAME/AZURE_STORAGE_ACCOUNT_KEY) and --endpoint"
    )]
    Store {
        url: String,
        cause: object_store::Error,
    },
}

/// An object store and the prefix under it that a URL names.
#[derive(Debug, Clone)]
pub struct Location {
    pub url: Url,
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix inside the bucket (no leading or trailing `/`; empty for the bucket).
    pub prefix: Path,
}

impl Location {
    /// `scheme://bucket`: what DataFusion registers the store under.
    pub fn store_url(&self) -> String {
        store_url(&self.url)
    }

    /// The full URL of a key in this store.
    pub fn url_of(&self, key: &Path) -> String {
        format!("{}/{}", self.store_url(), key)
    }
}

/// `scheme://authority` of a URL.
pub fn store_url(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.authority())
}

/// Whether an argument names an object store rather than a local path.
pub fn is_url(text: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "http://", "https://",
    ]
    .iter()
    .any(|scheme| text.starts_with(scheme))
}

/// How often and how long one request is retried inside the store client. Kept short: the
/// recorder's uploader retries whole segments with its own back-off and reports each failure,
/// and an analyzer should fail in seconds, not minutes, when a store is down.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    }
}

/// Opens the store a URL names. `endpoint` (or `AWS_ENDPOINT_URL`) sends S3 requests to an
/// S3-compatible server instead of AWS; plain-HTTP endpoints are allowed because such servers
/// are often on a private network or loopback.
pub fn open(text: &str, endpoint: Option<&str>) -> Result<Location, StorageError> {
    let url = Url::parse(text).map_err(|e| StorageError::BadUrl(text.to_string(), e))?;
    let failed = |cause| StorageError::Store {
        url: text.to_string(),
        cause,
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            use object_store::aws::AmazonS3Builder;
            let mut builder = AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry());
            let endpoint = endpoint
                .map(str::to_string)
                .or_else(|| std::env::var(ENDPOINT_ENV).ok());
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            Arc::new(builder.build().map_err(failed)?)
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
        "az" | "abfs" | "abfss" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
        "http" | "https" => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(store_url(&url))
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
        _ => return Err(StorageError::UnknownScheme(text.to_string())),
    };
    let prefix = Path::from_url_path(url.path()).map_err(|e| failed(e.into()))?;
    Ok(Location { url, store, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_url_splits_into_store_and_prefix() {
        let loc = open(
            "s3://fleet/captures/host=web1/",
            Some("http://127.0.0.1:3900"),
        )
        .expect("an S3 URL with an endpoint opens without contacting it");
        assert_eq!(loc.store_url(), "s3://fleet");
        assert_eq!(loc.prefix.as_ref(), "captures/host=web1");
        assert_eq!(
            loc.url_of(&Path::from("captures/a.parquet")),
            "s3://fleet/captures/a.parquet"
        );
    }

    #[test]
    fn local_paths_and_unknown_schemes_are_told_apart() {
        assert!(is_url("s3://b/p"));
        assert!(is_url("https://example.org/x.parquet"));
        assert!(!is_url("/var/lib/fantrace"));
        assert!(!is_url("captures/s3:/x"));
        assert!(matches!(
            open("ftp://host/x", None),
            Err(StorageError::UnknownScheme(_))
        ));
    }
}
