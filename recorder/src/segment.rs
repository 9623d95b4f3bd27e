//! Write: one Parquet segment, written in the capture's `.in-progress/` directory under a name
//! no Parquet reader takes, sealed (`fantrace_schema::integrity`), and published into the
//! capture directory by rename only once it is complete and on disk, so no reader ever sees a
//! half-written segment.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use arrow::array::{AsArray as _, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampNanosecondType};
use fantrace_schema::integrity::{SealState, Sealed, SealingWriter, seal_and_close};
use fantrace_schema::layout;
use parquet::arrow::ArrowWriter;

/// Where segments are written until they are complete. Hidden, and its files do not end in
/// `.parquet`, so globs, directory readers (pyarrow, Spark, DuckDB, chdb) and the analyzer
/// never take a live or abandoned one.
pub const IN_PROGRESS_DIR: &str = ".in-progress";

/// Creates the capture's in-progress directory (0700) if it is missing.
pub fn create_in_progress_dir(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(IN_PROGRESS_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// A segment being written. Dropped unfinished (a write error, the disk full), it removes its
/// partial file: nothing can read it, and on a full disk it holds the space a last segment
/// needs.
pub struct Segment {
    tmp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    file: File,
    /// `None` only once `finish` has taken it to close it.
    writer: Option<ArrowWriter<SealingWriter<File>>>,
    seal: SealState,
    rows: u64,
    /// Earliest and latest `time` written, ns.
    times: Option<(i64, i64)>,
    finished: bool,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// A finished segment: where it is and how it was sealed.
pub struct Finished {
    pub path: PathBuf,
    pub sealed: Sealed,
}

impl Segment {
    /// Opens `dir/.in-progress/name.partial` (mode 0600, must not exist) for a segment to be
    /// named `dir/name`.
    pub fn create(dir: &Path, name: &str, schema: SchemaRef) -> anyhow::Result<Segment> {
        let tmp_path = dir.join(IN_PROGRESS_DIR).join(format!("{name}.partial"));
        let final_path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp_path)
            .with_context(|| format!("creating segment file {}", tmp_path.display()))?;
        let writer_file = file
            .try_clone()
            .with_context(|| format!("duplicating the descriptor of {}", tmp_path.display()))?;
        let props =
            layout::writer_properties(concat!("fantrace-recorder ", env!("CARGO_PKG_VERSION")))?;
        let (sink, seal) = SealingWriter::new(writer_file);
        let writer = ArrowWriter::try_new(sink, schema, Some(props))
            .with_context(|| format!("starting Parquet writer on {}", tmp_path.display()))?;
        Ok(Segment {
            tmp_path,
            final_path,
            dir: dir.to_path_buf(),
            file,
            writer: Some(writer),
            seal,
            rows: 0,
            times: None,
            finished: false,
        })
    }

    fn writer(&mut self) -> anyhow::Result<&mut ArrowWriter<SealingWriter<File>>> {
        self.writer
            .as_mut()
            .context("writing to a segment that is already finished")
    }

    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let path = self.tmp_path.display().to_string();
        self.writer()?
            .write(batch)
            .with_context(|| format!("writing to segment {path}"))?;
        self.rows += batch.num_rows() as u64;
        if let Some(times) = batch
            .column_by_name("time")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            && let (Some(lo), Some(hi)) = (arrow::compute::min(times), arrow::compute::max(times))
        {
            self.times = Some(match self.times {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
        Ok(())
    }

    /// Earliest and latest `time` of the rows written so far (ns), if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        self.times
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Ends the current row group.
    pub fn flush_row_group(&mut self) -> anyhow::Result<()> {
        let path = self.tmp_path.display().to_string();
        self.writer()?
            .flush()
            .with_context(|| format!("writing a row group to {path}"))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Encoded bytes buffered for the open row group.
    pub fn in_progress_size(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.in_progress_size() as u64)
    }

    /// Bytes written to the file so far plus those buffered for the open row group.
    pub fn size(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| (w.bytes_written() + w.in_progress_size()) as u64)
    }

    /// Seals the segment with `metadata` (see `fantrace_schema::integrity`), writes the
    /// footer, fsyncs, renames it into the capture directory and fsyncs that. Every step's
    /// error is returned, none swallowed.
    pub fn finish(mut self, metadata: Vec<(String, String)>) -> anyhow::Result<Finished> {
        let tmp = self.tmp_path.display().to_string();
        let writer = self
            .writer
            .take()
            .context("the segment is already finished")?;
        let sealed = seal_and_close(writer, &self.seal, metadata, |_| Vec::new())
            .with_context(|| format!("writing the Parquet footer of {tmp}"))?;
        self.file
            .sync_all()
            .with_context(|| format!("fsync of {tmp}"))?;
        std::fs::rename(&self.tmp_path, &self.final_path)
            .with_context(|| format!("renaming {tmp} to {}", self.final_path.display()))?;
        self.finished = true;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync of directory {}", self.dir.display()))?;
        Ok(Finished {
            path: self.final_path.clone(),
            sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fantrace_schema::arrow::{EventBuilder, events_schema};
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn segment_appears_only_when_finished_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        create_in_progress_dir(dir.path()).unwrap();
        let mut seg = Segment::create(dir.path(), "a.parquet", events_schema()).unwrap();
        let batch = EventBuilder::with_capacity(0, 0, Default::default())
            .finish()
            .unwrap();
        seg.write(&batch).unwrap();
        assert!(!dir.path().join("a.parquet").exists());
        let partial = dir.path().join(IN_PROGRESS_DIR).join("a.parquet.partial");
        assert!(partial.exists());
        let finished = seg.finish(vec![("k".into(), "v".into())]).unwrap();
        let path = finished.path;
        assert!(path.exists());
        assert!(!partial.exists());
        assert_eq!(
            finished.sealed.file_sha256,
            fantrace_schema::integrity::sha256_of(File::open(&path).unwrap()).unwrap()
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reader =
            parquet::file::reader::SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        use parquet::file::reader::FileReader as _;
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(
            kv.iter()
                .any(|e| e.key == "k" && e.value.as_deref() == Some("v"))
        );
    }
}
