//! `query`: run one SQL statement over the captures and print the result.
use std::path::PathBuf;

use anyhow::Context as _;

use crate::capture;
use crate::format::{self, Format};
use crate::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// A capture directory or segment file; repeat for several.
    #[arg(long = "capture", short = 'c', required = true)]
    pub captures: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// In table output, cut text cells to this many characters (0: never).
    #[arg(long, default_value_t = 64)]
    pub max_width: usize,
    /// The SQL statement. Tables: events, stats.
    pub sql: String,
}

pub async fn run(args: QueryArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let paths = capture::segment_paths(&args.captures)?;
    let mut segments = Vec::with_capacity(paths.len());
    for path in &paths {
        segments.push(capture::open_segment(path)?);
    }
    let lost: u64 = segments
        .iter()
        .filter_map(|s| s.meta_u64(fantrace_schema::metadata::EVENTS_LOST))
        .sum();
    if lost > 0 {
        eprintln!(
            "fantrace-analyzer: warning: the probe could not deliver {lost} call(s) while these \
             captures were recorded; results are incomplete (see the stats table)"
        );
    }
    let ctx = session::open(&segments, &opts).await?;
    let df = ctx
        .sql_with_options(&args.sql, session::read_only())
        .await
        .with_context(|| format!("in SQL statement {:?}", args.sql))?;
    let batches = df
        .collect()
        .await
        .with_context(|| format!("running SQL statement {:?}", args.sql))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    format::write(args.format, &batches, args.max_width, &mut out)?;
    Ok(())
}
