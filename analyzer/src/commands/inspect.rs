//! `inspect`: what a capture holds: its segments, hosts, time span, events, losses, schema
//! versions, and every segment that could not be read and why.
use crate::format::{self, Format};
use fantrace_engine::capture::{self, CaptureArgs};
use fantrace_engine::session::{self, SessionOptions};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
}

pub async fn run(mut args: InspectArgs, opts: SessionOptions) -> anyhow::Result<()> {
    // Inspect exists to show what is wrong with a capture: never stop at a bad segment.
    args.capture.skip_bad = true;
    let loaded = capture::load(
        &args.capture,
        capture::Checks::for_queries(opts.memory_limit),
    )
    .await?;
    let ctx = session::open(&loaded.segments, &opts).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let summary = session::run_sql(
        &ctx,
        "SELECT count(*) AS segments, count(DISTINCT hostname) AS hosts, \
         min(segment_start) AS first_start, max(segment_end) AS last_end, \
         sum(events_written) AS events, sum(events_lost) AS lost, \
         min(schema_version) AS min_schema, max(schema_version) AS max_schema FROM stats",
    )
    .await?;
    format::write(Format::Table, &summary, 0, &mut out)?;
    let per_segment = session::run_sql(
        &ctx,
        "SELECT segment, hostname, kernel_release, segment_start, segment_end, \
         events_written, events_lost, stop_reason FROM stats ORDER BY segment_start, segment",
    )
    .await?;
    format::write(Format::Table, &per_segment, 0, &mut out)?;
    use std::io::Write as _;
    let attach = session::run_sql(
        &ctx,
        "SELECT attach_mode, ia32_covered, count(*) AS segments FROM stats \
         GROUP BY attach_mode, ia32_covered ORDER BY attach_mode, ia32_covered",
    )
    .await?;
    format::write(Format::Table, &attach, 0, &mut out)?;
    if let Some(warning) = capture::ia32_warning(&loaded.segments) {
        writeln!(out, "warning: {warning}")?;
    }
    if loaded.bad.is_empty() {
        writeln!(out, "every segment is readable")?;
    } else {
        writeln!(out, "{} unreadable input(s):", loaded.bad.len())?;
        for bad in &loaded.bad {
            writeln!(out, "  {bad}")?;
        }
    }
    Ok(())
}
