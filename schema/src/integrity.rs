//! How a segment is sealed, so that anyone holding it can tell whether it is what was written:
//! the recorder, `export` and `verify` all go through here.
//!
//! A segment's metadata carries three digests (SHA-256, hex):
//! - [`DATA_SHA256`](crate::metadata::DATA_SHA256) over its first
//!   [`DATA_BYTES`](crate::metadata::DATA_BYTES) bytes: the row groups, everything before the
//!   Parquet footer and page index;
//! - [`METADATA_SHA256`](crate::metadata::METADATA_SHA256) over every other `fantrace.*` key
//!   and the footer's row counts ([`metadata_digest`]): an edited host name or `events_written`
//!   no longer matches;
//! - [`PREV_SEGMENT_SHA256`](crate::metadata::PREV_SEGMENT_SHA256), the digest of the whole
//!   file of the previous segment of the same recording: segments form a chain, so a missing,
//!   extra, reordered or altered segment breaks it.
//!
//! The first two can be recomputed by whoever edits a file on purpose; the chain catches that
//! for every segment but the last, and a signature over the metadata digest (`export --sign`)
//! for all of them.
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use sha2::{Digest as _, Sha256};

use crate::metadata as keys;

/// Keys the metadata digest leaves out: the digest itself and what signs it.
pub const UNDIGESTED: [&str; 3] = [keys::METADATA_SHA256, keys::SIGNATURE, keys::SIGNING_KEY];

/// Lower-case hex digits of `bytes`, as digests and keys are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex digits written as [`hex`] writes them (either case); `None` for anything
/// else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SHA-256 of everything `reader` yields, hex.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The digest over a segment's `fantrace.*` keys (but [`UNDIGESTED`]) and the row count of
/// each row group, in an order that does not depend on how the keys were stored.
pub fn metadata_digest<'a>(
    kv: impl IntoIterator<Item = (&'a str, &'a str)>,
    row_group_rows: &[i64],
) -> String {
    let mut pairs: Vec<(&str, &str)> = kv
        .into_iter()
        .filter(|(k, _)| k.starts_with("fantrace.") && !UNDIGESTED.contains(k))
        .collect();
    pairs.sort();
    let mut hasher = Sha256::new();
    for (k, v) in pairs {
        // Lengths first, so no choice of keys and values can collide with another.
        hasher.update((k.len() as u64).to_le_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_le_bytes());
        hasher.update(v.as_bytes());
    }
    hasher.update((row_group_rows.len() as u64).to_le_bytes());
    for rows in row_group_rows {
        hasher.update(rows.to_le_bytes());
    }
    hex(&hasher.finalize())
}

#[derive(Default)]
struct Running {
    hasher: Sha256,
    bytes: u64,
}

/// A writer that hashes every byte on its way to `W`. The state is shared, so the digest of
/// what has gone through so far can be read while the Parquet writer still owns the writer.
pub struct SealingWriter<W> {
    inner: W,
    state: Arc<Mutex<Running>>,
}

/// The other end of a [`SealingWriter`]: reads its running digest.
#[derive(Clone)]
pub struct SealState(Arc<Mutex<Running>>);

impl<W: Write> SealingWriter<W> {
    pub fn new(inner: W) -> (SealingWriter<W>, SealState) {
        let state = Arc::new(Mutex::new(Running::default()));
        (
            SealingWriter {
                inner,
                state: state.clone(),
            },
            SealState(state),
        )
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.hasher.update(&buf[..n]);
        state.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl SealState {
    /// Bytes written so far and their digest.
    pub fn snapshot(&self) -> (u64, String) {
        let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (state.bytes, hex(&state.hasher.clone().finalize()))
    }
}

/// What sealing a segment produced.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// SHA-256 of the whole file: what the next segment of the chain names.
    pub file_sha256: String,
    pub file_bytes: u64,
    pub metadata_sha256: String,
    pub rows: u64,
}

/// What is wrong with how a sealed segment's footer lays out its data, if anything. The seal
/// covers the data region's bytes and the key-value metadata, not the footer's offsets: a
/// footer changed to point a column at another column's pages reads valid, sealed data as
/// the wrong column. A segment's column chunks are written back to back, so they must tile
/// the data region exactly, from after the magic bytes to `data_bytes`, each page offset
/// inside its own chunk.
pub fn layout_problem(
    footer: &parquet::file::metadata::ParquetMetaData,
    data_bytes: u64,
) -> Option<String> {
    let mut chunks: Vec<(u64, u64, String)> = Vec::new();
    for rg in footer.row_groups() {
        for column in rg.columns() {
            let (start, len) = column.byte_range();
            let name = column.column_path().string();
            let end = start.saturating_add(len);
            let inside = |offset: i64| u64::try_from(offset).is_ok_and(|o| o >= start && o < end);
            if !inside(column.data_page_offset())
                || column.dictionary_page_offset().is_some_and(|o| !inside(o))
                || column.index_page_offset().is_some_and(|o| !inside(o))
            {
                return Some(format!("column {name}'s pages lie outside its own chunk"));
            }
            chunks.push((start, end, name));
        }
    }
    chunks.sort();
    let mut at = 4; // after the leading magic bytes
    for (start, end, name) in &chunks {
        if *start != at {
            return Some(format!(
                "column {name}'s chunk starts at byte {start}, where byte {at} was expected \
                 (chunks overlap or leave a gap)"
            ));
        }
        at = *end;
    }
    (at != data_bytes && !chunks.is_empty()).then(|| {
        format!("the column chunks end at byte {at}, the sealed data at byte {data_bytes}")
    })
}

/// Ends the last row group, adds the data and metadata digests (and whatever `sign` returns
/// for the metadata digest) to `kv`, writes the footer and returns the digests. `kv` must
/// already hold every other `fantrace.*` key the segment will carry.
pub fn seal_and_close<W: Write + Send>(
    mut writer: ArrowWriter<SealingWriter<W>>,
    state: &SealState,
    mut kv: Vec<(String, String)>,
    sign: impl FnOnce(&str) -> Vec<(String, String)>,
) -> Result<Sealed, ParquetError> {
    writer.flush()?;
    writer.sync()?;
    let (data_bytes, data_sha256) = state.snapshot();
    kv.push((keys::DATA_BYTES.into(), data_bytes.to_string()));
    kv.push((keys::DATA_SHA256.into(), data_sha256));
    let row_group_rows: Vec<i64> = writer
        .flushed_row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    let metadata_sha256 = metadata_digest(
        kv.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &row_group_rows,
    );
    kv.push((keys::METADATA_SHA256.into(), metadata_sha256.clone()));
    kv.extend(sign(&metadata_sha256));
    for (k, v) in kv {
        writer.append_key_value_metadata(KeyValue::new(k, v));
    }
    writer.close()?;
    let (file_bytes, file_sha256) = state.snapshot();
    Ok(Sealed {
        file_sha256,
        file_bytes,
        metadata_sha256,
        rows: row_group_rows.iter().map(|&r| r as u64).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::{EventBuilder, Origin, events_schema};

    #[test]
    fn digests_describe_the_file_as_written() {
        let mut file = Vec::new();
        let (sink, state) = SealingWriter::new(&mut file);
        let mut w = ArrowWriter::try_new(sink, events_schema(), None).unwrap();
        let batch = EventBuilder::with_capacity(0, 0, Origin::default())
            .finish()
            .unwrap();
        w.write(&batch).unwrap();
        let sealed = seal_and_close(w, &state, vec![(keys::HOSTNAME.into(), "h".into())], |_| {
            Vec::new()
        })
        .unwrap();
        assert_eq!(sealed.file_bytes, file.len() as u64);
        assert_eq!(sealed.file_sha256, sha256_of(&file[..]).unwrap());
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            bytes::Bytes::from(file.clone()),
        )
        .unwrap();
        use parquet::file::reader::FileReader as _;
        let meta = reader.metadata();
        let kv: Vec<(String, String)> = meta
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).unwrap().1.clone();
        let data_bytes: usize = get(keys::DATA_BYTES).parse().unwrap();
        assert_eq!(
            get(keys::DATA_SHA256),
            sha256_of(&file[..data_bytes]).unwrap()
        );
        let rows: Vec<i64> = meta.row_groups().iter().map(|r| r.num_rows()).collect();
        assert_eq!(
            get(keys::METADATA_SHA256),
            metadata_digest(kv.iter().map(|(k, v)| (k.as_str(), v.as_str())), &rows)
        );
        // An edited value no longer matches.
        let edited = kv.iter().map(|(k, v)| {
            if k == keys::HOSTNAME {
                (k.as_str(), "x")
            } else {
                (k.as_str(), v.as_str())
            }
        });
        assert_ne!(get(keys::METADATA_SHA256), metadata_digest(edited, &rows));
    }
}
