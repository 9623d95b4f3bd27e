//! `query`: run one SQL statement over the captures and print or save the result.
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::capture::{self, CaptureArgs};
use crate::format::{self, Format};
use crate::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Output format; `parquet` needs `--output`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the result to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
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
    /// The SQL statement; tables: events, stats. Without it (and without -f), the SQL is read
    /// from standard input.
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

pub async fn run(args: QueryArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let sql = read_sql(&args)?;
    let started = std::time::Instant::now();
    let loaded = capture::load(&args.capture)?;
    capture::warn_about_gaps(&loaded.segments);
    let ctx = session::open(&loaded.segments, &opts).await?;
    let batches = session::run_sql(&ctx, &sql).await?;
    match (&args.output, args.format) {
        (None, Format::Parquet) => bail!("--format parquet writes a file: add --output FILE"),
        (Some(path), fmt) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating output file {}", path.display()))?;
            format::write_to_file(fmt, &batches, args.max_width, file)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        (None, fmt) => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            format::write(fmt, &batches, args.max_width, &mut out)?;
            out.flush()?;
        }
    }
    if args.timing {
        eprintln!("Run Time: {:.6} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
