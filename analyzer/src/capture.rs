//! Find the segments of the captures given on the command line, check that each is a readable
//! fantrace segment of a schema version we know, and collect their metadata.
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
    pub metadata: HashMap<String, String>,
}

impl Segment {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    pub fn meta_u64(&self, key: &str) -> Option<u64> {
        self.meta(key).and_then(|v| v.parse().ok())
    }
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
        let ok = schema
            .field_with_name(column.name)
            .map(|f| f.data_type() == &(column.data_type)())
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
        metadata,
    })
}
