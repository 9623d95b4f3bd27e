//! fantrace-recorder: records every fanotify_mark(2) call on this machine into a capture
//! directory of zstd-compressed Parquet segments.
//!
//! Data path: probe.rs (load, attach) → drain.rs (ring buffer) → batch.rs (Arrow rows) →
//! writer.rs (writer thread) → segment.rs (Parquet file, fsync, rename).
mod batch;
mod clock;
mod drain;
mod host;
mod output;
mod probe;
mod segment;
mod writer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Parser;

/// Record fanotify_mark(2) calls system-wide into zstd-compressed Parquet (needs root).
#[derive(Parser, Debug)]
#[command(name = "fantrace-recorder", version)]
struct Cli {
    /// Capture directory. Created (mode 0700) if missing; its parent must exist.
    #[arg(long, short)]
    output: PathBuf,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM).
    #[arg(long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Size of the kernel ring buffer in bytes (a power of two).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    ring_buffer: u32,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FANTRACE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fantrace-recorder: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    probe::require_root()?;
    let dest = output::Destination::check(&cli.output)?;
    let (mut probe, events) = probe::Probe::load_and_attach(&probe::ProbeOptions {
        ring_buffer_bytes: cli.ring_buffer,
    })?;
    dest.create()?;
    let clock_offset_ns = clock::boot_to_wall_offset_ns();
    let (tx, writer) = writer::spawn(writer::WriterConfig {
        dir: dest.dir.clone(),
        host: host::HostInfo::read(),
        clock_offset_ns,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
    })?;
    println!(
        "fantrace-recorder: recording fanotify_mark calls into {} (Ctrl-C to stop)",
        dest.dir.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut batcher = batch::Batcher::new(clock_offset_ns);
    let drained = runtime.block_on(drain::record(
        &mut probe,
        events,
        &mut batcher,
        &tx,
        cli.duration,
    ));
    let lost = probe.loss_counts()?;
    let stop_reason = match &drained {
        Ok(d) => d.reason.to_string(),
        Err(e) => format!("error: {e:#}"),
    };
    // If the writer already failed, its own error (joined below) is the one to report.
    let _ = tx.send(writer::ToWriter::Finish {
        lost,
        stop_reason: stop_reason.clone(),
    });
    drop(tx);
    let summary = writer
        .join()
        .map_err(|_| anyhow!("the writer thread panicked"))??;
    let drained = drained?;
    println!(
        "fantrace-recorder: stopped ({stop_reason}): {} calls recorded, {} lost, {} bytes in {} segment(s) under {}",
        drained.events,
        lost.total(),
        summary.bytes,
        summary.segments.len(),
        dest.dir.display()
    );
    Ok(())
}
