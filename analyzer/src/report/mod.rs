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

use crate::capture::CaptureArgs;
use crate::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// The HTML file to write (replaced if it exists).
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
    // Written next to its destination and renamed: a reader never sees half a report.
    let dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.1
        .write_all(html.as_bytes())
        .with_context(|| format!("writing {}", tmp.0.display()))?;
    drop(tmp.1);
    std::fs::rename(&tmp.0, &args.output).with_context(|| {
        format!(
            "moving the report into place at {} (is the directory writable?)",
            args.output.display()
        )
    })?;
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

fn tempfile_in(dir: &std::path::Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".fantrace-report-{}.tmp", std::process::id()));
    let file = std::fs::File::create(&path).with_context(|| {
        format!(
            "creating {} for the report (does the directory exist and is it writable?)",
            path.display()
        )
    })?;
    Ok((path, file))
}
