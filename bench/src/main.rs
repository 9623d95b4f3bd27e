//! `fantrace-bench`: runs every benchmark scenario and prints one table (figure, fantrace's
//! value, the peer's, their ratio, the target). Every ratio is measured against its own
//! baseline in the same invocation, repeated, and reported as a median.
mod analysis;
mod caller;
mod capture_cost;
mod fleet;
mod icount;
mod procfs;
mod queries;
mod reconcile;
mod reliability;
mod report;
mod stats;
mod synth;
mod tracer;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::caller::Mode;
use crate::capture_cost::Bench;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmarks fantrace against bare calls, bpftrace and DuckDB (needs root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the scenarios and print the table (the default).
    Run(RunArgs),
    /// The calling loop itself (the bench runs it in a child process).
    Call(caller::CallArgs),
    /// Write a synthetic capture of realistic shape.
    Synth(synth::SynthArgs),
    /// Count instructions per call inside the guest (the icount scenario runs this there).
    #[command(hide = true)]
    IcountInside(icount::InsideArgs),
    /// Hold files (and a fanotify group) open until killed: the reconcile scenario's crowd.
    #[command(hide = true)]
    Idle(reconcile::IdleArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Scratch directory for captures (the synthetic one is kept for reuse).
    #[arg(long, default_value = "/var/tmp/fantrace-bench")]
    work: PathBuf,
    /// Runs per measurement; medians are reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Length of the storm.
    #[arg(long, default_value_t = 10.0)]
    storm_seconds: f64,
    /// Calls per overhead run of the fast-failing loop (the real-mark loop makes a tenth).
    #[arg(long, default_value_t = 2_000_000)]
    calls: u64,
    /// Events in the synthetic capture the analyzer comparison reads.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Only these scenarios (comma-separated: overhead, storm, varied, analyzer, icount,
    /// startup, segments, fleet, reconcile; soak, segments100k and segments1m run only when
    /// named).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Events in the fleet scenario's synthetic multi-host capture.
    #[arg(long, default_value_t = 2_000_000)]
    fleet_events: u64,
    /// Length of the soak scenario, minutes.
    #[arg(long, default_value_t = 30.0)]
    soak_minutes: f64,
    /// Calls per loop in the icount scenario (instructions per call in the 6.1 guest).
    #[arg(long, default_value_t = 100_000)]
    icount_calls: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Call(args)) => caller::run(&args),
        Some(Cmd::Synth(args)) => synth::run(&args),
        Some(Cmd::IcountInside(args)) => icount::inside(&args),
        Some(Cmd::Idle(args)) => reconcile::idle(&args),
        Some(Cmd::Run(args)) => run(&args),
        None => run(&cli.run),
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "fantrace-bench loads the probe and bpftrace: run it as root (sudo ./fantrace.sh bench)"
        );
    }
    let bin_dir = std::env::current_exe()
        .context("locating the bench binary")?
        .parent()
        .context("the bench binary has no directory")?
        .to_path_buf();
    for needed in ["fantrace-recorder", "fantrace-analyzer"] {
        if !bin_dir.join(needed).exists() {
            bail!(
                "{} is missing next to the bench: build the workspace first (cargo build --release --workspace --bins)",
                bin_dir.join(needed).display()
            );
        }
    }
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("creating {}", args.work.display()))?;
    // A peer that cannot attach (tracefs not mounted on a fresh machine) is named in the
    // header and left out of the rows, not a reason to stop.
    let bpftrace = tracer::bpftrace_peer(capture_cost::BPFTRACE_COUNT);
    let duckdb = queries::duckdb_version();
    let bench = Bench {
        bin_dir,
        work: args.work.clone(),
        repeat: args.repeat.max(1),
        bpftrace: bpftrace.is_ok(),
        duckdb: duckdb.is_some(),
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "fantrace-bench {}: Linux {}, {cpus} CPUs; peers: {}, {}; medians of {} runs",
        env!("CARGO_PKG_VERSION"),
        kernel.trim(),
        match &bpftrace {
            Ok(version) => version,
            Err(why) => why,
        },
        duckdb.map_or(
            "DuckDB MISSING (pip install duckdb)".to_string(),
            |v| format!("DuckDB {v}")
        ),
        bench.repeat
    );
    let wanted = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut rows = Vec::new();
    if wanted("overhead") {
        eprintln!("overhead: calling loops bare, under fantrace and under bpftrace");
        rows.push(bench.overhead(
            Mode::Fail,
            args.calls,
            "capture overhead, fast-failing loop (ratio to bare)",
            Some(3.0),
        )?);
        rows.push(bench.overhead(
            Mode::Mark,
            (args.calls / 10).max(1000),
            "capture overhead, real add/remove marks (ratio to bare)",
            Some(1.3),
        )?);
        rows.push(bench.overhead(
            Mode::Other,
            args.calls,
            "cost to every other syscall, getppid loop (ratio to bare)",
            None,
        )?);
    }
    if wanted("storm") {
        eprintln!(
            "storm: one core calling flat out for {} s",
            args.storm_seconds
        );
        rows.extend(bench.storm(args.storm_seconds)?);
    }
    if wanted("varied") {
        eprintln!("varied: named processes, varied paths and flags");
        rows.push(bench.varied(args.storm_seconds / 2.0)?);
    }
    if wanted("icount") {
        eprintln!("icount: instructions per call in the Debian 6.1 guest (QEMU -icount shift=0)");
        rows.extend(bench.instructions(args.icount_calls)?);
    }
    if wanted("reconcile") {
        eprintln!(
            "reconcile: the recorder keeping in step with the kernel among {} processes",
            reconcile::PROCESSES
        );
        rows.extend(bench.reconcile()?);
    }
    if wanted("analyzer") {
        eprintln!("analyzer: fantrace-analyzer and DuckDB on the same capture");
        let capture = bench.synthetic(args.events)?;
        rows.push(bench.startup(&capture)?);
        rows.extend(bench.queries(&capture)?);
    }
    if wanted("startup") {
        eprintln!("startup: recorder start to recording");
        rows.extend(bench.recorder_startup()?);
    }
    if wanted("segments") {
        eprintln!("segments: a capture of 5,000 small segments (17 days at 5-minute rotation)");
        rows.extend(bench.many_segments(5_000)?);
    }
    if args.only.iter().any(|o| o == "segments100k") {
        eprintln!("segments100k: a year at 5-minute rotation, 100,000 segments");
        rows.extend(bench.many_segments(100_000)?);
    }
    if args.only.iter().any(|o| o == "segments1m") {
        eprintln!("segments1m: ten years at 5-minute rotation, 1,000,000 segments (12 GB)");
        rows.extend(bench.many_segments(1_000_000)?);
    }
    if wanted("fleet") {
        eprintln!("fleet: upload to S3 (Garage), and the forensic queries on a Ballista cluster");
        rows.extend(bench.fleet(args.fleet_events)?);
    }
    if args.only.iter().any(|o| o == "soak") {
        eprintln!(
            "soak: {} min of storms, SIGKILLs and full disks",
            args.soak_minutes
        );
        rows.extend(bench.soak(args.soak_minutes)?);
    }
    println!();
    print!("{}", report::markdown(&rows));
    Ok(())
}
