//! Find the segments of the captures given on the command line, check that each is a readable
//! fantrace segment of a schema version we know, and collect their metadata.
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::ParquetMetaData;
use fantrace_schema::metadata as keys;

/// Why one input cannot be read. Each names the file and suggests what to do.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot read: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: no capture segments (*.parquet) in this directory")]
    EmptyDir { path: PathBuf },
    #[error("{pattern}: no file matches this pattern")]
    NoMatch { pattern: String },
    #[error("{pattern}: not a valid pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{path}: not a Parquet file or damaged (truncated, empty or overwritten): {reason}")]
    NotParquet { path: PathBuf, reason: String },
    #[error(
        "{path}: a Parquet file, but not a fantrace capture segment (no {key} metadata); \
         query it with a generic Parquet tool instead"
    )]
    NotFantrace { path: PathBuf, key: &'static str },
    #[error(
        "{path}: schema version {found} is newer than this analyzer understands ({known}); \
         upgrade fantrace-analyzer"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error(
        "{path}: column {column} is missing or has the wrong type; the file is not a fantrace {version} segment"
    )]
    WrongColumns {
        path: PathBuf,
        column: &'static str,
        version: u32,
    },
}

/// One readable segment and its key-value metadata.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    pub schema_version: u32,
    pub metadata: HashMap<String, String>,
    /// `None` once the capture's footers passed [`FOOTERS_KEPT_BYTES`].
    pub footer: Option<Footer>,
}

/// A segment's decoded footer, handed to the query engine so that it does not read and decode
/// it a second time. The page index is left to the engine, which reads it only for segments
/// that statistics do not rule out.
#[derive(Debug, Clone)]
pub struct Footer {
    pub metadata: Arc<ParquetMetaData>,
    /// The file's size and modification time when the footer was read: the engine's cache
    /// serves the footer only while both still match.
    pub size: u64,
    pub modified: SystemTime,
}

impl Segment {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    pub fn meta_u64(&self, key: &str) -> Option<u64> {
        self.meta(key).and_then(|v| v.parse().ok())
    }
}

/// Decoded footers kept for the query engine, at most: they stay in memory while a command
/// runs, and a capture of thousands of large segments must not keep them all. Below
/// DataFusion's own metadata cache (50 MiB by default), which evicts what does not fit.
pub const FOOTERS_KEPT_BYTES: usize = 32 * 1024 * 1024;

/// Which captures a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// A capture directory, a segment file, or a glob of them (quoted); repeat for several.
    /// Segments of one capture or of several hosts can be mixed.
    #[arg(long = "capture", short = 'c', required = true)]
    pub captures: Vec<PathBuf>,
    /// Read every segment that can be read and report the others, instead of stopping at the
    /// first unreadable one.
    #[arg(long)]
    pub skip_bad: bool,
}

/// The readable segments, and (with `--skip-bad`) why the others were left out.
pub struct Loaded {
    pub segments: Vec<Segment>,
    pub bad: Vec<CaptureError>,
}

/// Finds and checks every segment of the captures, reading each segment once however often it
/// was given (a second copy of it, or the same file by another path, is left out with a
/// warning). Without `skip_bad` the first unreadable input is the error; with it, unreadable
/// inputs are collected in `bad`.
pub fn load(args: &CaptureArgs) -> anyhow::Result<Loaded> {
    let mut loaded = load_all(args)?;
    loaded.segments = dedupe(loaded.segments, |dup, kept| {
        eprintln!(
            "fantrace-analyzer: warning: {} is the same segment as {}; reading it once",
            dup.path.display(),
            kept.path.display()
        );
    });
    Ok(loaded)
}

/// What makes two files the same segment: for a sealed one, its recording, place in it and
/// data digest; for an older one, the file itself.
fn identity(segment: &Segment) -> String {
    match (
        segment.meta(keys::RECORDING_ID),
        segment.meta(keys::SEGMENT_SEQ),
        segment.meta(keys::DATA_SHA256),
    ) {
        (Some(r), Some(s), Some(d)) => format!("{r}/{s}/{d}"),
        _ => std::fs::canonicalize(&segment.path)
            .unwrap_or_else(|_| segment.path.clone())
            .to_string_lossy()
            .into_owned(),
    }
}

/// Keeps the first of each identity, calling `dropped` for every other.
pub fn dedupe(segments: Vec<Segment>, mut dropped: impl FnMut(&Segment, &Segment)) -> Vec<Segment> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for segment in segments {
        let id = identity(&segment);
        match seen.get(&id) {
            Some(&i) => dropped(&segment, &out[i]),
            None => {
                seen.insert(id, out.len());
                out.push(segment);
            }
        }
    }
    out
}

/// Like [`load`], but keeps every copy: `verify` must see them.
pub fn load_all(args: &CaptureArgs) -> anyhow::Result<Loaded> {
    let mut segments = Vec::new();
    let mut bad = Vec::new();
    let mut keep_or_fail = |err: CaptureError| -> anyhow::Result<()> {
        if args.skip_bad {
            bad.push(err);
            Ok(())
        } else {
            Err(err.into())
        }
    };
    let mut footer_bytes = 0;
    for input in expand_globs(&args.captures)? {
        match segment_paths(std::slice::from_ref(&input)) {
            Ok(paths) => {
                for path in paths {
                    match open_segment(&path) {
                        Ok(mut seg) => {
                            footer_bytes +=
                                seg.footer.as_ref().map_or(0, |f| f.metadata.memory_size());
                            if footer_bytes > FOOTERS_KEPT_BYTES {
                                seg.footer = None;
                            }
                            segments.push(seg);
                        }
                        Err(e) => keep_or_fail(e)?,
                    }
                }
            }
            Err(e) => keep_or_fail(e)?,
        }
    }
    for err in &bad {
        eprintln!("fantrace-analyzer: skipped: {err}");
    }
    if segments.is_empty() {
        anyhow::bail!("no readable capture segment among the inputs");
    }
    Ok(Loaded { segments, bad })
}

/// Prints a warning for each kind of call the recording missed: calls the probe could not
/// deliver, and 32-bit calls when the recorder could not see them.
pub fn warn_about_gaps(segments: &[Segment]) {
    let lost: u64 = segments
        .iter()
        .filter_map(|s| s.meta_u64(keys::EVENTS_LOST))
        .sum();
    if lost > 0 {
        eprintln!(
            "fantrace-analyzer: warning: the probe could not deliver {lost} call(s) while these \
             captures were recorded; results are incomplete (see the stats table)"
        );
    }
    if let Some(warning) = ia32_warning(segments) {
        eprintln!("fantrace-analyzer: warning: {warning}");
    }
}

/// Why a segment's recorder did not see 32-bit (ia32) calls, or `None` if it did.
pub fn ia32_gap(segment: &Segment) -> Option<String> {
    match segment.meta(keys::IA32_COVERED) {
        Some(v) if v.starts_with("yes") => None,
        Some(v) => Some(v.strip_prefix("no: ").unwrap_or(v).to_string()),
        None => Some(format!(
            "recorded with schema version {}, before fantrace recorded ia32 calls",
            segment.schema_version
        )),
    }
}

/// One sentence for the segments whose recorder was blind to ia32 calls, naming the reasons.
pub fn ia32_warning(segments: &[Segment]) -> Option<String> {
    let mut reasons: Vec<String> = segments.iter().filter_map(ia32_gap).collect();
    if reasons.is_empty() {
        return None;
    }
    let blind = reasons.len();
    reasons.sort();
    reasons.dedup();
    Some(format!(
        "32-bit (ia32) calls were not recorded in {blind} of {} segment(s) ({}): a process \
         that calls fanotify_mark through the 32-bit ABI is missing from these results",
        segments.len(),
        reasons.join("; ")
    ))
}

/// Inputs with `*`, `?` or `[` are glob patterns (for when the shell did not expand them).
fn expand_globs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, CaptureError> {
    let mut out = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy();
        if !text.contains(['*', '?', '[']) {
            out.push(input.clone());
            continue;
        }
        let matches = glob::glob(&text).map_err(|e| CaptureError::BadPattern {
            pattern: text.to_string(),
            reason: e.to_string(),
        })?;
        let mut found: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
        if found.is_empty() {
            return Err(CaptureError::NoMatch {
                pattern: text.to_string(),
            });
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Expands each input (a segment file or a capture directory) into its segment files, sorted
/// by name. Temporary files of a segment still being written (`.name.tmp`) are never taken.
pub fn segment_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, CaptureError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|cause| CaptureError::Io {
            path: input.clone(),
            cause,
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|cause| CaptureError::Io {
                path: input.clone(),
                cause,
            })?;
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|cause| CaptureError::Io {
                    path: input.clone(),
                    cause,
                })?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".parquet") && !name.starts_with('.') {
                    found.push(entry.path());
                }
            }
            if found.is_empty() {
                return Err(CaptureError::EmptyDir {
                    path: input.clone(),
                });
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

/// Opens `path`'s footer and checks it is a fantrace segment this analyzer can read.
pub fn open_segment(path: &Path) -> Result<Segment, CaptureError> {
    let file = File::open(path).map_err(|cause| CaptureError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let stat = file.metadata().map_err(|cause| CaptureError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let modified = stat.modified().map_err(|cause| CaptureError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| CaptureError::NotParquet {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let file_meta = builder.metadata().file_metadata();
    let metadata: HashMap<String, String> = file_meta
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|e| e.value.clone().map(|v| (e.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let version: u32 = metadata
        .get(keys::SCHEMA_VERSION)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CaptureError::NotFantrace {
            path: path.to_path_buf(),
            key: keys::SCHEMA_VERSION,
        })?;
    if version > keys::CURRENT_SCHEMA_VERSION {
        return Err(CaptureError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: keys::CURRENT_SCHEMA_VERSION,
        });
    }
    let schema = builder.schema();
    for column in fantrace_schema::arrow::COLUMNS {
        let Some(stored) = column.stored_type(version) else {
            continue;
        };
        let ok = schema
            .field_with_name(column.name)
            .map(|f| f.data_type() == &stored)
            .unwrap_or(false);
        if !ok {
            return Err(CaptureError::WrongColumns {
                path: path.to_path_buf(),
                column: column.name,
                version,
            });
        }
    }
    Ok(Segment {
        path: path.to_path_buf(),
        schema_version: version,
        metadata,
        footer: Some(Footer {
            metadata: Arc::clone(builder.metadata()),
            size: stat.len(),
            modified,
        }),
    })
}
