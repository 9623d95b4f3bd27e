//! Shipping finished segments to object storage (`--upload s3://bucket/prefix`). A segment
//! leaves the capture directory only once the store holds exactly its bytes (size, and the
//! ETag S3-compatible servers compute from what they stored); until then it waits on local
//! disk, through outages and refused credentials, and retries back off. What is still waiting
//! when the recorder stops is shipped by the next run with the same --output and --upload.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use fantrace_schema::metadata as keys;
use fantrace_storage::layout::folder_of;
use fantrace_storage::{HiveKey, Location, hive_key, upload_check};
use object_store::{ObjectStoreExt as _, PutPayload};

use crate::status::WriterProgress;

/// Segments larger than this go up in parts of this size (S3 allows at most 5 GiB in one PUT;
/// parts keep a retry from resending a whole large segment's worth at once).
const PART_SIZE: usize = 16 * 1024 * 1024;
/// Waits between failed attempts: doubling from the first to the last.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

pub struct UploadConfig {
    pub dir: PathBuf,
    pub location: Location,
    pub progress: Arc<WriterProgress>,
    /// How long a stopping recorder keeps trying when no segment could be shipped.
    pub patience: Duration,
}

/// What the uploader did, for the recorder's last words.
#[derive(Debug, Default)]
pub struct UploadSummary {
    pub segments: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub waiting: Vec<PathBuf>,
}

/// Starts the uploader thread. It ships every finished segment in `dir` (a backlog left by an
/// earlier run first), woken by `wake` whenever the writer finishes one, and returns once
/// `wake` is closed and nothing waits, or nothing could be shipped for `patience`.
pub fn spawn(
    cfg: UploadConfig,
    wake: Receiver<()>,
) -> anyhow::Result<std::thread::JoinHandle<UploadSummary>> {
    std::thread::Builder::new()
        .name("fantrace-upload".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("uploader: cannot start its async runtime: {e}");
                    return UploadSummary {
                        waiting: waiting_segments(&cfg.dir).unwrap_or_default(),
                        ..Default::default()
                    };
                }
            };
            runtime.block_on(run(&cfg, &wake))
        })
        .context("starting the uploader thread")
}

async fn run(cfg: &UploadConfig, wake: &Receiver<()>) -> UploadSummary {
    let mut summary = UploadSummary::default();
    let mut retry = FIRST_RETRY;
    let mut stop_by: Option<Instant> = None;
    let started = Instant::now();
    let mut chunk = IndexChunk::default();
    loop {
        let waiting = match waiting_segments(&cfg.dir) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("uploader: {e:#}");
                Vec::new()
            }
        };
        publish_backlog(&cfg.progress, &waiting);
        let mut failed = false;
        for path in &waiting {
            match ship(cfg, path).await {
                Ok((key, bytes, entry)) => {
                    chunk.add(cfg, &key, entry).await;
                    summary.segments += 1;
                    summary.bytes += bytes;
                    cfg.progress.uploaded.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(segment = %path.display(), key = %cfg.location.url_of(&key), "uploaded");
                    retry = FIRST_RETRY;
                    // Stopping waits for a store that makes progress, however long the backlog.
                    if let Some(deadline) = stop_by.as_mut() {
                        *deadline = Instant::now() + cfg.patience;
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "uploading {} to {}: {e:#}; it stays in {} and is tried again in {} s",
                        path.display(),
                        cfg.location.url,
                        cfg.dir.display(),
                        retry.as_secs()
                    );
                    failed = true;
                    break;
                }
            }
            publish_backlog(
                &cfg.progress,
                &waiting_segments(&cfg.dir).unwrap_or_default(),
            );
        }
        let pending = waiting_segments(&cfg.dir).unwrap_or_default();
        publish_backlog(&cfg.progress, &pending);
        if let Some(deadline) = stop_by
            && (pending.is_empty() || Instant::now() >= deadline)
        {
            summary.waiting = pending;
            break;
        }
        let wait = if failed {
            let w = retry;
            retry = (retry * 2).min(LAST_RETRY);
            w
        } else {
            Duration::from_secs(1)
        };
        let mut until = Instant::now() + wait;
        if let Some(deadline) = stop_by {
            until = until.min(deadline);
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match wake.recv_timeout(left) {
                // A new segment: ship it now, unless backing off after a failure (it then
                // waits with the others).
                Ok(()) if !failed => break,
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    // The writer is done. Stop once nothing waits, or the store made no
                    // progress for the patience; until then keep the back-off.
                    let deadline = *stop_by.get_or_insert_with(|| Instant::now() + cfg.patience);
                    if failed {
                        // The back-off, but never past the patience.
                        let resume = until.min(deadline);
                        std::thread::sleep(resume.saturating_duration_since(Instant::now()));
                    }
                    break;
                }
            }
        }
    }
    chunk.flush(cfg).await;
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}

/// The index lines of the segments shipped lately to one folder, kept there as an object of
/// their own (see [`fantrace_storage::index_chunk_key`]), rewritten after each segment: an
/// analyzer reading a year of segments learns their time ranges from a GET per chunk
/// instead of a GET per footer. A chunk holds at most [`CHUNK_SEGMENTS`] segments' lines (an
/// hour at the default rotation), so rewriting it stays cheap. Losing a chunk (the store
/// refused it, the recorder died) costs readers only speed: a segment without a line is read
/// by its footer.
#[derive(Default)]
struct IndexChunk {
    key: Option<object_store::path::Path>,
    entries: Vec<fantrace_schema::index::Entry>,
    /// Whether the store holds the chunk as `entries` are.
    stored: bool,
}

const CHUNK_SEGMENTS: usize = 60;

impl IndexChunk {
    async fn add(
        &mut self,
        cfg: &UploadConfig,
        segment_key: &object_store::path::Path,
        entry: fantrace_schema::index::Entry,
    ) {
        let key = fantrace_storage::index_chunk_key(segment_key, &entry.name);
        let same_folder = self
            .key
            .as_ref()
            .is_some_and(|k| folder_of(k) == folder_of(&key));
        if !same_folder || self.entries.len() >= CHUNK_SEGMENTS {
            self.flush(cfg).await;
            self.key = Some(key);
            self.entries.clear();
        }
        self.entries.push(entry);
        self.stored = false;
        self.flush(cfg).await;
    }

    /// Writes the chunk if the store does not hold it as it is; a failure is retried with the
    /// next segment or at the end.
    async fn flush(&mut self, cfg: &UploadConfig) {
        let Some(key) = &self.key else { return };
        if self.stored || self.entries.is_empty() {
            return;
        }
        let lines = fantrace_schema::index::to_lines(&self.entries);
        match cfg
            .location
            .store
            .put(key, PutPayload::from_bytes(Bytes::from(lines)))
            .await
        {
            Ok(_) => self.stored = true,
            Err(e) => tracing::warn!(
                "uploader: writing the index chunk {key}: {}; readers open those segments' \
                 footers instead until it is written",
                explain(e)
            ),
        }
    }
}

fn publish_backlog(progress: &WriterProgress, waiting: &[PathBuf]) {
    let bytes: u64 = waiting
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress
        .backlog_segments
        .store(waiting.len() as u64, Ordering::Relaxed);
    progress.backlog_bytes.store(bytes, Ordering::Relaxed);
}

/// The finished segments in `dir`, oldest first: with --upload, every one there still waits.
pub fn waiting_segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    crate::writer::finished_segments(dir)
}

/// Uploads one segment, confirms the store holds its bytes, then removes the local file.
/// Returns its key, size and index line.
async fn ship(
    cfg: &UploadConfig,
    path: &Path,
) -> anyhow::Result<(object_store::path::Path, u64, fantrace_schema::index::Entry)> {
    let bytes =
        Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    let entry = fantrace_schema::index::Entry::of_file(path)?;
    let (hostname, date) = origin(path, &entry)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{}: no file name", path.display()))?;
    let key = hive_key(
        &cfg.location.prefix,
        &HiveKey {
            hostname: &hostname,
            date,
            file_name: &file_name,
        },
    );
    let store = &cfg.location.store;
    if bytes.len() <= PART_SIZE {
        store
            .put(&key, PutPayload::from_bytes(bytes.clone()))
            .await
            .map_err(explain)?;
    } else {
        let mut upload = store.put_multipart(&key).await.map_err(explain)?;
        let mut sent = Ok(());
        for start in (0..bytes.len()).step_by(PART_SIZE) {
            let part = bytes.slice(start..(start + PART_SIZE).min(bytes.len()));
            if let Err(e) = upload.put_part(PutPayload::from_bytes(part)).await {
                sent = Err(e);
                break;
            }
        }
        match sent {
            Ok(()) => {
                upload.complete().await.map_err(explain)?;
            }
            Err(e) => {
                // Parts the server already holds are freed now rather than by its lifecycle.
                let _ = upload.abort().await;
                return Err(explain(e));
            }
        }
    }
    confirm(cfg, &key, &bytes).await?;
    std::fs::remove_file(path)
        .with_context(|| format!("removing {} after its upload", path.display()))?;
    if let Ok(dir) = std::fs::File::open(&cfg.dir) {
        // The removal must not be undone by a crash: a segment that comes back would only be
        // uploaded again (same key, same bytes), but it would count in the backlog.
        let _ = dir.sync_all();
    }
    Ok((key, bytes.len() as u64, entry))
}

/// Whether the stored object is these bytes: its size, and its ETag against the one computed
/// here. A server whose ETags are not MD5s (some encrypt objects) is read back instead.
async fn confirm(
    cfg: &UploadConfig,
    key: &object_store::path::Path,
    bytes: &Bytes,
) -> anyhow::Result<()> {
    let store = &cfg.location.store;
    let head = store.head(key).await.map_err(explain)?;
    if head.size != bytes.len() as u64 {
        anyhow::bail!(
            "the store holds {} bytes under {key}, not the {} sent",
            head.size,
            bytes.len()
        );
    }
    let expected = upload_check::expected_etag(bytes, PART_SIZE);
    match head.e_tag.as_deref() {
        Some(etag) if upload_check::etag_matches(etag, &expected) => Ok(()),
        Some(etag) if looks_like_md5(etag) => anyhow::bail!(
            "the store's checksum of {key} ({etag}) is not that of the bytes sent ({expected})"
        ),
        _ => {
            let stored = store
                .get(key)
                .await
                .map_err(explain)?
                .bytes()
                .await
                .map_err(explain)?;
            if stored != *bytes {
                anyhow::bail!("the bytes read back from {key} differ from those sent");
            }
            Ok(())
        }
    }
}

fn looks_like_md5(etag: &str) -> bool {
    let hex = etag.trim_matches('"');
    let digest = hex.split('-').next().unwrap_or("");
    digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The host and UTC day a segment's key is made of, from its own metadata (as its index line
/// keeps it), so that a backlog left by an earlier run (or another hostname) lands where its
/// rows say it belongs.
fn origin(
    path: &Path,
    entry: &fantrace_schema::index::Entry,
) -> anyhow::Result<(String, chrono::NaiveDate)> {
    let get = |key: &str| entry.metadata.get(key);
    let hostname = get(keys::HOSTNAME)
        .map_or("unknown", String::as_str)
        .to_string();
    let date = get(keys::SEGMENT_START)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc).date_naive())
        .with_context(|| {
            format!(
                "{}: no {} in its metadata",
                path.display(),
                keys::SEGMENT_START
            )
        })?;
    Ok((hostname, date))
}

/// An object store error with what to do about it.
fn explain(e: object_store::Error) -> anyhow::Error {
    let hint = match &e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            "the store refused the credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
             (or the GOOGLE_/AZURE_ ones) and the key's rights on the bucket"
        }
        object_store::Error::NotFound { .. } => {
            "the bucket or prefix does not exist: create the bucket, or fix --upload"
        }
        _ => "the store could not be reached or failed: check the network and --endpoint",
    };
    anyhow::anyhow!("{e} ({hint})")
}
