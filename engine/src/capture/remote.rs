//! Capture segments in object stores (`-c s3://bucket/prefix/`): listing them, reading their
//! footers with ranged GETs, and digesting them for `--verify-data` and `verify`, so that every
//! check a local segment gets, a remote one gets too.
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};

use crate::capture::{CaptureError, Segment};

/// Where a remote segment is.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub store: Arc<dyn ObjectStore>,
    /// `scheme://bucket`, the URL DataFusion registers the store under.
    pub store_url: String,
    pub key: Path,
    /// Its size and modification time, as the listing (or a HEAD) reported them.
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// The bytes read from an object's end in the first request: enough for a typical segment's
/// footer (a few KiB), so most footers take one GET after the listing.
const FOOTER_GUESS: u64 = 64 * 1024;

fn failed(url: &str, cause: impl std::fmt::Display) -> CaptureError {
    CaptureError::Remote {
        url: url.to_string(),
        cause: cause.to_string(),
    }
}

/// The segment objects a capture URL names: one object (`.../x.parquet`), every `*.parquet`
/// under a prefix (recursively, so a fleet's `host=*/date=*` folders are all read), or those
/// matching a glob (`s3://b/fleet/host=web*/date=2026-11-2[56]/`): listing starts at the text
/// before the first wildcard, so the glob also narrows what is listed.
pub async fn list(text: &str, endpoint: Option<&str>) -> Result<Vec<RemoteObject>, CaptureError> {
    let location = fantrace_storage::open(text, endpoint).map_err(|e| failed(text, e))?;
    let store_url = location.store_url();
    let object = |meta: ObjectMeta| RemoteObject {
        store: Arc::clone(&location.store),
        store_url: store_url.clone(),
        key: meta.location,
        size: meta.size,
        modified: meta.last_modified.into(),
    };
    let path = location.url.path().trim_start_matches('/');
    let decoded = percent_decode(path);
    if let Some(star) = decoded.find(['*', '?', '[']) {
        let pattern = glob::Pattern::new(decoded.trim_end_matches('/')).map_err(|e| {
            CaptureError::BadPattern {
                pattern: text.to_string(),
                reason: e.to_string(),
            }
        })?;
        let literal = &decoded[..decoded[..star].rfind('/').map_or(0, |i| i + 1)];
        let prefix = Path::from(literal.trim_end_matches('/'));
        let metas = list_segments(&location.store, &prefix, text).await?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let matching: Vec<RemoteObject> = metas
            .into_iter()
            .filter(|m| {
                // The pattern names the object or one of the folders it is in.
                let parts: Vec<&str> = m.location.as_ref().split('/').collect();
                (1..=parts.len()).any(|n| pattern.matches_with(&parts[..n].join("/"), options))
            })
            .map(object)
            .collect();
        if matching.is_empty() {
            return Err(CaptureError::NoMatch {
                pattern: text.to_string(),
            });
        }
        return Ok(matching);
    }
    if path.ends_with(".parquet") {
        let meta = location
            .store
            .head(&location.prefix)
            .await
            .map_err(|e| failed(text, e))?;
        return Ok(vec![object(meta)]);
    }
    let metas = list_segments(&location.store, &location.prefix, text).await?;
    if metas.is_empty() {
        return Err(CaptureError::EmptyDir {
            path: PathBuf::from(text),
        });
    }
    Ok(metas.into_iter().map(object).collect())
}

/// Every `*.parquet` object under `prefix`, sorted by key; dot-files (a recorder's unfinished
/// segments) are left out as they are in a local directory.
async fn list_segments(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    text: &str,
) -> Result<Vec<ObjectMeta>, CaptureError> {
    let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
    let mut metas: Vec<ObjectMeta> = store
        .list(prefix)
        .try_filter(|m| {
            let name = m.location.filename().unwrap_or("");
            std::future::ready(name.ends_with(".parquet") && !name.starts_with('.'))
        })
        .try_collect()
        .await
        .map_err(|e| failed(text, e))?;
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(metas)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads an object's footer (one ranged GET, two for a footer over 64 KiB) and checks it as
/// [`crate::capture::open_segment`] checks a local file's.
pub async fn open_segment(object: RemoteObject) -> Result<Segment, CaptureError> {
    use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;
    let url = format!("{}/{}", object.store_url, object.key);
    // The size comes from the listing: no HEAD per object.
    let size = object.size;
    let not_parquet = |reason: String| CaptureError::NotParquet {
        path: PathBuf::from(&url),
        reason,
    };
    if size < 12 {
        return Err(not_parquet(format!("{size} bytes, too short")));
    }
    let start = size.saturating_sub(FOOTER_GUESS);
    let mut tail = object
        .store
        .get_range(&object.key, start..size)
        .await
        .map_err(|e| failed(&url, e))?;
    let end = &tail[tail.len() - 8..];
    if &end[4..] != b"PAR1" {
        return Err(not_parquet("no Parquet magic at its end".into()));
    }
    let footer_len = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
    if footer_len + 8 > size {
        return Err(not_parquet(format!(
            "its footer claims {footer_len} bytes, more than the file"
        )));
    }
    if footer_len + 8 > tail.len() as u64 {
        tail = object
            .store
            .get_range(&object.key, size - footer_len - 8..size)
            .await
            .map_err(|e| failed(&url, e))?;
    }
    let footer = tail.slice(tail.len() - 8 - footer_len as usize..tail.len() - 8);
    // Foreign input, decoded where a panic becomes this file's error (see `foreign`).
    let decoded = crate::capture::foreign::decode(|| {
        let parquet = ParquetMetaDataReader::decode_metadata(&footer)?;
        ArrowReaderMetadata::try_new(Arc::new(parquet), ArrowReaderOptions::new())
    })
    .map_err(|panic| not_parquet(format!("decoding its footer failed: {panic}")))?
    .map_err(|e| not_parquet(e.to_string()))?;
    let mut segment = crate::capture::from_footer(
        PathBuf::from(&url),
        Arc::clone(decoded.metadata()),
        decoded.schema(),
        size,
        object.modified,
    )?;
    segment.object = Some(object);
    Ok(segment)
}

/// The object's SHA-256 and that of its first `data_bytes` bytes, streamed in one GET.
pub async fn digests(
    object: &RemoteObject,
    data_bytes: Option<u64>,
) -> Result<(String, Option<String>), CaptureError> {
    let url = format!("{}/{}", object.store_url, object.key);
    let mut stream = object
        .store
        .get(&object.key)
        .await
        .map_err(|e| failed(&url, e))?
        .into_stream();
    let mut digests = crate::capture::Digests::new(data_bytes);
    while let Some(chunk) = stream.try_next().await.map_err(|e| failed(&url, e))? {
        digests.update(&chunk);
    }
    Ok(digests.finish())
}
