//! The segment index: one line per finished segment, kept beside the segments in
//! [`FILE_NAME`], so that a query over a year of segments learns each one's time range, size
//! and the few facts every query needs without opening it.
//!
//! The recorder appends a line once a segment is renamed into place; a crash between the two
//! only leaves a segment without a line, which readers then open as they would without an
//! index. A line is trusted for a file only while the file is the one it describes: same name
//! and inode, and (checked before the file is read) the same size and modification time.
//! Lines for segments removed since (`--keep`, uploads) are ignored and dropped by
//! [`compact`]. JSON Lines, so that `jq` reads it too.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::metadata as keys;

/// The index's file name in a capture directory: not `*.parquet`, so segment listings and
/// `read_parquet('DIR/*.parquet')` leave it out, and starting with `_`, so dataset readers
/// given the directory (pyarrow, Spark) skip it as they skip `_SUCCESS` (pyarrow failed on
/// `fantrace-index.jsonl`).
pub const FILE_NAME: &str = "_fantrace-index.jsonl";

/// The metadata keys a line keeps: what prunes (time range), what every query reports or
/// checks before reading (losses, ia32 coverage, duplicates) and the origin of each row. The
/// rest (command line, attach points, digests of the chain...) is read from the footer by the
/// commands that show it.
pub const INDEXED_KEYS: &[&str] = &[
    keys::HOSTNAME,
    keys::BOOT_ID,
    keys::RECORDING_ID,
    keys::SEGMENT_SEQ,
    keys::DATA_SHA256,
    keys::SEGMENT_START,
    keys::SEGMENT_END,
    keys::TIME_MIN,
    keys::TIME_MAX,
    keys::EVENTS_WRITTEN,
    keys::EVENTS_LOST,
    keys::ATTACH_MODE,
    keys::IA32_COVERED,
];

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: cannot read: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file: {cause}")]
    Footer {
        path: PathBuf,
        cause: parquet::errors::ParquetError,
    },
    #[error("{path}: not a fantrace segment (no {key})", key = keys::SCHEMA_VERSION)]
    NotSegment { path: PathBuf },
}

/// An index's lines by segment file name. Hashed with foldhash, not SipHash: names come from
/// the capture's own directory, and hashing a year of them was a tenth of the listing.
pub type Lines = HashMap<String, Entry, foldhash::fast::RandomState>;

/// One segment, as its line in the index says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The file name in the capture directory.
    pub name: String,
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    pub ino: u64,
    pub schema_version: u32,
    /// Rows and decoded bytes of its largest row group (see [`largest_row_group`]).
    pub largest_row_group: (i64, u64),
    /// The [`INDEXED_KEYS`] the segment has. The keys are the static ones, not a copy per
    /// segment: a year of segments is half a million lines.
    #[serde(with = "static_keys")]
    pub metadata: Metadata,
}

/// Key-value metadata whose usual keys are not allocated per segment: a list, not a hash
/// map (a few dozen keys are found faster by a scan, and a year of segments holds half a
/// million of these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(Vec<(Cow<'static, str>, String)>);

impl Metadata {
    pub fn with_capacity(n: usize) -> Metadata {
        Metadata(Vec::with_capacity(n))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.iter().find(|(k, _)| same(k, key)).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, replacing its value if it has one.
    pub fn insert(&mut self, key: Cow<'static, str>, value: String) {
        match self.0.iter_mut().find(|(k, _)| same(k, &key)) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Key equality, first by address: keys are mostly the same static strings, and a year of
/// segments makes millions of lookups.
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl FromIterator<(Cow<'static, str>, String)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (Cow<'static, str>, String)>>(iter: I) -> Metadata {
        let mut out = Metadata::default();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out.0.shrink_to_fit();
        out
    }
}

/// `key` as the static string of a key fantrace writes, if it is one.
pub fn static_key(key: &str) -> Cow<'static, str> {
    match INDEXED_KEYS
        .iter()
        .chain([&keys::SCHEMA_VERSION])
        .find(|k| **k == key)
    {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(key.to_string()),
    }
}

/// The metadata as a JSON object, keys sorted (a line reads the same every time).
mod static_keys {
    use super::*;
    use serde::de::{MapAccess, Visitor};

    pub fn serialize<S: serde::Serializer>(m: &Metadata, s: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<&str, &str> = m.iter().collect();
        serde::Serialize::serialize(&sorted, s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Metadata, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Metadata;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of metadata keys and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                // Room for the schema version a reader adds; pushed, not inserted: a JSON
                // object's keys are distinct, and searching for each was an eighth of reading
                // a year's index.
                let mut out = Metadata::with_capacity(INDEXED_KEYS.len() + 1);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    out.0.push((static_key(&key), map.next_value()?));
                }
                Ok(out)
            }
        }
        d.deserialize_map(Keys)
    }
}

impl Entry {
    /// The line for the segment at `path`, from its footer.
    pub fn of_file(path: &Path) -> Result<Entry, IndexError> {
        let io = |cause| IndexError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let stat = file.metadata().map_err(io)?;
        let footer = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .map_err(|cause| IndexError::Footer {
                path: path.to_path_buf(),
                cause,
            })?;
        let all: HashMap<&str, &str> = footer
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
            .collect();
        let schema_version = all
            .get(keys::SCHEMA_VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| IndexError::NotSegment {
                path: path.to_path_buf(),
            })?;
        let metadata = INDEXED_KEYS
            .iter()
            .filter_map(|k| Some((Cow::Borrowed(*k), all.get(k)?.to_string())))
            .collect();
        let file = FileIdentity::of(&stat);
        Ok(Entry {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: file.size,
            mtime_ns: file.mtime_ns,
            ino: file.ino,
            schema_version,
            largest_row_group: largest_row_group(&footer),
            metadata,
        })
    }

    /// Whether `stat` is of the file this line describes, unchanged since.
    pub fn matches(&self, stat: &std::fs::Metadata) -> bool {
        self.file().matches(stat)
    }

    /// The file this line describes.
    pub fn file(&self) -> FileIdentity {
        FileIdentity {
            ino: self.ino,
            size: self.size,
            mtime_ns: self.mtime_ns,
        }
    }
}

/// What tells a segment file apart from another put under its name, or from itself changed
/// since: its inode, size and modification time (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileIdentity {
    pub fn of(stat: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            ino: stat.ino(),
            size: stat.len(),
            mtime_ns: stat
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(stat.mtime_nsec()),
        }
    }

    /// Whether `stat` is of this file, unchanged.
    pub fn matches(&self, stat: &std::fs::Metadata) -> bool {
        *self == FileIdentity::of(stat)
    }
}

/// Rows and decoded bytes of a file's largest row group: the memory one scan of it takes. The
/// larger of the two sizes a footer states, since either may be what a forger lowered.
pub fn largest_row_group(footer: &ParquetMetaData) -> (i64, u64) {
    footer
        .row_groups()
        .iter()
        .map(|rg| {
            let columns: u64 = rg
                .columns()
                .iter()
                .map(|c| u64::try_from(c.uncompressed_size()).unwrap_or(u64::MAX))
                .fold(0, u64::saturating_add);
            let total = u64::try_from(rg.total_byte_size()).unwrap_or(u64::MAX);
            (rg.num_rows(), columns.max(total))
        })
        .max_by_key(|&(_, bytes)| bytes)
        .unwrap_or_default()
}

/// Appends the line of the segment at `path` to its directory's index (created 0600, like the
/// segments). One `write` per line, so concurrent appenders never interleave.
pub fn add(path: &Path) -> Result<Entry, IndexError> {
    let entry = Entry::of_file(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let index = dir.join(FILE_NAME);
    let mut line = serde_json::to_vec(&entry).expect("an index entry serializes");
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&index)
        .and_then(|mut f| f.write_all(&line))
        .map_err(|cause| IndexError::Io { path: index, cause })?;
    Ok(entry)
}

/// The lines of `dir`'s index by file name, the last for a name winning; no index is an empty
/// one. A line that does not parse (the torn last line of a crash) is left out: its segment is
/// then opened.
pub fn read(dir: &Path) -> Result<Lines, IndexError> {
    let path = dir.join(FILE_NAME);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lines::default()),
        Err(cause) => return Err(IndexError::Io { path, cause }),
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    // A line is about 700 bytes: reserving for them all spares the map its rehashing.
    let expected = (size / 700) as usize;
    let lines = if size > PARSE_CHUNK as u64 {
        parse_parallel(reader, expected)
    } else {
        parse_into(
            reader,
            Lines::with_capacity_and_hasher(expected, Default::default()),
        )
    };
    lines.map_err(|cause| IndexError::Io { path, cause })
}

/// The lines of an index (a local one, or a chunk of one in an object store) by file name,
/// the last for a name winning; a line that does not parse is left out.
pub fn parse(reader: impl std::io::BufRead) -> std::io::Result<Lines> {
    parse_into(reader, Lines::default())
}

/// [`parse`] into `out`, on this thread.
fn parse_into(mut reader: impl std::io::BufRead, mut out: Lines) -> std::io::Result<Lines> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(out);
        }
        out.extend(decode(&line).map(|entry| (entry.name.clone(), entry)));
    }
}

/// The entries of whole lines, those that parse.
fn decode(lines: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    lines
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Entry>(line).ok())
}

/// Bytes of whole lines handed to a parsing thread at a time; an index no larger is parsed on
/// the calling thread.
const PARSE_CHUNK: usize = 4 << 20;

/// [`parse`], the lines decoded on every core: a year of segments is 400 MB of JSON, and
/// decoding it on one core was half of a query's time. The reader cuts the input into chunks
/// of whole lines; the map is filled in the input's order, so the last line still wins.
fn parse_parallel(mut reader: impl std::io::BufRead, expected: usize) -> std::io::Result<Lines> {
    use std::sync::{Mutex, mpsc};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (to_parse, chunks) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let chunks = Mutex::new(chunks);
    let (to_merge, parsed) = mpsc::channel::<(usize, Vec<Entry>)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let to_merge = to_merge.clone();
            let chunks = &chunks;
            scope.spawn(move || {
                loop {
                    let next = chunks.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((seq, chunk)) = next else { break };
                    if to_merge.send((seq, decode(&chunk).collect())).is_err() {
                        break;
                    }
                }
            });
        }
        drop(to_merge);
        // Merged as chunks arrive, in order; the reader runs on this thread meanwhile.
        let merger = scope.spawn(move || {
            let mut out = Lines::with_capacity_and_hasher(expected, Default::default());
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0;
            for (seq, entries) in parsed {
                waiting.insert(seq, entries);
                while let Some(entries) = waiting.remove(&next) {
                    out.extend(entries.into_iter().map(|entry| (entry.name.clone(), entry)));
                    next += 1;
                }
            }
            out
        });
        let mut read = Ok(());
        for seq in 0.. {
            let mut chunk = Vec::with_capacity(PARSE_CHUNK + 4096);
            while chunk.len() < PARSE_CHUNK {
                match reader.read_until(b'\n', &mut chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        read = Err(e);
                        break;
                    }
                }
            }
            // Short of a full chunk: the input ended (or failed).
            let last = chunk.len() < PARSE_CHUNK;
            if (!chunk.is_empty() && to_parse.send((seq, chunk)).is_err()) || last {
                break;
            }
        }
        drop(to_parse);
        let lines = merger.join().unwrap_or_default();
        read.map(|()| lines)
    })
}

/// `entries` as index lines.
pub fn to_lines<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut out, entry).expect("an index entry serializes");
        out.push(b'\n');
    }
    out
}

/// Rewrites `dir`'s index without the lines of segments no longer there (by rename, so a
/// reader sees the old index or the new one). Returns how many lines it kept.
pub fn compact(dir: &Path) -> Result<usize, IndexError> {
    let entries = read(dir)?;
    let mut kept: Vec<&Entry> = entries
        .values()
        .filter(|e| dir.join(&e.name).exists())
        .collect();
    kept.sort_by(|a, b| a.name.cmp(&b.name));
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let io = |cause| IndexError::Io {
        path: tmp.clone(),
        cause,
    };
    let mut out = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?,
    );
    for entry in &kept {
        serde_json::to_writer(&mut out, entry).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, dir.join(FILE_NAME)).map_err(io)?;
    Ok(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::events_schema;

    fn segment(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        let schema = events_schema();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_key_value_metadata(Some(
                [
                    (keys::SCHEMA_VERSION, "6"),
                    (keys::TIME_MIN, "2026-12-07T00:00:00.000000000Z"),
                    (keys::COMMAND_LINE, "x"),
                ]
                .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.into(), v.to_string()))
                .to_vec(),
            ))
            .build();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        w.write(&::arrow::array::RecordBatch::new_empty(schema))
            .unwrap();
        w.close().unwrap();
        path
    }

    #[test]
    fn lines_describe_their_segment_until_it_changes_or_goes() {
        let dir = tempfile::tempdir().unwrap();
        let a = segment(dir.path(), "a.parquet");
        let b = segment(dir.path(), "b.parquet");
        let entry = add(&a).unwrap();
        add(&b).unwrap();
        assert_eq!(entry.schema_version, 6);
        assert_eq!(
            entry.metadata.get(keys::TIME_MIN).map(String::as_str),
            Some("2026-12-07T00:00:00.000000000Z")
        );
        // Only the indexed keys are kept.
        assert!(!entry.metadata.contains_key(keys::COMMAND_LINE));
        let read_back = read(dir.path()).unwrap();
        assert_eq!(read_back.get("a.parquet"), Some(&entry));
        assert!(entry.matches(&std::fs::metadata(&a).unwrap()));
        // A torn last line is left out, the others still read.
        let index = dir.path().join(FILE_NAME);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&index)
            .unwrap();
        f.write_all(b"{\"name\":\"c.parq").unwrap();
        assert_eq!(read(dir.path()).unwrap().len(), 2);
        // A rewritten file no longer matches its line.
        std::fs::write(&a, b"changed").unwrap();
        assert!(!entry.matches(&std::fs::metadata(&a).unwrap()));
        // Compaction drops lines of removed segments and the torn one.
        std::fs::remove_file(&b).unwrap();
        assert_eq!(compact(dir.path()).unwrap(), 1);
        assert_eq!(
            read(dir.path()).unwrap().keys().collect::<Vec<_>>(),
            vec!["a.parquet"]
        );
        let mode = std::fs::metadata(&index).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
