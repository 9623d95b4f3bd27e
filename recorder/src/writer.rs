//! The writer thread: receives sorted batches and owns the open segment, so that zstd
//! compression and fsync never stall the drain loop.
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::Context as _;
use arrow::array::RecordBatch;
use fantrace_schema::arrow::events_schema;
use fantrace_schema::metadata as keys;
use fantrace_schema::record::LossCause;

use crate::host::HostInfo;
use crate::probe::LossCounts;
use crate::segment::Segment;

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
}

#[derive(Debug, Default)]
pub struct WriterSummary {
    pub segments: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
}

/// Batches waiting for the writer; bounded so a stalled disk shows up as back-pressure.
const QUEUE: usize = 64;

pub fn spawn(
    cfg: WriterConfig,
) -> anyhow::Result<(
    SyncSender<ToWriter>,
    JoinHandle<anyhow::Result<WriterSummary>>,
)> {
    let (tx, rx) = sync_channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("fantrace-writer".into())
        .spawn(move || run(cfg, rx))
        .context("starting the writer thread")?;
    Ok((tx, handle))
}

fn now_utc() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn run(cfg: WriterConfig, rx: Receiver<ToWriter>) -> anyhow::Result<WriterSummary> {
    let mut summary = WriterSummary::default();
    let started = now_utc();
    let name = format!(
        "fantrace-{}-{:06}.parquet",
        started.format("%Y%m%dT%H%M%S%.6fZ"),
        0
    );
    let mut segment = Segment::create(&cfg.dir, &name, events_schema())?;
    let (lost, stop_reason) = loop {
        match rx.recv() {
            Ok(ToWriter::Batch(batch)) => segment.write(&batch)?,
            Ok(ToWriter::Finish { lost, stop_reason }) => break (lost, stop_reason),
            // The drain side died without saying why; close what we have.
            Err(_) => {
                break (
                    LossCounts::default(),
                    "error: recorder stopped unexpectedly".into(),
                );
            }
        }
    };
    let rows = segment.rows();
    let mut meta = vec![
        (
            keys::SCHEMA_VERSION.to_string(),
            keys::CURRENT_SCHEMA_VERSION.to_string(),
        ),
        (
            keys::RECORDER_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (keys::HOSTNAME.to_string(), cfg.host.hostname.clone()),
        (
            keys::KERNEL_RELEASE.to_string(),
            cfg.host.kernel_release.clone(),
        ),
        (keys::BOOT_ID.to_string(), cfg.host.boot_id.clone()),
        (
            keys::CLOCK_OFFSET_NS.to_string(),
            cfg.clock_offset_ns.to_string(),
        ),
        (keys::SEGMENT_START.to_string(), started.to_rfc3339()),
        (keys::SEGMENT_END.to_string(), now_utc().to_rfc3339()),
        (keys::EVENTS_WRITTEN.to_string(), rows.to_string()),
        (keys::EVENTS_LOST.to_string(), lost.total().to_string()),
        (keys::COMMAND_LINE.to_string(), cfg.command_line.clone()),
        (keys::STOP_REASON.to_string(), stop_reason),
    ];
    for cause in LossCause::ALL {
        meta.push((
            format!("{}{}", keys::EVENTS_LOST_PREFIX, cause.name()),
            lost.0[cause as usize].to_string(),
        ));
    }
    let path = segment.finish(meta)?;
    summary.bytes += std::fs::metadata(&path)
        .with_context(|| format!("reading size of {}", path.display()))?
        .len();
    summary.rows += rows;
    summary.segments.push(path);
    Ok(summary)
}
