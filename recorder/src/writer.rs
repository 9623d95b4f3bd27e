//! Write and rotate: the writer thread receives sorted batches, owns the open segment, rotates
//! it by size or age and prunes old segments, so that zstd and fsync never stall the drain loop.
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arrow::array::AsArray as _;
use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::TimestampNanosecondType;
use fantrace_schema::arrow::events_schema;
use fantrace_schema::metadata as keys;
use fantrace_schema::record::LossCause;

use crate::attach::Attachment;
use crate::host::HostInfo;
use crate::probe::LossCounts;
use crate::segment::Segment;
use crate::status::WriterProgress;

pub enum ToWriter {
    Batch(RecordBatch),
    /// Stop: close the open segment with the final loss counts and why recording stopped.
    Finish {
        lost: LossCounts,
        stop_reason: String,
    },
}

pub struct WriterConfig {
    pub dir: PathBuf,
    pub host: HostInfo,
    pub clock_offset_ns: i64,
    pub command_line: String,
    pub rotate_size: u64,
    pub rotate_interval: Duration,
    /// Finished segments to keep (0: all).
    pub keep: usize,
    /// The probe's loss counters as last sampled by the drain loop.
    pub lost: Arc<Mutex<LossCounts>>,
    pub progress: Arc<WriterProgress>,
    pub on_disk_full: OnDiskFull,
    /// How the probe is attached, recorded in every segment.
    pub attachment: Attachment,
    /// Where the facts about the kernel's groups and marks come from.
    pub kernel_state_sources: String,
    /// With --upload: told of every finished segment. Finished segments then wait for the
    /// uploader, which removes them, and `--keep` never removes one.
    pub upload_wake: Option<std::sync::mpsc::Sender<()>>,
}

/// What the recorder does when the capture's file system is full (ENOSPC, EDQUOT, or EFBIG
/// under a file-size limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnDiskFull {
    /// Stop with an error naming the path; finished segments stay intact.
    Stop,
    /// Keep running: drop the open segment and the calls that follow, count them
    /// (`fantrace.events_lost.disk_full`), and resume in a new segment once space is back.
    Drop,
}

/// How often a new segment is tried while the disk is full.
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);

/// How long a stopping recorder keeps trying to write its last segment on a full disk.
const FINAL_SEGMENT_PATIENCE: Duration = Duration::from_secs(5);

fn is_disk_full(err: &anyhow::Error) -> bool {
    const CODES: [i32; 3] = [libc::ENOSPC, libc::EDQUOT, libc::EFBIG];
    err.chain().any(|e| {
        // parquet wraps the io::Error in its own type without exposing it as a source, so
        // the errno is also looked for in the message.
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|c| CODES.contains(&c))
            || CODES
                .iter()
                .any(|c| e.to_string().contains(&format!("(os error {c})")))
    })
}

#[derive(Debug, Default)]
pub struct WriterSummary {
    pub segments: u64,
    pub rows: u64,
    pub bytes: u64,
    pub removed: u64,
    /// Calls dropped because the disk was full (`--on-disk-full=drop`).
    pub dropped_disk_full: u64,
}

/// Encoded bytes the open row group may buffer before it is cut short of
/// [`ROW_GROUP_ROWS`](fantrace_schema::layout::ROW_GROUP_ROWS):
/// long paths make rows large.
const ROW_GROUP_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Batches waiting for the writer; bounded so a stalled disk or a writer behind a storm shows
/// up as back-pressure (the ring fills and the probe counts the loss), never as unbounded memory.
const QUEUE: usize = 8;

/// The running writer: where to send batches, a signal that fires when it stops (so the drain
/// loop stops too when a write fails, even while no events arrive), and its result.
pub struct WriterHandle {
    pub tx: SyncSender<ToWriter>,
    pub stopped: tokio::sync::oneshot::Receiver<()>,
    pub thread: JoinHandle<anyhow::Result<WriterSummary>>,
}

pub fn spawn(cfg: WriterConfig) -> anyhow::Result<WriterHandle> {
    crate::segment::create_in_progress_dir(&cfg.dir)?;
    let (tx, rx) = sync_channel(QUEUE);
    let (stopped_tx, stopped) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("fantrace-writer".into())
        .spawn(move || {
            let result = Writer::new(cfg).run(rx);
            let _ = stopped_tx.send(());
            result
        })
        .context("starting the writer thread")?;
    Ok(WriterHandle {
        tx,
        stopped,
        thread,
    })
}

struct Open {
    segment: Segment,
    /// The newest rows, held back from the Parquet writer (see [`HOLD_BACK_NS`]): runs in
    /// time order, each starting no earlier than the one before ends.
    held: Vec<RecordBatch>,
    started: chrono::DateTime<chrono::Utc>,
    opened: Instant,
    lost_at_open: LossCounts,
}

struct Writer {
    cfg: WriterConfig,
    /// This run's id: its segments form one chain (`fantrace_schema::integrity`).
    recording_id: String,
    /// The place of the next segment to finish in the chain; a segment abandoned on a full
    /// disk does not take one, so the chain has no hole where calls were only dropped.
    seq: u64,
    /// SHA-256 of the last finished segment, named by the next one.
    prev_sha256: String,
    summary: WriterSummary,
    /// Temporary file of the open segment, removed if the segment is abandoned.
    current_tmp: Option<PathBuf>,
    /// Rows given to the open segment so far: what abandoning it would drop.
    at_risk_rows: u64,
    /// Disk-full drops not yet reported in a closed segment's metadata.
    dropped_unreported: u64,
}

impl Writer {
    fn new(cfg: WriterConfig) -> Writer {
        Writer {
            cfg,
            recording_id: uuid::Uuid::new_v4().to_string(),
            seq: 0,
            prev_sha256: String::new(),
            summary: WriterSummary::default(),
            current_tmp: None,
            at_risk_rows: 0,
            dropped_unreported: 0,
        }
    }

    /// A write error: with `--on-disk-full=drop` and a full disk, abandon the open segment and
    /// count its rows as dropped; otherwise it is the recorder's error.
    fn recover(&mut self, err: anyhow::Error) -> anyhow::Result<()> {
        if self.cfg.on_disk_full != OnDiskFull::Drop || !is_disk_full(&err) {
            return Err(err);
        }
        if let Some(tmp) = self.current_tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
        self.drop_rows(self.at_risk_rows);
        self.at_risk_rows = 0;
        tracing::warn!("{err:#}; dropping calls until space is back (--on-disk-full=drop)");
        Ok(())
    }

    fn drop_rows(&mut self, rows: u64) {
        self.summary.dropped_disk_full += rows;
        self.dropped_unreported += rows;
    }

    fn add_batch(&mut self, open: &mut Open, batch: RecordBatch) -> anyhow::Result<()> {
        self.at_risk_rows += batch.num_rows() as u64;
        write_rows(open, Some(batch))?;
        // Let size rotation and the memory bound see the buffered row group, not only rows.
        let cap = ROW_GROUP_MAX_BYTES.min(self.cfg.rotate_size as usize);
        if open.segment.in_progress_size() >= cap as u64 {
            open.segment.flush_row_group()?;
        }
        Ok(())
    }

    fn lost_now(&self) -> LossCounts {
        *self.cfg.lost.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&mut self, lost_at_open: LossCounts) -> anyhow::Result<Open> {
        let started = chrono::Utc::now();
        // Names sort by time: the analyzer and `--keep` rely on that.
        let name = format!(
            "fantrace-{}-{:06}.parquet",
            started.format("%Y%m%dT%H%M%S%.6fZ"),
            self.seq
        );
        self.cfg.progress.set_current(&name);
        let segment = Segment::create(&self.cfg.dir, &name, events_schema())?;
        self.current_tmp = Some(segment.tmp_path().to_path_buf());
        self.at_risk_rows = 0;
        Ok(Open {
            segment,
            held: Vec::new(),
            started,
            opened: Instant::now(),
            lost_at_open,
        })
    }

    fn run(mut self, rx: Receiver<ToWriter>) -> anyhow::Result<WriterSummary> {
        // `None` while the disk is full and calls are being dropped.
        let mut open = Some(self.open(LossCounts::default())?);
        let mut retry_at = Instant::now();
        loop {
            let deadline = open
                .as_ref()
                .map_or(retry_at, |o| o.opened + self.cfg.rotate_interval);
            let msg = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            if open.is_none() && Instant::now() >= retry_at {
                match self.open(self.lost_now()) {
                    Ok(o) => {
                        tracing::warn!(
                            "retrying in a new segment after dropping {} call(s)",
                            self.dropped_unreported
                        );
                        open = Some(o);
                    }
                    Err(e) => {
                        self.recover(e)?;
                        retry_at = Instant::now() + DISK_FULL_RETRY;
                    }
                }
            }
            match msg {
                Ok(ToWriter::Batch(batch)) => match open.take() {
                    None => self.drop_rows(batch.num_rows() as u64),
                    Some(mut o) => {
                        let written = self.add_batch(&mut o, batch);
                        // Time is checked here as well as on an idle timeout: under a steady
                        // stream of batches the receive never times out, and a segment must
                        // still end on time, so that a crash loses no more than it.
                        let result = match written {
                            Ok(()) if o.segment.size() >= self.cfg.rotate_size => {
                                self.rotate(o, "rotated: size").map(Some)
                            }
                            Ok(()) if o.opened.elapsed() >= self.cfg.rotate_interval => {
                                self.rotate(o, "rotated: interval").map(Some)
                            }
                            Ok(()) => Ok(Some(o)),
                            Err(e) => Err(e),
                        };
                        open = self.settle(result, &mut retry_at)?;
                    }
                },
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(o) = open.take() {
                        let result = self.rotate(o, "rotated: interval").map(Some);
                        open = self.settle(result, &mut retry_at)?;
                    }
                }
                Ok(ToWriter::Finish { lost, stop_reason }) => {
                    self.finish(open.take(), lost, stop_reason)?;
                    break;
                }
                // The drain side died without saying why; close what we have.
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(o) = open.take() {
                        let lost = self.lost_now();
                        self.close(o, lost, "error: recorder stopped unexpectedly".into())?;
                    }
                    break;
                }
            }
        }
        Ok(self.summary)
    }

    /// Closes the last segment with the stop reason. With `--on-disk-full=drop` and the disk
    /// still full, the open segment's rows are dropped (and counted) and an empty last segment
    /// carrying every count and the stop reason is tried for a while: a few KiB the disk may
    /// have once the abandoned segment is gone.
    fn finish(
        &mut self,
        open: Option<Open>,
        lost: LossCounts,
        stop_reason: String,
    ) -> anyhow::Result<()> {
        let mut open = open;
        let deadline = Instant::now() + FINAL_SEGMENT_PATIENCE;
        loop {
            let attempt = match open.take() {
                Some(o) => self.close(o, lost, stop_reason.clone()),
                None => self
                    .open(lost)
                    .and_then(|o| self.close(o, lost, stop_reason.clone())),
            };
            match attempt {
                Ok(()) => return self.prune(),
                Err(e) if self.cfg.on_disk_full == OnDiskFull::Drop && is_disk_full(&e) => {
                    self.recover(e)?;
                    if Instant::now() >= deadline {
                        bail!(
                            "the disk is still full: the last segment, which would record the \
                             stop reason and {} call(s) dropped since the last finished \
                             segment, cannot be written",
                            self.dropped_unreported
                        );
                    }
                    std::thread::sleep(DISK_FULL_RETRY / 5);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The outcome of a write step: the segment to go on with, or (disk full, dropping) none.
    fn settle(
        &mut self,
        result: anyhow::Result<Option<Open>>,
        retry_at: &mut Instant,
    ) -> anyhow::Result<Option<Open>> {
        match result {
            Ok(open) => Ok(open),
            Err(e) => {
                self.recover(e)?;
                *retry_at = Instant::now() + DISK_FULL_RETRY;
                Ok(None)
            }
        }
    }

    fn rotate(&mut self, open: Open, why: &str) -> anyhow::Result<Open> {
        let lost = self.lost_now();
        self.close(open, lost, why.to_string())?;
        self.prune()?;
        self.open(lost)
    }

    fn close(
        &mut self,
        mut open: Open,
        lost_total: LossCounts,
        stop_reason: String,
    ) -> anyhow::Result<()> {
        write_rows(&mut open, None)?;
        let lost = lost_total.since(&open.lost_at_open);
        let dropped = self.dropped_unreported;
        let rows = open.segment.rows();
        // The window covers the rows: a call may have entered before the segment opened (it
        // was drained, or held back, after) or be stamped after it closes.
        let closed = chrono::Utc::now();
        let rfc3339 = |ns: i64| {
            chrono::DateTime::from_timestamp_nanos(ns)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        };
        let times = open.segment.time_range();
        let start = times.map_or(open.started, |(lo, _)| {
            open.started.min(chrono::DateTime::from_timestamp_nanos(lo))
        });
        let end = times.map_or(closed, |(_, hi)| {
            closed.max(chrono::DateTime::from_timestamp_nanos(hi))
        });
        let cfg = &self.cfg;
        let mut meta = vec![
            (
                keys::SCHEMA_VERSION,
                keys::CURRENT_SCHEMA_VERSION.to_string(),
            ),
            (
                keys::RECORDER_VERSION,
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (keys::HOSTNAME, cfg.host.hostname.clone()),
            (keys::KERNEL_RELEASE, cfg.host.kernel_release.clone()),
            (keys::BOOT_ID, cfg.host.boot_id.clone()),
            (keys::CLOCK_OFFSET_NS, cfg.clock_offset_ns.to_string()),
            (keys::SEGMENT_START, start.to_rfc3339()),
            (keys::SEGMENT_END, end.to_rfc3339()),
            (keys::RECORDING_ID, self.recording_id.clone()),
            (keys::SEGMENT_SEQ, self.seq.to_string()),
            (keys::PREV_SEGMENT_SHA256, self.prev_sha256.clone()),
            (keys::EVENTS_WRITTEN, rows.to_string()),
            (keys::EVENTS_LOST, (lost.total() + dropped).to_string()),
            (keys::EVENTS_LOST_DISK_FULL, dropped.to_string()),
            (keys::COMMAND_LINE, cfg.command_line.clone()),
            (keys::ATTACH_MODE, cfg.attachment.mode.to_string()),
            (keys::ATTACH_REASON, cfg.attachment.reason.clone()),
            (keys::ATTACH_POINTS, cfg.attachment.points.join(",")),
            (keys::IA32_COVERED, cfg.attachment.ia32.metadata_value()),
            (keys::KERNEL_STATE_SOURCES, cfg.kernel_state_sources.clone()),
            (keys::STOP_REASON, stop_reason),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<Vec<_>>();
        for cause in LossCause::ALL {
            meta.push((
                format!("{}{}", keys::EVENTS_LOST_PREFIX, cause.name()),
                lost.0[cause as usize].to_string(),
            ));
        }
        if let Some((lo, hi)) = times {
            meta.push((keys::TIME_MIN.to_string(), rfc3339(lo)));
            meta.push((keys::TIME_MAX.to_string(), rfc3339(hi)));
        }
        if cfg.upload_wake.is_some() {
            let progress = &cfg.progress;
            for (key, value) in [
                (keys::UPLOAD_BACKLOG_SEGMENTS, &progress.backlog_segments),
                (keys::UPLOAD_BACKLOG_BYTES, &progress.backlog_bytes),
            ] {
                meta.push((
                    key.to_string(),
                    value.load(std::sync::atomic::Ordering::Relaxed).to_string(),
                ));
            }
        }
        let finished = open.segment.finish(meta)?;
        self.seq += 1;
        self.prev_sha256 = finished.sealed.file_sha256;
        let path = finished.path;
        // The index lets a query skip this segment without opening it. A segment without its
        // line is still read (by its footer, only slower), so a failure here is not fatal.
        if let Err(e) = fantrace_schema::index::add(&path) {
            tracing::warn!("segment index not updated: {e}; queries open this segment instead");
        }
        if let Some(wake) = &self.cfg.upload_wake {
            // The uploader may be gone (it gave up with an error it logged); the segment then
            // waits here for the next run.
            let _ = wake.send(());
        }
        self.current_tmp = None;
        self.at_risk_rows = 0;
        self.dropped_unreported = 0;
        self.summary.bytes += finished.sealed.file_bytes;
        self.summary.rows += rows;
        self.summary.segments += 1;
        if self.summary.segments.is_multiple_of(INDEX_COMPACT_EVERY) {
            // Lines of segments removed since (--keep, uploads) are dropped now and then, so
            // the index grows with what the directory holds, not with what it ever held.
            if let Err(e) = fantrace_schema::index::compact(&self.cfg.dir) {
                tracing::warn!("segment index not compacted: {e}");
            }
        }
        let progress = &self.cfg.progress;
        progress
            .bytes
            .store(self.summary.bytes, std::sync::atomic::Ordering::Relaxed);
        progress
            .segments
            .store(self.summary.segments, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(segment = %path.display(), rows, "segment closed");
        Ok(())
    }

    /// Removes the oldest finished segments beyond `keep`. With --upload every finished
    /// segment in the directory is one not yet uploaded, and none is removed: the uploader
    /// removes each once the store holds it.
    fn prune(&mut self) -> anyhow::Result<()> {
        if self.cfg.keep == 0 {
            return Ok(());
        }
        if self.cfg.upload_wake.is_some() {
            let waiting = finished_segments(&self.cfg.dir)?.len();
            if waiting > self.cfg.keep {
                tracing::warn!(
                    "{waiting} segments wait for upload in {}, more than --keep {}: none is \
                     removed before it is uploaded",
                    self.cfg.dir.display(),
                    self.cfg.keep
                );
            }
            return Ok(());
        }
        let mut finished = finished_segments(&self.cfg.dir)?;
        while finished.len() > self.cfg.keep {
            let oldest = finished.remove(0);
            std::fs::remove_file(&oldest)
                .with_context(|| format!("removing old segment {} (--keep)", oldest.display()))?;
            self.summary.removed += 1;
            tracing::info!(segment = %oldest.display(), "removed old segment (--keep)");
        }
        Ok(())
    }
}

/// Segments closed between two compactions of the segment index (about 17 hours at the
/// default rotation): each reads the index and checks each line's segment is still there.
const INDEX_COMPACT_EVERY: u64 = 1024;

/// Rows newer than this (by entry time) than the newest row seen are held back from the
/// Parquet writer and merged with the next batch: records arrive in exit order, so a call still
/// inside the kernel may have entered before rows already received.
const HOLD_BACK_NS: i64 = 50_000_000;

/// At most this many rows are held back. In a storm 50 ms is some 80,000 calls, and holding
/// (and re-sorting) them all cost more memory and copying than the rest of the writer; a call
/// that spends longer inside the kernel than these calls take (5 ms at 1.6 M calls/s) may then
/// land out of time order, which queries do not depend on (`ORDER BY time` sorts anyway).
const HOLD_BACK_MAX_ROWS: usize = 8_192;

/// Hands the rows of `batch` and the held ones to the Parquet writer in time order, except
/// the newest, which stay held; the Parquet writer cuts row groups of
/// [`ROW_GROUP_ROWS`](fantrace_schema::layout::ROW_GROUP_ROWS) itself. `None` writes every
/// held row and ends the row group (the segment is closing).
fn write_rows(open: &mut Open, batch: Option<RecordBatch>) -> anyhow::Result<()> {
    let all = batch.is_none();
    if let Some(batch) = batch {
        hold(&mut open.held, sorted_by_time(batch)?)?;
    }
    let held_rows: usize = open.held.iter().map(RecordBatch::num_rows).sum();
    let newest = match open.held.last() {
        Some(run) if run.num_rows() > 0 => time_column(run)?.value(run.num_rows() - 1),
        _ => i64::MIN,
    };
    let cutoff = newest.saturating_sub(HOLD_BACK_NS);
    // Rows that must be written: all of them, or those older than the cutoff, or the oldest
    // beyond the row cap.
    let mut to_write = if all {
        held_rows
    } else {
        held_rows.saturating_sub(HOLD_BACK_MAX_ROWS)
    };
    let mut kept = Vec::new();
    for run in std::mem::take(&mut open.held) {
        let rows = run.num_rows();
        let old = time_column(&run)?
            .values()
            .partition_point(|&t| t <= cutoff);
        let n = old.max(to_write.min(rows));
        if n > 0 {
            open.segment.write(&run.slice(0, n))?;
        }
        to_write = to_write.saturating_sub(n);
        if n < rows {
            kept.push(run.slice(n, rows - n));
        }
    }
    open.held = kept;
    if all {
        open.segment.flush_row_group()?;
    }
    Ok(())
}

/// Adds a time-ordered run to the held ones. A run that starts after the held rows end (one
/// calling thread, or calls that do not overlap) is kept as it is; one that interleaves with
/// them is merged by sorting everything held.
fn hold(held: &mut Vec<RecordBatch>, run: RecordBatch) -> anyhow::Result<()> {
    if run.num_rows() == 0 {
        return Ok(());
    }
    let starts = time_column(&run)?.value(0);
    let follows = match held.last() {
        Some(last) => time_column(last)?.value(last.num_rows() - 1) <= starts,
        None => true,
    };
    held.push(run);
    if !follows {
        let merged = concat_batches(&held[0].schema(), held.iter())?;
        *held = vec![sorted_by_time(merged)?];
    }
    Ok(())
}

fn time_column(batch: &RecordBatch) -> anyhow::Result<&arrow::array::TimestampNanosecondArray> {
    batch
        .column_by_name("time")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| anyhow::anyhow!("batch without a nanosecond time column"))
}

/// `batch` in time order. Rows already in order (the common case: records arrive in exit
/// order, which is entry order unless calls on different threads overlap) are not copied.
fn sorted_by_time(batch: RecordBatch) -> anyhow::Result<RecordBatch> {
    let times = time_column(&batch)?;
    if times.values().is_sorted() {
        return Ok(batch);
    }
    let order = sort_to_indices(times, None, None)?;
    Ok(take_record_batch(&batch, &order)?)
}

/// This recorder's finished segments in `dir`, oldest first.
pub fn finished_segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("listing capture directory {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("fantrace-") && name.ends_with(".parquet") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fantrace_schema::arrow::{EventBuilder, ProcessInfo};
    use fantrace_schema::record::CallRecord;

    fn batch(times: &[u64]) -> RecordBatch {
        let mut b = EventBuilder::with_capacity(times.len(), 0, Default::default());
        for &t in times {
            // SAFETY: CallRecord is plain integers; all-zero is a valid value.
            let mut ev: CallRecord = unsafe { std::mem::zeroed() };
            ev.enter_ns = t;
            ev.exit_ns = t;
            b.append(&ev, b"", 0, &ProcessInfo::default(), &Default::default());
        }
        b.finish().unwrap()
    }

    fn open(dir: &Path) -> Open {
        crate::segment::create_in_progress_dir(dir).unwrap();
        Open {
            segment: Segment::create(dir, "t.parquet", events_schema()).unwrap(),
            held: Vec::new(),
            started: chrono::Utc::now(),
            opened: Instant::now(),
            lost_at_open: LossCounts::default(),
        }
    }

    fn held_rows(open: &Open) -> usize {
        open.held.iter().map(RecordBatch::num_rows).sum()
    }

    /// The times in the finished file, in file order.
    fn written(open: Open) -> Vec<i64> {
        let path = open.segment.finish(Vec::new()).unwrap().path;
        let file = std::fs::File::open(path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        let mut out = Vec::new();
        for b in reader {
            out.extend(time_column(&b.unwrap()).unwrap().values().iter().copied());
        }
        out
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn interleaved_batches_come_out_in_time_order_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path());
        // Two threads' calls, drained in exit order: each batch is unordered against the last.
        write_rows(&mut o, Some(batch(&[10 * MS, 30 * MS, 20 * MS]))).unwrap();
        write_rows(&mut o, Some(batch(&[15 * MS, 40 * MS, 25 * MS]))).unwrap();
        assert_eq!(held_rows(&o), 6, "all within the hold-back window");
        // A row 100 ms later releases every row older than 50 ms before it.
        write_rows(&mut o, Some(batch(&[140 * MS]))).unwrap();
        assert_eq!(held_rows(&o), 1);
        write_rows(&mut o, None).unwrap();
        assert!(o.held.is_empty());
        let times = written(o);
        let ms: Vec<i64> = times.iter().map(|t| t / MS as i64).collect();
        assert_eq!(ms, [10, 15, 20, 25, 30, 40, 140]);
    }

    #[test]
    fn in_order_runs_are_held_without_merging_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path());
        // A storm: rows 1 µs apart, far more than the cap inside 50 ms.
        let mut t = MS;
        let mut total = 0;
        for _ in 0..4 {
            let times: Vec<u64> = (0..HOLD_BACK_MAX_ROWS as u64)
                .map(|i| t + i * 1_000)
                .collect();
            t += HOLD_BACK_MAX_ROWS as u64 * 1_000;
            total += times.len();
            write_rows(&mut o, Some(batch(&times))).unwrap();
            assert!(held_rows(&o) <= HOLD_BACK_MAX_ROWS);
            assert_eq!(
                o.held.len(),
                1,
                "runs that follow each other are not merged"
            );
        }
        write_rows(&mut o, None).unwrap();
        let times = written(o);
        assert_eq!(times.len(), total);
        assert!(times.is_sorted());
    }
}
