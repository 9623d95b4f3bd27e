//! Find the segments of the captures given on the command line, check that each is a readable
//! fantrace segment of a schema version we know, and collect their metadata: local files
//! here, objects in `remote`; `foreign` keeps a decoder's panic on a damaged file an error
//! naming it.
pub mod chunked_scan;
pub mod foreign;
pub mod remote;
pub mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::ParquetMetaData;
use fantrace_schema::metadata as keys;
use futures::StreamExt as _;

/// Why one input cannot be read. Each names the file and suggests what to do.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot read: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{url}: cannot read from the object store: {cause}; check the URL, the credentials in \
         the environment and --endpoint"
    )]
    Remote { url: String, cause: String },
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
        "{path}: not a regular file ({kind}); capture segments are regular files: remove it or \
         move it out of the capture"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{path}: its metadata or row counts do not match its seal (fantrace.metadata_sha256): \
         edited or damaged after it was written; `fantrace-analyzer verify` tells more, \
         --skip-bad reads the other segments"
    )]
    SealBroken { path: PathBuf },
    #[error(
        "{path}: its data does not match its seal (fantrace.data_sha256): changed or damaged \
         after it was written; --skip-bad reads the other segments"
    )]
    DataChanged { path: PathBuf },
    #[error(
        "{path}: its footer does not describe its sealed data ({problem}): changed after it was \
         written; --skip-bad reads the other segments"
    )]
    LayoutChanged { path: PathBuf, problem: String },
    #[error(
        "{path}: not sealed (written before fantrace sealed segments), so --verify-data cannot \
         check it; leave out --verify-data, or the segment with --skip-bad"
    )]
    Unsealed { path: PathBuf },
    #[error(
        "{path}: a row group of {rows} row(s) decodes to {bytes} bytes, more than a quarter of \
         --memory-limit {limit} allows; raise --memory-limit to at least {needed} if the file \
         is trusted, or leave it out with --skip-bad"
    )]
    TooLarge {
        path: PathBuf,
        rows: i64,
        bytes: u64,
        limit: u64,
        needed: u64,
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
    /// Shared: the session's tables keep the segments too.
    pub metadata: Arc<fantrace_schema::index::Metadata>,
    /// `None` once the capture's footers passed [`FOOTERS_KEPT_BYTES`].
    pub footer: Option<Footer>,
    /// What its largest row group decodes to, by its footer: the memory one scan of it takes.
    pub largest_row_group: RowGroupSize,
    /// Whether its metadata and row counts match its seal; `None` for an unsealed segment, and
    /// for one known by its index line (see `indexed`).
    pub seal_intact: Option<bool>,
    /// Known by its line in the capture directory's index, not yet opened: `metadata` holds
    /// only the indexed keys, and the file is checked against the line before it is read
    /// (opened and its seal checked when it changed); [`complete`] reads the whole footer.
    pub indexed: Option<fantrace_schema::index::FileIdentity>,
    /// Where it is when it is not a local file (`path` then holds its URL).
    pub object: Option<crate::capture::remote::RemoteObject>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RowGroupSize {
    pub rows: i64,
    pub bytes: u64,
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

/// How many segment files are open at once while their footers are read.
const FOOTERS_AT_ONCE: usize = 8;

/// What a command that queries captures checks beyond "a readable fantrace segment".
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Refuse segments whose metadata does not match their seal.
    pub seal: bool,
    /// Take what the capture directories' indexes say of their segments instead of opening
    /// each (not with `--verify-data`, which reads every file anyway).
    pub index: bool,
    /// The query memory limit: a segment whose row group decodes to more than a quarter of it
    /// is refused (decoded batches are not counted by the engine's memory pool, and two
    /// partitions decode at once).
    pub memory_limit: Option<u64>,
}

impl Checks {
    pub fn for_queries(memory_limit: usize) -> Checks {
        Checks {
            seal: true,
            index: true,
            memory_limit: Some(memory_limit as u64),
        }
    }

    pub fn check(&self, segment: &Segment) -> Result<(), CaptureError> {
        if self.seal && segment.seal_intact == Some(false) {
            return Err(CaptureError::SealBroken {
                path: segment.path.clone(),
            });
        }
        if let Some(limit) = self.memory_limit {
            let RowGroupSize { rows, bytes } = segment.largest_row_group;
            if bytes.saturating_mul(4) > limit {
                return Err(CaptureError::TooLarge {
                    path: segment.path.clone(),
                    rows,
                    bytes,
                    limit,
                    needed: bytes.saturating_mul(4),
                });
            }
        }
        Ok(())
    }
}

/// Which captures a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// A capture directory, a segment file, or a glob of them (quoted); repeat for several.
    /// Segments of one capture or of several hosts can be mixed. Object stores too:
    /// s3://bucket/prefix/ (every segment under it), gs://, az://, https:// and globs such as
    /// 's3://bucket/fleet/host=web*/date=2026-11-2[56]/'.
    #[arg(long = "capture", short = 'c', required = true)]
    pub captures: Vec<PathBuf>,
    /// Read every segment that can be read and report the others, instead of stopping at the
    /// first unreadable one.
    #[arg(long)]
    pub skip_bad: bool,
    /// Before answering, check every segment's data against its seal (reads each file once
    /// more): what to use when a capture is evidence. Unsealed segments are refused.
    #[arg(long)]
    pub verify_data: bool,
    /// The S3-compatible server for s3:// captures (Garage, MinIO, Ceph...); else
    /// AWS_ENDPOINT_URL, else AWS. Credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (GOOGLE_* and AZURE_* for gs:// and az://).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Only segments with calls in this window (ns since the epoch, inclusive) are read, set
    /// by the commands that take `--since`/`--until`: segments known to lie outside it are
    /// never opened, and in an object store only the `date=` folders that can hold its calls
    /// are listed.
    #[arg(skip)]
    pub window: Option<(i64, i64)>,
}

/// The readable segments, and (with `--skip-bad`) why the others were left out.
pub struct Loaded {
    pub segments: Vec<Segment>,
    pub bad: Vec<CaptureError>,
    /// How the window left segments out before they were read.
    pub windowed: Windowed,
}

/// What `--since`/`--until` (see [`CaptureArgs::window`]) saved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Windowed {
    /// Segments whose recorded time range lies outside the window: left out.
    pub outside: u64,
    /// Of those, the ones known by an index line, never opened.
    pub unopened: u64,
    /// `date=` folders listed in object stores, when the window chose them.
    pub folders: Option<usize>,
}

impl Windowed {
    /// One line for `--timing`; `None` without a window.
    pub fn summary(&self, window: Option<(i64, i64)>) -> Option<String> {
        window?;
        let folders = self
            .folders
            .map(|n| format!("; {n} date= folder(s) listed in the object store"))
            .unwrap_or_default();
        Some(format!(
            "{} segment(s) outside --since/--until left out ({} known from an index, never \
             opened){folders}",
            self.outside, self.unopened
        ))
    }
}

/// Whether `segment` may hold a call in `window`: its recorded time range meets it, or it has
/// none (an older segment, or one with no calls that still says something: losses, the end of
/// a recording).
fn in_window(segment: &Segment, window: Option<(i64, i64)>) -> bool {
    window.is_none_or(|window| meets(segment.time_range(), window))
}

/// Whether a recorded time range (`None`: not recorded) may hold a time in `[lo, hi]`.
pub(crate) fn meets(range: Option<(i64, i64)>, (lo, hi): (i64, i64)) -> bool {
    range.is_none_or(|(min, max)| max >= lo && min <= hi)
}

/// Finds and checks every segment of the captures, reading each segment once however often it
/// was given (a second copy of it, or the same file by another path, is left out with a
/// warning). Without `skip_bad` the first unreadable input is the error; with it, unreadable
/// inputs are collected in `bad`.
pub async fn load(args: &CaptureArgs, checks: Checks) -> anyhow::Result<Loaded> {
    let mut loaded = load_all(args, checks).await?;
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
#[derive(PartialEq, Eq, Hash)]
enum Identity<'a> {
    Sealed(&'a str, &'a str, &'a str),
    File(PathBuf),
}

fn identity(segment: &Segment) -> Identity<'_> {
    match (
        segment.meta(keys::RECORDING_ID),
        segment.meta(keys::SEGMENT_SEQ),
        segment.meta(keys::DATA_SHA256),
    ) {
        (Some(r), Some(s), Some(d)) => Identity::Sealed(r, s, d),
        _ => Identity::File(
            std::fs::canonicalize(&segment.path).unwrap_or_else(|_| segment.path.clone()),
        ),
    }
}

/// Keeps the first of each identity, calling `dropped` for every other.
pub fn dedupe(segments: Vec<Segment>, mut dropped: impl FnMut(&Segment, &Segment)) -> Vec<Segment> {
    // Identities borrow from the segments, so the copies are found first and left out after.
    let mut first: HashMap<Identity<'_>, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(segments.len(), Default::default());
    let mut keep = vec![true; segments.len()];
    for (i, segment) in segments.iter().enumerate() {
        let kept = *first.entry(identity(segment)).or_insert(i);
        if kept != i {
            dropped(segment, &segments[kept]);
            keep[i] = false;
        }
    }
    drop(first);
    segments
        .into_iter()
        .zip(keep)
        .filter_map(|(segment, keep)| keep.then_some(segment))
        .collect()
}

/// What [`load_all`] has found so far.
struct Found<'a> {
    args: &'a CaptureArgs,
    checks: Checks,
    segments: Vec<Segment>,
    bad: Vec<CaptureError>,
    windowed: Windowed,
    footer_bytes: usize,
}

impl Found<'_> {
    /// An unreadable input: kept with `--skip-bad`, the error without.
    fn fail(&mut self, err: CaptureError) -> anyhow::Result<()> {
        if self.args.skip_bad {
            self.bad.push(err);
            Ok(())
        } else {
            Err(err.into())
        }
    }

    /// The segments of one listing, in order: those outside the window are left out, the
    /// others checked and kept (their footers only while the kept ones stay small).
    async fn take(
        &mut self,
        opened: impl futures::Stream<Item = Result<Segment, CaptureError>>,
    ) -> anyhow::Result<()> {
        let mut opened = std::pin::pin!(opened);
        while let Some(result) = opened.next().await {
            if let Ok(segment) = &result
                && !in_window(segment, self.args.window)
            {
                self.windowed.outside += 1;
                self.windowed.unopened += u64::from(segment.indexed.is_some());
                continue;
            }
            match checked(result, self.checks, self.args).await {
                Ok(mut segment) => {
                    self.footer_bytes += segment
                        .footer
                        .as_ref()
                        .map_or(0, |f| f.metadata.memory_size());
                    if self.footer_bytes > FOOTERS_KEPT_BYTES {
                        segment.footer = None;
                    }
                    self.segments.push(segment);
                }
                Err(e) => self.fail(e)?,
            }
        }
        Ok(())
    }
}

/// Like [`load`], but keeps every copy: `verify` must see them.
pub async fn load_all(args: &CaptureArgs, checks: Checks) -> anyhow::Result<Loaded> {
    let mut found = Found {
        args,
        checks,
        segments: Vec::new(),
        bad: Vec::new(),
        windowed: Windowed::default(),
        footer_bytes: 0,
    };
    for input in &args.captures {
        let text = input.to_string_lossy();
        if fantrace_storage::location::is_url(&text) {
            let listing =
                match crate::capture::remote::list(&text, args.endpoint.as_deref(), args.window)
                    .await
                {
                    Ok(listing) => listing,
                    Err(e) => {
                        found.fail(e)?;
                        continue;
                    }
                };
            if let Some(n) = listing.folders {
                *found.windowed.folders.get_or_insert(0) += n;
            }
            let use_index = checks.index && !args.verify_data;
            let mut index = listing.index;
            let opened = futures::stream::iter(listing.objects.into_iter().map(|object| {
                let line = use_index
                    .then(|| index.remove(&object.key))
                    .flatten()
                    .filter(|line| line.describes(&object));
                match line {
                    Some(line) => futures::future::Either::Left(futures::future::ready(Ok(
                        Segment::from_index_remote(object, line.entry),
                    ))),
                    None => {
                        futures::future::Either::Right(crate::capture::remote::open_segment(object))
                    }
                }
            }))
            .buffered(FOOTERS_AT_ONCE);
            found.take(opened).await?;
            continue;
        }
        let mut indexes = Indexes::default();
        for input in expand_globs(std::slice::from_ref(input))? {
            match segment_paths(std::slice::from_ref(&input)) {
                Ok(listed) => {
                    // A segment its directory's index describes is taken from its line; the
                    // others' footers are decoded a few at a time on the blocking pool
                    // (decoding is most of the cost of a capture of many small segments), in
                    // order, with a bounded number of files open.
                    let use_index = checks.index && !args.verify_data;
                    let opened = futures::stream::iter(listed.into_iter().map(|listed| {
                        match use_index.then(|| indexes.segment(&listed)).flatten() {
                            Some(segment) => {
                                futures::future::Either::Left(futures::future::ready(Ok(segment)))
                            }
                            None => futures::future::Either::Right(open_in_pool(listed.path)),
                        }
                    }))
                    .buffered(FOOTERS_AT_ONCE);
                    found.take(opened).await?;
                }
                Err(e) => found.fail(e)?,
            }
        }
    }
    let Found {
        segments,
        bad,
        windowed,
        ..
    } = found;
    for err in &bad {
        eprintln!("fantrace-analyzer: skipped: {err}");
    }
    if segments.is_empty() {
        if let Some((lo, hi)) = args.window
            && windowed.outside + windowed.folders.unwrap_or(0) as u64 > 0
        {
            anyhow::bail!(
                "no segment of the captures holds calls between {} and {}: widen --since/--until",
                crate::timespec::rfc3339(lo),
                crate::timespec::rfc3339(hi)
            );
        }
        anyhow::bail!("no readable capture segment among the inputs");
    }
    Ok(Loaded {
        segments,
        bad,
        windowed,
    })
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

/// The checks a command asked for, on an opened segment.
async fn checked(
    opened: Result<Segment, CaptureError>,
    checks: Checks,
    args: &CaptureArgs,
) -> Result<Segment, CaptureError> {
    let segment = opened?;
    checks.check(&segment)?;
    if args.verify_data {
        verify_data(&segment).await?;
    }
    Ok(segment)
}

/// Checks a segment's data region against its sealed digest.
async fn verify_data(segment: &Segment) -> Result<(), CaptureError> {
    let path = || segment.path.clone();
    let (Some(bytes), Some(sealed)) = (
        segment.meta_u64(keys::DATA_BYTES),
        segment.meta(keys::DATA_SHA256),
    ) else {
        return Err(CaptureError::Unsealed { path: path() });
    };
    match segment_digests(segment, Some(bytes)).await? {
        (_, Some(data)) if data == sealed => {}
        _ => return Err(CaptureError::DataChanged { path: path() }),
    }
    match fantrace_schema::integrity::layout_problem(&*footer(segment).await?, bytes) {
        None => Ok(()),
        Some(problem) => Err(CaptureError::LayoutChanged {
            path: path(),
            problem,
        }),
    }
}

/// A segment file found in the inputs.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    /// Its inode, when its directory's listing said (free there, a `stat` otherwise).
    pub ino: Option<u64>,
}

/// The index of each directory segments were listed in, read once.
#[derive(Default)]
struct Indexes {
    /// The index of the directory of the last lookup: a directory's segments are listed one
    /// after another, and hashing its path for each of a year of segments was a tenth of the
    /// listing.
    current: Option<(PathBuf, fantrace_schema::index::Lines)>,
    others: HashMap<PathBuf, fantrace_schema::index::Lines>,
}

impl Indexes {
    /// The segment as its directory's index describes it, if the line is of this very file
    /// (same inode: a segment replaced under the same name is opened instead).
    fn segment(&mut self, listed: &Listed) -> Option<Segment> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = listed.path.parent()?;
        if self
            .current
            .as_ref()
            .is_none_or(|(d, _)| d.as_os_str() != dir.as_os_str())
        {
            if let Some((d, index)) = self.current.take() {
                self.others.insert(d, index);
            }
            let index = self.others.remove(dir).unwrap_or_else(|| {
                fantrace_schema::index::read(dir).unwrap_or_else(|e| {
                    eprintln!(
                        "fantrace-analyzer: warning: {e}; its segments are opened one by one \
                         instead (slower on a large capture)"
                    );
                    Default::default()
                })
            });
            self.current = Some((dir.to_path_buf(), index));
        }
        let (_, index) = self.current.as_mut()?;
        if index.is_empty() {
            return None;
        }
        let name = listed.path.file_name()?.to_str()?;
        let ino = match listed.ino {
            Some(ino) => ino,
            None => std::fs::metadata(&listed.path).ok()?.ino(),
        };
        if index.get(name)?.ino != ino {
            return None;
        }
        // Taken, not copied: a file listed twice is opened the second time (and then left
        // out as the same segment).
        let entry = index.remove(name)?;
        Some(Segment::from_index(listed.path.clone(), entry))
    }
}

impl Segment {
    /// A segment in an object store known by its folder's index chunk, whose line the caller
    /// found to describe the object as listed ([`remote::IndexLine::describes`]).
    pub fn from_index_remote(
        object: remote::RemoteObject,
        entry: fantrace_schema::index::Entry,
    ) -> Segment {
        let url = format!("{}/{}", object.store_url, object.key);
        let mut segment = Segment::from_index(PathBuf::from(url), entry);
        segment.object = Some(object);
        segment
    }

    /// The first and last `time` its metadata records, in ns since the epoch.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let at = |key| crate::timespec::parse_written(self.meta(key)?);
        Some((at(keys::TIME_MIN)?, at(keys::TIME_MAX)?))
    }

    /// A segment known by its index line, not opened (see [`Segment::indexed`]).
    pub fn from_index(path: PathBuf, entry: fantrace_schema::index::Entry) -> Segment {
        let file = entry.file();
        let mut metadata = entry.metadata;
        metadata.insert(
            keys::SCHEMA_VERSION.into(),
            entry.schema_version.to_string(),
        );
        let (rows, bytes) = entry.largest_row_group;
        Segment {
            path,
            schema_version: entry.schema_version,
            metadata: Arc::new(metadata),
            footer: None,
            largest_row_group: RowGroupSize { rows, bytes },
            seal_intact: None,
            indexed: Some(file),
            object: None,
        }
    }
}

/// The segments with every metadata key: those known by their index line are opened (a few
/// at a time). For the commands that show or copy all of a segment's metadata.
pub async fn complete<'a>(
    segments: impl IntoIterator<Item = &'a Segment>,
) -> Result<Vec<Segment>, CaptureError> {
    let mut opened =
        futures::stream::iter(segments.into_iter().map(completed)).buffered(FOOTERS_AT_ONCE);
    let mut out = Vec::new();
    while let Some(segment) = opened.next().await {
        out.push(segment?);
    }
    Ok(out)
}

/// The segment with every metadata key, owning what it needs (no borrow of `segment`).
fn completed(segment: &Segment) -> impl Future<Output = Result<Segment, CaptureError>> + use<> {
    let done = segment.indexed.is_none().then(|| segment.clone());
    let path = segment.path.clone();
    let object = segment.object.clone();
    async move {
        match (done, object) {
            (Some(segment), _) => Ok(segment),
            (None, Some(object)) => remote::open_segment(object).await,
            (None, None) => open_in_pool(path).await,
        }
    }
}

/// [`open_segment`] on the blocking pool: decoding a footer is work, not waiting.
async fn open_in_pool(path: PathBuf) -> Result<Segment, CaptureError> {
    let on_pool = path.clone();
    tokio::task::spawn_blocking(move || open_segment(&on_pool))
        .await
        .unwrap_or_else(|e| {
            Err(CaptureError::NotParquet {
                path,
                reason: format!("decoding its footer failed: {e}"),
            })
        })
}

/// A segment's decoded footer: the one kept in memory, else read again.
pub async fn footer(segment: &Segment) -> Result<Arc<ParquetMetaData>, CaptureError> {
    match &segment.footer {
        Some(footer) => Ok(Arc::clone(&footer.metadata)),
        None => reopen(segment)
            .await?
            .footer
            .map(|f| f.metadata)
            .ok_or_else(|| CaptureError::NotParquet {
                path: segment.path.clone(),
                reason: "its footer could not be read again".to_string(),
            }),
    }
}

/// Expands each input (a segment file or a capture directory) into its segment files, sorted
/// by name. Temporary files of a segment still being written (`.name.tmp`) are never taken.
pub fn segment_paths(inputs: &[PathBuf]) -> Result<Vec<Listed>, CaptureError> {
    use std::os::unix::fs::DirEntryExt as _;
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
                    found.push(Listed {
                        path: entry.path(),
                        ino: Some(entry.ino()),
                    });
                }
            }
            if found.is_empty() {
                return Err(CaptureError::EmptyDir {
                    path: input.clone(),
                });
            }
            // By name: one directory's paths order as their names do, and comparing paths
            // component by component was a tenth of opening a year of segments.
            found.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
            out.extend(found);
        } else {
            out.push(Listed {
                path: input.clone(),
                ino: None,
            });
        }
    }
    Ok(out)
}

/// Opens `path`'s footer and checks it is a fantrace segment this analyzer can read.
pub fn open_segment(path: &Path) -> Result<Segment, CaptureError> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    // Non-blocking, so that a FIFO named like a segment cannot hang the open (no effect on
    // regular files).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|cause| CaptureError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
    let stat = file.metadata().map_err(|cause| CaptureError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let kind = stat.file_type();
    if !kind.is_file() {
        let kind = match () {
            _ if kind.is_fifo() => "a FIFO",
            _ if kind.is_socket() => "a socket",
            _ if kind.is_char_device() => "a character device",
            _ if kind.is_block_device() => "a block device",
            _ if kind.is_dir() => "a directory",
            _ => "not a file",
        };
        return Err(CaptureError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let modified = stat.modified().map_err(|cause| CaptureError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    // The footer and its embedded Arrow schema are foreign input: a decoder that panics on
    // them (arrow-ipc does on some corrupt schemas) makes this file bad, not the analyzer.
    let builder =
        crate::capture::foreign::decode(|| ParquetRecordBatchReaderBuilder::try_new(file))
            .map_err(|panic| CaptureError::NotParquet {
                path: path.to_path_buf(),
                reason: format!("decoding its footer failed: {panic}"),
            })?
            .map_err(|e| CaptureError::NotParquet {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
    from_footer(
        path.to_path_buf(),
        Arc::clone(builder.metadata()),
        builder.schema(),
        stat.len(),
        modified,
    )
}

/// Opens a segment again, wherever it is (for a footer not kept in memory).
pub async fn reopen(segment: &Segment) -> Result<Segment, CaptureError> {
    match &segment.object {
        Some(object) => crate::capture::remote::open_segment(object.clone()).await,
        None => open_segment(&segment.path),
    }
}

/// Checks a decoded footer (of a local file or an object) is a fantrace segment this analyzer
/// can read, and collects what the commands need from it.
pub fn from_footer(
    path: PathBuf,
    parquet: Arc<ParquetMetaData>,
    schema: &arrow::datatypes::SchemaRef,
    size: u64,
    modified: SystemTime,
) -> Result<Segment, CaptureError> {
    let path = path.as_path();
    let file_meta = parquet.file_metadata();
    let metadata: fantrace_schema::index::Metadata = file_meta
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|e| {
                    let key = fantrace_schema::index::static_key(&e.key);
                    e.value.clone().map(|v| (key, v))
                })
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
    let meta = &parquet;
    let (rows, bytes) = fantrace_schema::index::largest_row_group(meta);
    let largest_row_group = RowGroupSize { rows, bytes };
    let seal_intact = metadata.get(keys::METADATA_SHA256).map(|sealed| {
        let rows: Vec<i64> = meta.row_groups().iter().map(|rg| rg.num_rows()).collect();
        let digest = fantrace_schema::integrity::metadata_digest(metadata.iter(), &rows);
        &digest == sealed
    });
    Ok(Segment {
        path: path.to_path_buf(),
        schema_version: version,
        largest_row_group,
        seal_intact,
        metadata: Arc::new(metadata),
        object: None,
        indexed: None,
        footer: Some(Footer {
            metadata: parquet,
            size,
            modified,
        }),
    })
}

/// A segment's SHA-256 and that of its first `data_bytes` bytes, wherever it is.
pub async fn segment_digests(
    segment: &Segment,
    data_bytes: Option<u64>,
) -> Result<(String, Option<String>), CaptureError> {
    match &segment.object {
        Some(object) => crate::capture::remote::digests(object, data_bytes).await,
        None => digests(&segment.path, data_bytes),
    }
}

/// The whole file's SHA-256 and that of its first `data_bytes` bytes, in one read.
pub fn digests(
    path: &Path,
    data_bytes: Option<u64>,
) -> Result<(String, Option<String>), CaptureError> {
    use std::io::Read as _;
    let io = |cause| CaptureError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut digests = Digests::new(data_bytes);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        digests.update(&buf[..n]);
    }
    Ok(digests.finish())
}

/// The two digests of [`digests`], fed a chunk at a time.
pub struct Digests {
    whole: sha2::Sha256,
    data: sha2::Sha256,
    data_bytes: Option<u64>,
    seen: u64,
}

impl Digests {
    pub fn new(data_bytes: Option<u64>) -> Digests {
        use sha2::Digest as _;
        Digests {
            whole: sha2::Sha256::new(),
            data: sha2::Sha256::new(),
            data_bytes,
            seen: 0,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        use sha2::Digest as _;
        self.whole.update(chunk);
        if let Some(limit) = self.data_bytes
            && self.seen < limit
        {
            let take = ((limit - self.seen) as usize).min(chunk.len());
            self.data.update(&chunk[..take]);
        }
        self.seen += chunk.len() as u64;
    }

    pub fn finish(self) -> (String, Option<String>) {
        use sha2::Digest as _;
        let hex = |d: &[u8]| fantrace_schema::integrity::hex(d);
        let data = match self.data_bytes {
            Some(limit) if limit <= self.seen => Some(hex(&self.data.finalize())),
            Some(_) => Some("(the file is shorter than its data)".to_string()),
            None => None,
        };
        (hex(&self.whole.finalize()), data)
    }
}
