//! Write: one Parquet segment, written under a temporary name and published by rename only
//! once it is complete and on disk, so no reader ever sees a half-written segment.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use fantrace_schema::layout;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;

pub struct Segment {
    tmp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    file: File,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl Segment {
    /// Opens `dir/.name.tmp` (mode 0600, must not exist) for a segment to be named `name`.
    pub fn create(dir: &Path, name: &str, schema: SchemaRef) -> anyhow::Result<Segment> {
        let tmp_path = dir.join(format!(".{name}.tmp"));
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
        let writer = ArrowWriter::try_new(writer_file, schema, Some(props))
            .with_context(|| format!("starting Parquet writer on {}", tmp_path.display()))?;
        Ok(Segment {
            tmp_path,
            final_path,
            dir: dir.to_path_buf(),
            file,
            writer,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        self.writer
            .write(batch)
            .with_context(|| format!("writing to segment {}", self.tmp_path.display()))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Ends the current row group.
    pub fn flush_row_group(&mut self) -> anyhow::Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("writing a row group to {}", self.tmp_path.display()))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Encoded bytes buffered for the open row group.
    pub fn in_progress_size(&self) -> u64 {
        self.writer.in_progress_size() as u64
    }

    /// Bytes written to the file so far plus those buffered for the open row group.
    pub fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Writes the footer with `metadata`, fsyncs, renames to the final name and fsyncs the
    /// directory. Every step's error is returned, none swallowed.
    pub fn finish(mut self, metadata: Vec<(String, String)>) -> anyhow::Result<PathBuf> {
        for (key, value) in metadata {
            self.writer
                .append_key_value_metadata(KeyValue::new(key, value));
        }
        let tmp = self.tmp_path.display().to_string();
        self.writer
            .close()
            .with_context(|| format!("writing the Parquet footer of {tmp}"))?;
        self.file
            .sync_all()
            .with_context(|| format!("fsync of {tmp}"))?;
        std::fs::rename(&self.tmp_path, &self.final_path)
            .with_context(|| format!("renaming {tmp} to {}", self.final_path.display()))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync of directory {}", self.dir.display()))?;
        Ok(self.final_path)
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
        let mut seg = Segment::create(dir.path(), "a.parquet", events_schema()).unwrap();
        let batch = EventBuilder::with_capacity(0, 0).finish().unwrap();
        seg.write(&batch).unwrap();
        assert!(!dir.path().join("a.parquet").exists());
        let path = seg.finish(vec![("k".into(), "v".into())]).unwrap();
        assert!(path.exists());
        assert!(!dir.path().join(".a.parquet.tmp").exists());
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
