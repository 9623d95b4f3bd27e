//! `export`: a capture to hand to someone else. Selects calls from one or several captures (a
//! time window, processes, any SQL condition), optionally pseudonymizes or removes what would
//! identify people, hosts and files, and writes a capture every fantrace command opens: sealed
//! and chained segments whose metadata says where every row came from, signed on request.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use arrow::array::{ArrayRef, AsArray as _, StringArray, UInt32Array};
use arrow::datatypes::{DataType, UInt32Type};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use fantrace_schema::arrow::COLUMNS;
use fantrace_schema::metadata as keys;
use fantrace_schema::record::LossCause;

use crate::commands::selection::Selection;
use crate::output::{PendingDir, PendingFile};
use crate::share::pseudonym::{Field, Pseudonymizer, parse_fields};
use crate::share::signing::Signer;
use crate::share::write_capture::{CaptureWriter, Target, WriteOptions, prefix_for, write_stream};
use fantrace_engine::capture::{self, CaptureArgs, Segment};
use fantrace_engine::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// The capture to write: a directory of segments, or with `--single-file` one file.
    #[arg(long, short, required_unless_present = "dry_run")]
    pub output: Option<PathBuf>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write one segment file instead of a directory.
    #[arg(long)]
    pub single_file: bool,
    #[command(flatten)]
    pub selection: Selection,
    /// Replace these fields by keyed pseudonyms: comma-separated names among comm, exe,
    /// pathname, uid, gid, host, boot_id, container_id, command_line, or `all`.
    #[arg(long, value_name = "FIELDS")]
    pub pseudonymize: Option<String>,
    /// The pseudonym key file (created, mode 0600, if it does not exist). The same key gives
    /// the same pseudonyms in every export.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Remove these fields instead (same names, comma-separated).
    #[arg(long, value_name = "FIELDS")]
    pub redact: Option<String>,
    /// Show what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Sign every segment with this ed25519 secret key (`fantrace-analyzer keygen FILE`).
    #[arg(long, value_name = "FILE")]
    pub sign: Option<PathBuf>,
    /// Rows per segment at most (directory output).
    #[arg(long, default_value_t = 1_000_000)]
    pub segment_rows: u64,
}

/// A UDF replacing text (or bytes) by its pseudonym. Strings and binaries are read as bytes,
/// so a non-UTF-8 path gets the pseudonym of its exact bytes.
fn text_udf(name: &str, field: Field, input: DataType, pseudo: Arc<Pseudonymizer>) -> ScalarUDF {
    create_udf(
        name,
        vec![input],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let bytes = arrow::compute::cast(&arrays[0], &DataType::Binary)?;
            let bytes = bytes.as_binary::<i32>();
            let out: StringArray = bytes
                .iter()
                .map(|v| v.map(|v| pseudo.text(field, v)))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

fn id_udf(name: &str, field: Field, pseudo: Arc<Pseudonymizer>) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::UInt32],
        DataType::UInt32,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let ids = arrays[0].as_primitive::<UInt32Type>();
            let out: UInt32Array = ids.iter().map(|v| v.map(|v| pseudo.id(field, v))).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

/// The SQL expression each stored column is exported as.
fn column_expr(name: &str, pseudo: &[Field], redact: &[Field]) -> String {
    let p = |f: Field| pseudo.contains(&f);
    let r = |f: Field| redact.contains(&f);
    match name {
        "comm" if p(Field::Comm) => "pseudonymize_comm(comm)".into(),
        "comm" if r(Field::Comm) => "'redacted'".into(),
        "exe" if p(Field::Exe) => "pseudonymize_exe(exe)".into(),
        "exe" if r(Field::Exe) => "arrow_cast(NULL, 'Utf8')".into(),
        "pathname" if p(Field::Pathname) => {
            "pseudonymize_path(coalesce(arrow_cast(pathname_raw, 'Binary'), arrow_cast(pathname, 'Binary')))"
                .into()
        }
        "pathname" if r(Field::Pathname) => "arrow_cast(NULL, 'Utf8')".into(),
        "pathname_raw" if p(Field::Pathname) || r(Field::Pathname) => {
            "arrow_cast(NULL, 'Binary')".into()
        }
        // Where the object is: pseudonymized like the path given, so one path has one
        // pseudonym in both columns.
        "resolved_path" if p(Field::Pathname) => {
            "pseudonymize_path(arrow_cast(resolved_path, 'Binary'))".into()
        }
        "resolved_path" if r(Field::Pathname) => "arrow_cast(NULL, 'Utf8')".into(),
        "pathname_status" if r(Field::Pathname) => {
            "CASE WHEN pathname IS NULL THEN pathname_status ELSE 'redacted' END".into()
        }
        "uid" if p(Field::Uid) => "pseudonymize_uid(uid)".into(),
        "uid" if r(Field::Uid) => "arrow_cast(4294967295, 'UInt32')".into(),
        "gid" if p(Field::Gid) => "pseudonymize_gid(gid)".into(),
        "gid" if r(Field::Gid) => "arrow_cast(4294967295, 'UInt32')".into(),
        "host" if p(Field::Host) => "pseudonymize_host(host)".into(),
        "host" if r(Field::Host) => "'redacted'".into(),
        "boot_id" if p(Field::BootId) => "pseudonymize_boot_id(boot_id)".into(),
        "boot_id" if r(Field::BootId) => "'redacted'".into(),
        "container_id" if p(Field::ContainerId) => "pseudonymize_container_id(container_id)".into(),
        "container_id" if r(Field::ContainerId) => "arrow_cast(NULL, 'Utf8')".into(),
        other => other.to_string(),
    }
}

fn register_pseudonyms(ctx: &SessionContext, pseudo: &Arc<Pseudonymizer>) {
    for (name, field, input) in [
        ("pseudonymize_comm", Field::Comm, DataType::Utf8),
        ("pseudonymize_exe", Field::Exe, DataType::Utf8),
        ("pseudonymize_path", Field::Pathname, DataType::Binary),
        ("pseudonymize_host", Field::Host, DataType::Utf8),
        ("pseudonymize_boot_id", Field::BootId, DataType::Utf8),
        (
            "pseudonymize_container_id",
            Field::ContainerId,
            DataType::Utf8,
        ),
    ] {
        ctx.register_udf(text_udf(name, field, input, pseudo.clone()));
    }
    ctx.register_udf(id_udf("pseudonymize_uid", Field::Uid, pseudo.clone()));
    ctx.register_udf(id_udf("pseudonymize_gid", Field::Gid, pseudo.clone()));
}

/// A segment's window, if its metadata says.
fn window(segment: &Segment) -> (Option<i64>, Option<i64>) {
    let at = |k: &str| {
        segment
            .meta(k)
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .and_then(|t| t.timestamp_nanos_opt())
    };
    (at(keys::SEGMENT_START), at(keys::SEGMENT_END))
}

/// Whether a source segment's window meets the export window (unknown windows always do).
fn overlaps(segment: &Segment, since: Option<i64>, until: Option<i64>) -> bool {
    let (start, end) = window(segment);
    !(matches!((end, since), (Some(e), Some(s)) if e < s)
        || matches!((start, until), (Some(b), Some(u)) if b >= u))
}

pub async fn run(args: ExportArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let pseudo_fields = args
        .pseudonymize
        .as_deref()
        .map(parse_fields)
        .transpose()?
        .unwrap_or_default();
    let redact_fields = args
        .redact
        .as_deref()
        .map(parse_fields)
        .transpose()?
        .unwrap_or_default();
    if let Some(both) = pseudo_fields.iter().find(|f| redact_fields.contains(f)) {
        bail!(
            "{} is both pseudonymized and redacted; choose one",
            both.name()
        );
    }
    let pseudo = match (&args.key, pseudo_fields.is_empty()) {
        (Some(path), false) => {
            let (p, created) = Pseudonymizer::load_or_create(path)?;
            if created {
                eprintln!(
                    "fantrace-analyzer: created the pseudonym key {} (mode 0600): keep it to \
                     make the same pseudonyms again, never send it with the capture",
                    path.display()
                );
            }
            Some(Arc::new(p))
        }
        (None, false) => bail!(
            "--pseudonymize needs --key FILE: pseudonyms are keyed, so that only the key's \
             holder can link them to real values (the file is created if missing)"
        ),
        (_, true) => None,
    };
    let signer = args.sign.as_deref().map(Signer::load).transpose()?;

    let now = chrono::Utc::now();
    let mut captures = args.capture.clone();
    captures.window = args.selection.window(now)?;
    let (loaded, ctx) = session::open_captures(&captures, &opts).await?;
    if let Some(p) = &pseudo {
        register_pseudonyms(&ctx, p);
    }

    let selection = args.selection.resolve(&ctx, now).await?;
    let (filter, since, until) = (selection.clause, selection.since, selection.until);

    if args.dry_run {
        return dry_run(&ctx, &filter, &pseudo_fields, &redact_fields).await;
    }

    let select: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            format!(
                "{} AS {}",
                column_expr(c.name, &pseudo_fields, &redact_fields),
                c.name
            )
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM calls{filter} ORDER BY time, tid",
        select.join(", ")
    );
    let df = ctx
        .sql_with_options(&sql, session::read_only())
        .await
        .context("planning the export")?;

    // The export's metadata names its sources with all of theirs, which a segment known by
    // its index line has only once opened.
    let complete =
        capture::complete(loaded.segments.iter().filter(|s| overlaps(s, since, until))).await?;
    let sources: Vec<&Segment> = complete.iter().collect();
    let metadata = export_metadata(
        &args,
        &sources,
        pseudo.as_deref(),
        &pseudo_fields,
        &redact_fields,
    )?;
    let first_only = loss_metadata(&sources);
    let output = args
        .output
        .as_deref()
        .context("export needs --output PATH (only --dry-run goes without)")?;
    let target = if args.single_file {
        Target::File(PendingFile::create(output, args.force)?)
    } else {
        Target::Dir(PendingDir::create(output, args.force)?)
    };
    let writer = CaptureWriter::new(
        target,
        WriteOptions {
            max_rows: (!args.single_file).then_some(args.segment_rows.max(1)),
            metadata,
            first_only,
            since,
            until,
            signer,
            prefix: prefix_for(output),
        },
    )?;
    let stream = df.execute_stream().await.context("running the export")?;
    let written = write_stream(stream, writer, false).await?;
    println!(
        "fantrace-analyzer: exported {} call(s) from {} source segment(s) into {} segment(s), \
         {} bytes: {}",
        written.rows,
        sources.len(),
        written.segments,
        written.bytes,
        written.path.display()
    );
    if let Some(p) = &pseudo {
        println!(
            "pseudonymized: {} (key fingerprint {})",
            pseudo_fields
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", "),
            p.fingerprint()
        );
    }
    Ok(())
}

/// Every source segment's identity, and what the export did, as the provenance record.
fn export_metadata(
    args: &ExportArgs,
    sources: &[&Segment],
    pseudo: Option<&Pseudonymizer>,
    pseudo_fields: &[Field],
    redact_fields: &[Field],
) -> anyhow::Result<Vec<(String, String)>> {
    let raw_line: String = std::env::args().collect::<Vec<_>>().join(" ");
    let command_line = match pseudo {
        Some(p) => p.command_line(&raw_line),
        None if !redact_fields.is_empty() => {
            "fantrace-analyzer export (command line redacted)".into()
        }
        None => raw_line,
    };
    provenance_metadata(
        sources,
        pseudo,
        pseudo_fields,
        redact_fields,
        command_line,
        serde_json::json!({ "since": args.selection.since, "until": args.selection.until }),
    )
}

/// The metadata every written capture carries about where its rows came from: the sources'
/// hosts, kernels, attach modes and ia32 coverage, and a provenance record (the command
/// line, `extra`, and for every source segment its host, boot id, file name and SHA-256).
pub fn provenance_metadata(
    sources: &[&Segment],
    pseudo: Option<&Pseudonymizer>,
    pseudo_fields: &[Field],
    redact_fields: &[Field],
    command_line: String,
    extra: serde_json::Value,
) -> anyhow::Result<Vec<(String, String)>> {
    let masked = |field: Field, value: &str| -> String {
        match pseudo {
            Some(p) if pseudo_fields.contains(&field) => p.text(field, value.as_bytes()),
            _ if redact_fields.contains(&field) => "redacted".into(),
            _ => value.to_string(),
        }
    };
    let mut list = Vec::new();
    for s in sources {
        // Called from synchronous writing code inside the runtime: a remote source's digest
        // is read on this worker thread (the runtime is multi-threaded, so others go on).
        let (sha256, _) = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(fantrace_engine::capture::segment_digests(s, None))
        })
        .with_context(|| format!("reading {} for its digest", s.path.display()))?;
        list.push(serde_json::json!({
            "host": masked(Field::Host, s.meta(keys::HOSTNAME).unwrap_or("")),
            "boot_id": masked(Field::BootId, s.meta(keys::BOOT_ID).unwrap_or("")),
            "file": s.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "sha256": sha256,
            "recording_id": s.meta(keys::RECORDING_ID),
            "segment_seq": s.meta_u64(keys::SEGMENT_SEQ),
            "segment_start": s.meta(keys::SEGMENT_START),
            "segment_end": s.meta(keys::SEGMENT_END),
            "events_written": s.meta_u64(keys::EVENTS_WRITTEN),
            "events_lost": s.meta_u64(keys::EVENTS_LOST),
        }));
    }
    let mut provenance = serde_json::json!({
        "exported_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "exporter": concat!("fantrace-analyzer ", env!("CARGO_PKG_VERSION")),
        "command_line": command_line,
        "sources": list,
    });
    if let (Some(p), serde_json::Value::Object(extra)) = (provenance.as_object_mut(), extra) {
        p.extend(extra);
    }
    let distinct = |key: &str| {
        let mut v: Vec<&str> = sources.iter().filter_map(|s| s.meta(key)).collect();
        v.sort();
        v.dedup();
        v.join(",")
    };
    let blind: Vec<String> = sources
        .iter()
        .filter_map(|s| capture::ia32_gap(s))
        .collect();
    let ia32 = if blind.is_empty() {
        "yes".to_string()
    } else {
        let mut reasons = blind.clone();
        reasons.sort();
        reasons.dedup();
        format!(
            "no: {} of {} source segment(s): {}",
            blind.len(),
            sources.len(),
            reasons.join("; ")
        )
    };
    let mut meta = vec![
        (
            keys::RECORDER_VERSION.to_string(),
            concat!("fantrace-analyzer export ", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        (keys::KERNEL_RELEASE.into(), distinct(keys::KERNEL_RELEASE)),
        (keys::ATTACH_MODE.into(), distinct(keys::ATTACH_MODE)),
        (keys::IA32_COVERED.into(), ia32),
        (keys::COMMAND_LINE.into(), command_line),
        (keys::PROVENANCE.into(), provenance.to_string()),
    ];
    if !pseudo_fields.is_empty() {
        meta.push((
            keys::PSEUDONYMIZED.into(),
            pseudo_fields
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(","),
        ));
        if let Some(p) = pseudo {
            meta.push((keys::PSEUDONYM_KEY.into(), p.fingerprint()));
        }
    }
    if !redact_fields.is_empty() {
        meta.push((
            keys::REDACTED.into(),
            redact_fields
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    Ok(meta)
}

/// The losses of every source segment the window meets: their lost calls may have fallen in
/// it. Carried by the export's first segment.
pub fn loss_metadata(sources: &[&Segment]) -> Vec<(String, String)> {
    let sum = |key: &str| -> u64 { sources.iter().filter_map(|s| s.meta_u64(key)).sum() };
    let mut out = vec![(
        keys::EVENTS_LOST.to_string(),
        sum(keys::EVENTS_LOST).to_string(),
    )];
    for cause in LossCause::ALL {
        let key = format!("{}{}", keys::EVENTS_LOST_PREFIX, cause.name());
        out.push((key.clone(), sum(&key).to_string()));
    }
    out.push((
        keys::EVENTS_LOST_DISK_FULL.to_string(),
        sum(keys::EVENTS_LOST_DISK_FULL).to_string(),
    ));
    out
}

/// What an export would change, field by field, with a few examples; writes nothing.
async fn dry_run(
    ctx: &SessionContext,
    filter: &str,
    pseudo: &[Field],
    redact: &[Field],
) -> anyhow::Result<()> {
    let rows = session::run_sql(ctx, &format!("SELECT count(*) AS n FROM calls{filter}")).await?;
    let n = rows
        .first()
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
        })
        .map_or(0, |c| c.value(0));
    println!("dry run: {n} call(s) would be exported; nothing is written");
    let column_of = |f: Field| match f {
        Field::Pathname => Some((
            "pathname",
            "pseudonymize_path(coalesce(arrow_cast(pathname_raw, 'Binary'), \
             arrow_cast(pathname, 'Binary')))",
        )),
        Field::Comm => Some(("comm", "pseudonymize_comm(comm)")),
        Field::Exe => Some(("exe", "pseudonymize_exe(exe)")),
        Field::Uid => Some(("uid", "pseudonymize_uid(uid)")),
        Field::Gid => Some(("gid", "pseudonymize_gid(gid)")),
        Field::Host => Some(("host", "pseudonymize_host(host)")),
        Field::BootId => Some(("boot_id", "pseudonymize_boot_id(boot_id)")),
        Field::ContainerId => Some(("container_id", "pseudonymize_container_id(container_id)")),
        Field::CommandLine => None,
    };
    for f in pseudo {
        let Some((column, expr)) = column_of(*f) else {
            println!(
                "{}: the export's command line is pseudonymized in the metadata",
                f.name()
            );
            continue;
        };
        let inner = if *f == Field::Pathname {
            "DISTINCT pathname, pathname_raw".to_string()
        } else {
            format!("DISTINCT {column}")
        };
        let sql = format!(
            "SELECT arrow_cast({column}, 'Utf8') AS before, arrow_cast({expr}, 'Utf8') AS after \
             FROM (SELECT {inner} FROM calls{filter}) WHERE {column} IS NOT NULL ORDER BY 1 \
             LIMIT 5"
        );
        let distinct = session::run_sql(
            ctx,
            &format!("SELECT count(DISTINCT {column}) AS n FROM calls{filter}"),
        )
        .await?;
        let count = distinct
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()
            })
            .map_or(0, |c| c.value(0));
        println!(
            "{}: {count} distinct value(s) replaced by pseudonyms, e.g.:",
            f.name()
        );
        for batch in session::run_sql(ctx, &sql).await? {
            let before = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
            let after = arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
            let (before, after) = (before.as_string::<i32>(), after.as_string::<i32>());
            let cut = |v: &str| -> String {
                match v.char_indices().nth(60) {
                    Some((i, _)) => format!("{}…", &v[..i]),
                    None => v.to_string(),
                }
            };
            for i in 0..batch.num_rows() {
                println!("  {:?} -> {:?}", cut(before.value(i)), cut(after.value(i)));
            }
        }
    }
    for f in redact {
        println!(
            "{}: removed (NULL, 'redacted' or 4294967295, by column type)",
            f.name()
        );
    }
    Ok(())
}
