//! Capture segments in object stores (`-c s3://bucket/prefix/`): listing them, reading their
//! footers with ranged GETs, and digesting them for `--verify-data` and `verify`, so that every
//! check a local segment gets, a remote one gets too.
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _};
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

/// What a listing found: the segment objects, and the index lines of those the folders' index
/// chunks describe (by object key).
pub struct Listing {
    pub objects: Vec<RemoteObject>,
    pub index: HashMap<Path, IndexLine>,
    /// The `date=` folders listed, when a time window chose them (else every folder under the
    /// prefix was listed).
    pub folders: Option<usize>,
}

/// The segment objects a capture URL names: one object (`.../x.parquet`), every `*.parquet`
/// under a prefix (recursively, so a fleet's `host=*/date=*` folders are all read), or those
/// matching a glob (`s3://b/fleet/host=web*/date=2026-11-2[56]/`): listing starts at the text
/// before the first wildcard, so the glob also narrows what is listed.
///
/// With a time `window` (ns, inclusive) and a prefix laid out as a fleet's (`host=*/date=*/`,
/// or one host's `date=*/`), only the `date=` folders that can hold a call of the window are
/// listed (see `fantrace_storage::layout::days_for`): a year of segments costs a listing of
/// its hosts and their days, then of three days per day of the window.
pub async fn list(
    text: &str,
    endpoint: Option<&str>,
    window: Option<(i64, i64)>,
) -> Result<Listing, CaptureError> {
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
        let (metas, chunks) = list_segments(&location.store, &prefix, text).await?;
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
        let index = read_chunks(&location.store, &chunks, text).await?;
        return Ok(Listing {
            objects: matching,
            index,
            folders: None,
        });
    }
    if path.ends_with(".parquet") {
        let meta = location
            .store
            .head(&location.prefix)
            .await
            .map_err(|e| failed(text, e))?;
        return Ok(Listing {
            objects: vec![object(meta)],
            index: HashMap::new(),
            folders: None,
        });
    }
    let chosen = match window {
        Some((lo, hi)) => day_folders(&location.store, &location.prefix, lo, hi, text).await?,
        None => None,
    };
    let (metas, chunks, folders) = match chosen {
        Some((mut metas, folders)) => {
            let mut chunks = Vec::new();
            let mut listed = futures::stream::iter(
                folders
                    .iter()
                    .map(|f| list_segments(&location.store, f, text)),
            )
            .buffered(LISTS_AT_ONCE);
            while let Some(found) = listed.next().await {
                let (m, c) = found?;
                metas.extend(m);
                chunks.extend(c);
            }
            metas.sort_by(|a, b| a.location.cmp(&b.location));
            (metas, chunks, Some(folders.len()))
        }
        None => {
            let (metas, chunks) = list_segments(&location.store, &location.prefix, text).await?;
            (metas, chunks, None)
        }
    };
    if metas.is_empty() && folders.is_none() {
        return Err(CaptureError::EmptyDir {
            path: PathBuf::from(text),
        });
    }
    let index = read_chunks(&location.store, &chunks, text).await?;
    Ok(Listing {
        objects: metas.into_iter().map(object).collect(),
        index,
        folders,
    })
}

/// A segment's line in its folder's index chunk.
pub struct IndexLine {
    pub entry: fantrace_schema::index::Entry,
    /// When the chunk was written: the chunk is written after the segment it describes, so an
    /// object changed after this is not the one described.
    pub written: std::time::SystemTime,
}

impl IndexLine {
    /// Whether this line describes `object` as listed: same size, not written after the line.
    pub fn describes(&self, object: &RemoteObject) -> bool {
        self.entry.size == object.size && object.modified <= self.written
    }
}

/// Listings and index chunk reads in flight at once.
const LISTS_AT_ONCE: usize = 8;

/// For a prefix laid out as a fleet's, the `date=` folders that can hold calls in `[lo, hi]`
/// and the segments beside those folders (at the prefix or a host's level); `None` for a
/// prefix laid out otherwise, which is then listed whole.
async fn day_folders(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    lo: i64,
    hi: i64,
    text: &str,
) -> Result<Option<(Vec<ObjectMeta>, Vec<Path>)>, CaptureError> {
    let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
    let top = store
        .list_with_delimiter(prefix)
        .await
        .map_err(|e| failed(text, e))?;
    let named = |folders: &[Path], key: &str| {
        !folders.is_empty()
            && folders.iter().all(|f| {
                f.filename()
                    .is_some_and(|n| n.starts_with(key) && n.len() > key.len())
            })
    };
    let segments = |metas: Vec<ObjectMeta>| metas.into_iter().filter(is_segment);
    let mut beside: Vec<ObjectMeta> = segments(top.objects).collect();
    let date_folders = if named(&top.common_prefixes, "host=") {
        let mut dates = Vec::new();
        let mut hosts = futures::stream::iter(
            top.common_prefixes
                .iter()
                .map(|host| store.list_with_delimiter(Some(host))),
        )
        .buffered(LISTS_AT_ONCE);
        while let Some(host) = hosts.next().await {
            let host = host.map_err(|e| failed(text, e))?;
            if !host.common_prefixes.is_empty() && !named(&host.common_prefixes, "date=") {
                return Ok(None);
            }
            beside.extend(segments(host.objects));
            dates.extend(host.common_prefixes);
        }
        dates
    } else if named(&top.common_prefixes, "date=") {
        top.common_prefixes
    } else {
        return Ok(None);
    };
    let days = fantrace_storage::layout::days_for(lo, hi);
    let chosen = date_folders
        .into_iter()
        .filter(|f| {
            f.filename()
                .and_then(|n| n.strip_prefix("date="))
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                // A folder not named by a date is listed: it may hold anything.
                .is_none_or(|d| days.contains(&d))
        })
        .collect();
    Ok(Some((beside, chosen)))
}

fn is_segment(meta: &ObjectMeta) -> bool {
    let name = meta.location.filename().unwrap_or("");
    name.ends_with(".parquet") && !name.starts_with('.')
}

/// Every `*.parquet` object under `prefix`, sorted by key, and the index chunks there;
/// dot-files (a recorder's unfinished segments) are left out as they are in a local directory.
async fn list_segments(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    text: &str,
) -> Result<(Vec<ObjectMeta>, Vec<ObjectMeta>), CaptureError> {
    let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
    let all: Vec<ObjectMeta> = store
        .list(prefix)
        .try_collect()
        .await
        .map_err(|e| failed(text, e))?;
    let chunks = all
        .iter()
        .filter(|m| fantrace_storage::layout::is_index_chunk(&m.location))
        .cloned()
        .collect();
    let mut metas: Vec<ObjectMeta> = all.into_iter().filter(is_segment).collect();
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((metas, chunks))
}

/// The index lines the chunks hold, by the key of the segment each describes (in the chunk's
/// folder). A chunk that cannot be read or parsed only costs speed: its segments' footers are
/// read instead.
async fn read_chunks(
    store: &Arc<dyn ObjectStore>,
    chunks: &[ObjectMeta],
    text: &str,
) -> Result<HashMap<Path, IndexLine>, CaptureError> {
    let mut out = HashMap::new();
    let mut read = futures::stream::iter(chunks.iter().map(|meta| async move {
        // When the listing says it was written: a GET's Last-Modified is in whole seconds,
        // which would put the chunk before segments shipped in the same second.
        let written: std::time::SystemTime = meta.last_modified.into();
        let bytes = store.get(&meta.location).await?.bytes().await?;
        Ok::<_, object_store::Error>((&meta.location, written, bytes))
    }))
    .buffered(LISTS_AT_ONCE);
    while let Some(result) = read.next().await {
        let (key, written, bytes) = match result {
            Ok(read) => read,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(failed(text, e)),
        };
        let folder = fantrace_storage::layout::folder_of(key);
        let Ok(entries) = fantrace_schema::index::parse(&bytes[..]) else {
            continue;
        };
        for (name, entry) in entries {
            out.insert(
                folder.clone().join(name.as_str()),
                IndexLine { entry, written },
            );
        }
    }
    Ok(out)
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
