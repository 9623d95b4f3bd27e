//! `report`: one self-contained HTML file a person can look at and attach to a ticket: the
//! capture's hosts, span and losses, a timeline of calls per process, the marks in force at
//! the end and the playbook findings with their rows. Nothing in it is fetched when it is
//! opened (no scripts, fonts or images from elsewhere): it reads the same offline.
mod gather;
mod page;
mod timeline;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use fantrace_engine::capture::CaptureArgs;
use fantrace_engine::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// The HTML file to write (mode 0600; replaced if it exists).
    #[arg(long, short = 'o', default_value = "report.html")]
    pub output: PathBuf,
    /// Seconds the tables (marks in force at the end, playbook findings) may take together
    /// after the summary and timeline; a table that does not fit is left out, and the report
    /// says which and how to get it.
    #[arg(long, default_value_t = 6.0)]
    pub budget: f64,
}

pub async fn run(args: ReportArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (loaded, ctx) = session::open_captures(&args.capture, &opts).await?;
    let budget = std::time::Duration::try_from_secs_f64(args.budget)
        .with_context(|| format!("--budget {}: give seconds, like 6 or 0.5", args.budget))?;
    let report = gather::gather(&ctx, budget).await?;
    let svg = timeline::draw(&report)?;
    let sources: Vec<String> = args
        .capture
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let html = page::render(&report, &svg, &sources, &loaded.bad)?;
    // Like every output: private (it names paths and processes), written beside its
    // destination and renamed into place once on disk. An existing report is replaced.
    let pending = crate::output::PendingFile::create(&args.output, true)?;
    pending
        .file()?
        .write_all(html.as_bytes())
        .with_context(|| format!("writing the report for {}", args.output.display()))?;
    pending.commit()?;
    eprintln!(
        "wrote {} ({} KiB, {} calls, {} processes drawn) in {:.2} s",
        args.output.display(),
        html.len().div_ceil(1024),
        report.summary.written,
        report.lanes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
