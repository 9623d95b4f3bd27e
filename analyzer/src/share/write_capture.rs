//! Writing query results as a capture that every fantrace command (and any Parquet reader)
//! opens like a recorded one: rows cast to the stored column types, cut into segments, each
//! sealed and chained to the one before exactly as the recorder does
//! (`fantrace_schema::integrity`), with the caller's metadata, and signed on request.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use arrow::array::{Array, ArrayRef, AsArray as _, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, SchemaRef, TimestampNanosecondType};
use datafusion::execution::SendableRecordBatchStream;
use fantrace_schema::arrow::events_schema;
use fantrace_schema::integrity::{SealState, SealingWriter, seal_and_close};
use fantrace_schema::metadata as keys;
use futures::StreamExt as _;
use parquet::arrow::ArrowWriter;

use crate::output::{PendingDir, PendingFile};
use crate::share::signing::Signer;
use fantrace_engine::timespec::rfc3339;

/// Where the capture goes: a directory of segments, or one segment file.
pub enum Target {
    Dir(PendingDir),
    File(PendingFile),
}

pub struct WriteOptions {
    /// Rows per segment at most (`None`: one segment).
    pub max_rows: Option<u64>,
    /// Keys every segment carries (host, kernel, provenance, ...); the writer adds the row
    /// counts, window, chain and digests.
    pub metadata: Vec<(String, String)>,
    /// Keys only the first segment carries (the loss counts of the whole export).
    pub first_only: Vec<(String, String)>,
    /// The time window the capture stands for: the first segment's window starts at `since`,
    /// the last one's ends at `until`, when given.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub signer: Option<Signer>,
    /// Names the segments: `<prefix>-<seq>.parquet`.
    pub prefix: String,
}

pub struct Written {
    pub path: PathBuf,
    pub segments: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// The stored type of every column, by the current schema.
fn stored_schema() -> SchemaRef {
    events_schema()
}

/// `batch` with each column cast to the stored type of the column of that name; `None` when
/// a stored column is missing (then the rows are not calls and cannot be a capture). A
/// missing `syscall` is taken as `fanotify_mark` when `events_only` (rows of the events view).
pub fn as_stored(batch: &RecordBatch, events_only: bool) -> anyhow::Result<Option<RecordBatch>> {
    let schema = stored_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) => c.clone(),
            None if field.name() == "syscall" && events_only => {
                let keys = arrow::array::UInt8Array::from(vec![0u8; batch.num_rows()]);
                let values = arrow::array::StringArray::from(vec!["fanotify_mark"]);
                Arc::new(arrow::array::DictionaryArray::try_new(
                    keys,
                    Arc::new(values),
                )?)
            }
            None => return Ok(None),
        };
        columns.push(cast_to(&column, field.data_type())?);
    }
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}

fn cast_to(column: &ArrayRef, to: &DataType) -> anyhow::Result<ArrayRef> {
    if column.data_type() == to {
        return Ok(column.clone());
    }
    // Views cast to dictionaries by way of plain strings.
    let column = match (column.data_type(), to) {
        (DataType::Utf8View | DataType::Dictionary(..), DataType::Dictionary(..)) => {
            arrow::compute::cast(column, &DataType::Utf8)?
        }
        _ => column.clone(),
    };
    Ok(arrow::compute::cast(&column, to)?)
}

struct Open {
    path: PathBuf,
    file: std::fs::File,
    writer: ArrowWriter<SealingWriter<std::fs::File>>,
    seal: SealState,
    rows: u64,
    times: Option<(i64, i64)>,
    hosts: BTreeSet<String>,
    boots: BTreeSet<String>,
}

fn distinct(column: &ArrayRef, into: &mut BTreeSet<String>) {
    if let Some(dict) = column.as_dictionary_opt::<Int32Type>() {
        let values = dict.values().as_string::<i32>();
        let mut used = vec![false; values.len()];
        for k in dict.keys().iter().flatten() {
            if let Some(u) = used.get_mut(k as usize) {
                *u = true;
            }
        }
        for (i, u) in used.iter().enumerate() {
            if *u && !values.is_null(i) {
                into.insert(values.value(i).to_string());
            }
        }
    }
}

pub struct CaptureWriter {
    target: Target,
    options: WriteOptions,
    recording_id: String,
    seq: u64,
    prev_sha256: String,
    open: Option<Open>,
    written: Written,
    props: parquet::file::properties::WriterProperties,
}

impl CaptureWriter {
    pub fn new(target: Target, options: WriteOptions) -> anyhow::Result<CaptureWriter> {
        let path = match &target {
            Target::Dir(d) => d.path().to_path_buf(),
            Target::File(_) => PathBuf::new(),
        };
        Ok(CaptureWriter {
            target,
            options,
            recording_id: uuid::Uuid::new_v4().to_string(),
            seq: 0,
            prev_sha256: String::new(),
            open: None,
            written: Written {
                path,
                segments: 0,
                rows: 0,
                bytes: 0,
            },
            props: fantrace_schema::layout::writer_properties(concat!(
                "fantrace-analyzer ",
                env!("CARGO_PKG_VERSION")
            ))?,
        })
    }

    fn open_segment(&mut self) -> anyhow::Result<()> {
        let (path, file) = match &self.target {
            Target::Dir(dir) => {
                let path = dir
                    .path()
                    .join(format!("{}-{:06}.parquet", self.options.prefix, self.seq));
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                (path, file)
            }
            Target::File(pending) => {
                if self.seq > 0 {
                    anyhow::bail!("a single-file capture holds one segment");
                }
                (PathBuf::new(), pending.file()?)
            }
        };
        let sink_file = file
            .try_clone()
            .context("duplicating the output descriptor")?;
        let (sink, seal) = SealingWriter::new(sink_file);
        let writer = ArrowWriter::try_new(sink, stored_schema(), Some(self.props.clone()))
            .context("starting the Parquet writer")?;
        self.open = Some(Open {
            path,
            file,
            writer,
            seal,
            rows: 0,
            times: None,
            hosts: BTreeSet::new(),
            boots: BTreeSet::new(),
        });
        Ok(())
    }

    /// Adds rows already in the stored schema ([`as_stored`]).
    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() || (self.open.is_none() && batch.num_rows() == 0) {
            let full = self
                .open
                .as_ref()
                .zip(self.options.max_rows)
                .is_some_and(|(o, max)| o.rows >= max);
            if full {
                self.close_segment(false)?;
            }
            if self.open.is_none() {
                self.open_segment()?;
            }
            let open = self.open.as_mut().context("no open segment")?;
            let room = self
                .options
                .max_rows
                .map_or(usize::MAX, |max| max.saturating_sub(open.rows) as usize);
            let n = room.min(batch.num_rows() - offset);
            let part = batch.slice(offset, n);
            if let Some(times) = part
                .column_by_name("time")
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                && let (Some(lo), Some(hi)) =
                    (arrow::compute::min(times), arrow::compute::max(times))
            {
                open.times = Some(open.times.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
            if let Some(c) = part.column_by_name("host") {
                distinct(c, &mut open.hosts);
            }
            if let Some(c) = part.column_by_name("boot_id") {
                distinct(c, &mut open.boots);
            }
            open.writer.write(&part).context("writing rows")?;
            open.rows += n as u64;
            offset += n;
            if batch.num_rows() == 0 {
                break;
            }
        }
        Ok(())
    }

    fn close_segment(&mut self, last: bool) -> anyhow::Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let first = self.seq == 0;
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let start = match (first, self.options.since, open.times) {
            (true, Some(since), _) => since,
            (_, _, Some((lo, _))) => lo,
            (_, Some(since), None) => since,
            _ => now,
        };
        let end = match (last, self.options.until, open.times) {
            (true, Some(until), _) => until,
            (_, _, Some((_, hi))) => hi,
            (_, Some(until), None) => until,
            _ => now,
        };
        let mut meta = self.options.metadata.clone();
        if first {
            meta.extend(self.options.first_only.iter().cloned());
        }
        let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
        meta.extend(
            [
                (
                    keys::SCHEMA_VERSION,
                    keys::CURRENT_SCHEMA_VERSION.to_string(),
                ),
                (keys::HOSTNAME, join(&open.hosts)),
                (keys::BOOT_ID, join(&open.boots)),
                (keys::EVENTS_WRITTEN, open.rows.to_string()),
                (keys::SEGMENT_START, rfc3339(start.min(end))),
                (keys::SEGMENT_END, rfc3339(end.max(start))),
                (keys::RECORDING_ID, self.recording_id.clone()),
                (keys::SEGMENT_SEQ, self.seq.to_string()),
                (keys::PREV_SEGMENT_SHA256, self.prev_sha256.clone()),
                (
                    keys::STOP_REASON,
                    if last {
                        "export: complete".to_string()
                    } else {
                        "export: continued".to_string()
                    },
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        if !first {
            for (k, v) in &mut meta {
                if k.starts_with(keys::EVENTS_LOST_PREFIX) || k == keys::EVENTS_LOST {
                    *v = "0".into();
                }
            }
        }
        if let Some((lo, hi)) = open.times {
            meta.push((keys::TIME_MIN.into(), rfc3339(lo)));
            meta.push((keys::TIME_MAX.into(), rfc3339(hi)));
        }
        let signer = self.options.signer.as_ref();
        let sealed = seal_and_close(open.writer, &open.seal, meta, |digest| match signer {
            Some(s) => vec![
                (keys::SIGNATURE.to_string(), s.sign(digest)),
                (keys::SIGNING_KEY.to_string(), s.public_hex()),
            ],
            None => Vec::new(),
        })
        .with_context(|| format!("writing the footer of {}", open.path.display()))?;
        open.file
            .sync_all()
            .with_context(|| format!("fsync of {}", open.path.display()))?;
        self.prev_sha256 = sealed.file_sha256;
        self.seq += 1;
        self.written.segments += 1;
        self.written.rows += sealed.rows;
        self.written.bytes += sealed.file_bytes;
        Ok(())
    }

    /// Closes the last segment (an empty capture still gets one, so it says what it covers)
    /// and moves the capture into place.
    pub fn finish(mut self) -> anyhow::Result<Written> {
        if self.open.is_none() && self.seq == 0 {
            self.open_segment()?;
        }
        self.close_segment(true)?;
        self.written.path = match self.target {
            Target::Dir(dir) => dir.commit()?,
            Target::File(file) => file.commit()?,
        };
        Ok(self.written)
    }
}

/// Streams `stream` (rows of the stored columns) into a capture.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    mut writer: CaptureWriter,
    events_only: bool,
) -> anyhow::Result<Written> {
    while let Some(batch) = stream.next().await {
        let batch = batch.context("running the export query")?;
        let stored = as_stored(&batch, events_only)?
            .context("the rows lack a stored column of the events table")?;
        writer.write(&stored)?;
    }
    writer.finish()
}

/// A file name prefix from an output path: `export` for `/x/export`, `out` for `out.parquet`.
pub fn prefix_for(dest: &Path) -> String {
    dest.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "fantrace-export".to_string())
}
