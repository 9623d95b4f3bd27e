//! `query`: run one SQL statement over the captures and print or save the result.
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use datafusion::prelude::SessionContext;

use crate::format::{self, Format};
use crate::output::{OutputArgs, PendingFile};
use crate::share::write_capture::{CaptureWriter, Target, WriteOptions, as_stored, prefix_for};
use fantrace_engine::capture::{CaptureArgs, Segment};
use fantrace_engine::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Output format; `parquet` needs `--output`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputArgs,
    /// In table output, cut text cells to this many characters (0: never).
    #[arg(long, default_value_t = 64)]
    pub max_width: usize,
    /// Read the SQL from this file (`-` for standard input).
    #[arg(long = "file", short = 'f', conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// After the result, print on standard error how long opening the capture and running the
    /// query took (process start-up excluded), like DuckDB's `.timer on`.
    #[arg(long)]
    pub timing: bool,
    /// Only calls at or after this time (RFC 3339, a date, or a span back from now: 90s, 15m,
    /// 1h, 2d, 1w): every table then holds only the window's calls, and segments outside it
    /// are never opened (in an object store, only the days that can hold it are listed).
    #[arg(long)]
    pub since: Option<String>,
    /// Only calls before this time (same forms).
    #[arg(long)]
    pub until: Option<String>,
    /// The SQL statement. Tables: events (one row per fanotify_mark call), inits (one per
    /// fanotify_init call), calls (both, as stored), stats (one row per segment). Without it
    /// (and without -f), the SQL is read from standard input.
    pub sql: Option<String>,
}

fn read_sql(args: &QueryArgs) -> anyhow::Result<String> {
    let from_stdin = || -> anyhow::Result<String> {
        if std::io::stdin().is_terminal() {
            bail!("no SQL given: pass it as an argument, with -f FILE, or on standard input");
        }
        let mut sql = String::new();
        std::io::stdin()
            .read_to_string(&mut sql)
            .context("reading SQL from standard input")?;
        Ok(sql)
    };
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => from_stdin()?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading SQL from {}", path.display()))?,
        (None, None) => from_stdin()?,
    };
    if sql.trim().is_empty() {
        bail!("the SQL statement is empty");
    }
    Ok(sql)
}

pub async fn run(mut args: QueryArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let sql = read_sql(&args)?;
    let started = std::time::Instant::now();
    args.capture.window = fantrace_engine::timespec::window(
        args.since.as_deref(),
        args.until.as_deref(),
        chrono::Utc::now(),
    )
    .map_err(anyhow::Error::msg)?;
    let opts = SessionOptions {
        plan_marks: session::may_name_marks(&sql),
        ..opts
    };
    let (loaded, ctx) = session::open_captures(&args.capture, &opts).await?;
    deliver(
        &ctx,
        &sql,
        args.format,
        args.max_width,
        &args.output,
        &loaded.segments,
    )
    .await?;
    if args.timing {
        eprintln!("Run Time: {:.6} s", started.elapsed().as_secs_f64());
        if let Some(line) = loaded.windowed.summary(args.capture.window) {
            eprintln!("Window: {line}");
        }
        if let Some(line) = session::pruning(&ctx).and_then(|p| p.summary()) {
            eprintln!("Segments: {line}");
        }
    }
    // The answer is out and the process ends: freeing a year of segments' entries one by one
    // took 0.4 s more (the spill directory is owned elsewhere and still removed).
    std::mem::forget((loaded, ctx));
    Ok(())
}

/// Runs `sql` and puts its result where the user asked: standard output, or a file written as
/// `output` says (mode 0600, never over an existing file without --force, whole or not at all).
/// A Parquet result whose rows are calls (every stored column of `events` or `calls`) becomes
/// a capture, sealed and with its provenance, that fantrace opens like a recorded one.
pub async fn deliver(
    ctx: &SessionContext,
    sql: &str,
    format: Format,
    max_width: usize,
    output: &OutputArgs,
    sources: &[Segment],
) -> anyhow::Result<()> {
    let progress = crate::progress::ScanProgress::start(ctx);
    let (schema, batches) = session::run_sql_with_schema(ctx, sql).await?;
    // Gone before the answer is printed to the same terminal.
    drop(progress);
    let Some(path) = &output.output else {
        if let Format::Parquet = format {
            bail!("--format parquet writes a file: add --output FILE");
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        format::write(format, &batches, max_width, &mut out)?;
        out.flush()?;
        return Ok(());
    };
    let pending = PendingFile::create(path, output.force)?;
    if let Format::Parquet = format {
        let has_syscall = schema.field_with_name("syscall").is_ok();
        let empty = arrow::array::RecordBatch::new_empty(schema.clone());
        let rows_are_calls = as_stored(batches.first().unwrap_or(&empty), !has_syscall)?.is_some();
        if rows_are_calls {
            let sources = fantrace_engine::capture::complete(sources).await?;
            return write_as_capture(sql, &batches, !has_syscall, pending, path, &sources);
        }
        eprintln!(
            "fantrace-analyzer: note: the result has not every stored column of events, so {} \
             is plain Parquet, not a capture; to share calls, select them with \
             `fantrace-analyzer export --where ...`",
            path.display()
        );
        format::write_parquet(schema, &batches, pending.file()?)
            .with_context(|| format!("writing {}", path.display()))?;
    } else {
        let mut out = std::io::BufWriter::new(pending.file()?);
        format::write(format, &batches, max_width, &mut out)
            .and_then(|()| out.flush().map_err(Into::into))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    pending.commit()?;
    Ok(())
}

fn write_as_capture(
    sql: &str,
    batches: &[arrow::array::RecordBatch],
    events_only: bool,
    pending: PendingFile,
    path: &std::path::Path,
    sources: &[Segment],
) -> anyhow::Result<()> {
    let sources: Vec<&Segment> = sources.iter().collect();
    let command_line: String = std::env::args().collect::<Vec<_>>().join(" ");
    let metadata = crate::share::export::provenance_metadata(
        &sources,
        None,
        &[],
        &[],
        command_line,
        serde_json::json!({ "query": sql }),
    )?;
    let mut writer = CaptureWriter::new(
        Target::File(pending),
        WriteOptions {
            max_rows: None,
            metadata,
            first_only: crate::share::export::loss_metadata(&sources),
            since: None,
            until: None,
            signer: None,
            prefix: prefix_for(path),
        },
    )?;
    for b in batches {
        let stored = as_stored(b, events_only)?.context("a result batch lost a stored column")?;
        writer.write(&stored)?;
    }
    let written = writer.finish()?;
    eprintln!(
        "fantrace-analyzer: wrote {} call(s) as a capture: {}",
        written.rows,
        written.path.display()
    );
    Ok(())
}
