//! Write and rotate: the writer thread receives sorted batches, owns the open segment, rotates
//! it by size or age and prunes old segments, so that zstd and fsync never stall the drain loop.
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arrow::array::AsArray as _;
use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::TimestampNanosecondType;
use fantrace_schema::arrow::events_schema;
use fantrace_schema::metadata as keys;
use fantrace_schema::record::LossCause;

use crate::host::HostInfo;
use crate::probe::LossCounts;
use crate::segment::Segment;
use crate::status::WriterProgress;
use fantrace_schema::layout::ROW_GROUP_ROWS;

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

/// In-memory size of the rows held for one row group at most.
const ROW_GROUP_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Batches waiting for the writer; bounded so a stalled disk or a writer behind a storm shows
/// up as back-pressure (the ring fills and the probe counts the loss), never as unbounded memory.
const QUEUE: usize = 4;

/// The running writer: where to send batches, a signal that fires when it stops (so the drain
/// loop stops too when a write fails, even while no events arrive), and its result.
pub struct WriterHandle {
    pub tx: SyncSender<ToWriter>,
    pub stopped: tokio::sync::oneshot::Receiver<()>,
    pub thread: JoinHandle<anyhow::Result<WriterSummary>>,
}

pub fn spawn(cfg: WriterConfig) -> anyhow::Result<WriterHandle> {
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
    /// Rows of the next row group, sorted by time when it is written: records arrive in exit
    /// order per CPU, and a time-ordered row group lets queries skip by statistics.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    started: chrono::DateTime<chrono::Utc>,
    opened: Instant,
    lost_at_open: LossCounts,
}

struct Writer {
    cfg: WriterConfig,
    seq: u64,
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
            seq: 0,
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
        open.pending_rows += batch.num_rows();
        open.pending_bytes += batch.get_array_memory_size();
        open.pending.push(batch);
        // Long paths make rows large: bound the memory held and let size rotation see the
        // rows, not only the row count.
        let cap = ROW_GROUP_MAX_BYTES.min(self.cfg.rotate_size as usize);
        if open.pending_rows >= ROW_GROUP_ROWS || open.pending_bytes >= cap {
            write_row_group(open, false)?;
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
        self.seq += 1;
        self.cfg.progress.set_current(&name);
        let segment = Segment::create(&self.cfg.dir, &name, events_schema())?;
        self.current_tmp = Some(segment.tmp_path().to_path_buf());
        self.at_risk_rows = 0;
        Ok(Open {
            segment,
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
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
                        let result = match written {
                            Ok(()) if o.segment.size() >= self.cfg.rotate_size => {
                                self.rotate(o, "rotated: size").map(Some)
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
                    let o = match open.take() {
                        Some(o) => o,
                        // The last segment carries the drop count and the stop reason.
                        None => self.open(lost).context(
                            "the disk is still full: cannot write the last segment with the \
                             count of dropped calls",
                        )?,
                    };
                    self.close(o, lost, stop_reason)?;
                    self.prune()?;
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
        write_row_group(&mut open, true)?;
        let lost = lost_total.since(&open.lost_at_open);
        let dropped = self.dropped_unreported;
        let rows = open.segment.rows();
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
            (keys::SEGMENT_START, open.started.to_rfc3339()),
            (keys::SEGMENT_END, chrono::Utc::now().to_rfc3339()),
            (keys::EVENTS_WRITTEN, rows.to_string()),
            (keys::EVENTS_LOST, (lost.total() + dropped).to_string()),
            (keys::EVENTS_LOST_DISK_FULL, dropped.to_string()),
            (keys::COMMAND_LINE, cfg.command_line.clone()),
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
        let path = open.segment.finish(meta)?;
        self.current_tmp = None;
        self.at_risk_rows = 0;
        self.dropped_unreported = 0;
        self.summary.bytes += std::fs::metadata(&path)
            .with_context(|| format!("reading size of {}", path.display()))?
            .len();
        self.summary.rows += rows;
        self.summary.segments += 1;
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

    /// Removes the oldest finished segments beyond `keep`.
    fn prune(&mut self) -> anyhow::Result<()> {
        if self.cfg.keep == 0 {
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

/// Rows newer than this (by entry time) than the newest row seen are held back for the next
/// row group: records arrive in exit order, so a call still inside the kernel when a row group
/// is cut may have entered before rows already written.
const HOLD_BACK_NS: i64 = 50_000_000;

/// Writes the pending rows, sorted by time, as one row group. Unless `all`, the newest
/// [`HOLD_BACK_NS`] of rows stay pending, so that rows written across row groups stay in time
/// order; they are written anyway once four row groups' worth are held, to bound memory.
fn write_row_group(open: &mut Open, all: bool) -> anyhow::Result<()> {
    if open.pending.is_empty() {
        return Ok(());
    }
    // concat_batches copies nothing for a lone batch (arrow slices it).
    let schema = open.pending[0].schema();
    let batch = concat_batches(&schema, &open.pending)?;
    open.pending.clear();
    open.pending_rows = 0;
    open.pending_bytes = 0;
    let time = batch
        .column_by_name("time")
        .ok_or_else(|| anyhow::anyhow!("batch without a time column"))?;
    // Rows already in time order (the common case: records arrive in exit order, which is
    // entry order unless calls on different threads overlap) need no reordering copy.
    let in_order = time
        .as_primitive_opt::<TimestampNanosecondType>()
        .is_some_and(|t| t.values().is_sorted());
    let sorted = if in_order {
        batch
    } else {
        let order = sort_to_indices(time, None, None)?;
        take_record_batch(&batch, &order)?
    };
    let times = sorted
        .column_by_name("time")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| anyhow::anyhow!("time column is not a nanosecond timestamp"))?;
    let keep_from = if all || sorted.num_rows() >= 4 * ROW_GROUP_ROWS {
        sorted.num_rows()
    } else {
        let cutoff = times.value(sorted.num_rows() - 1) - HOLD_BACK_NS;
        times.values().partition_point(|&t| t <= cutoff)
    };
    if keep_from > 0 {
        open.segment.write(&sorted.slice(0, keep_from))?;
        open.segment.flush_row_group()?;
    }
    if keep_from < sorted.num_rows() {
        let held = sorted.slice(keep_from, sorted.num_rows() - keep_from);
        open.pending_rows = held.num_rows();
        open.pending_bytes = held.get_array_memory_size();
        open.pending.push(held);
    }
    Ok(())
}

/// This recorder's finished segments in `dir`, oldest first.
fn finished_segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
