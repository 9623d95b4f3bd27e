//! fantrace-recorder: records every fanotify_mark(2) call on this machine into a capture
//! directory of zstd-compressed Parquet segments.
//!
//! Data path: kernel.rs (can this kernel run it) → probe.rs (load) → attach.rs (fentry or
//! tracepoints) → drain.rs (ring buffer) → batch.rs (Arrow rows) → writer.rs (writer thread)
//! → segment.rs (Parquet file, fsync, rename).
mod attach;
mod batch;
mod btf;
mod clock;
mod drain;
mod enrich;
mod host;
mod kernel;
mod output;
mod probe;
mod segment;
mod status;
mod tracefs;
mod writer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
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
    /// Also print each call as it is recorded, strace-style, on standard output.
    #[arg(long)]
    print: bool,
    /// Stop after recording this many calls.
    #[arg(long)]
    max_events: Option<u64>,
    /// Size of the kernel ring buffer in bytes (a power of two). The default holds about
    /// 70,000 calls, 50 ms of one core calling flat out; the recorder maps it twice, so it
    /// counts double in its resident memory.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    ring_buffer: u32,
    /// Start a new segment when the open one reaches this many bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    rotate_size: u64,
    /// Start a new segment after this many seconds, even when idle (an empty segment shows the
    /// recorder was running and saw nothing).
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    rotate_interval: Duration,
    /// When the disk fills: stop with an error, or drop and count calls until space is back.
    #[arg(long, value_enum, default_value_t = writer::OnDiskFull::Stop)]
    on_disk_full: writer::OnDiskFull,
    /// Keep only the newest N finished segments, removing older ones (0: keep all).
    #[arg(long, default_value_t = 0)]
    keep: usize,
    /// Record only this process (repeatable); filtered in the kernel.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Never record this process (repeatable).
    #[arg(long = "exclude-pid")]
    exclude_pids: Vec<u32>,
    /// Record only calls by this user id (repeatable).
    #[arg(long = "uid")]
    uids: Vec<u32>,
    /// Never record calls by this user id (repeatable).
    #[arg(long = "exclude-uid")]
    exclude_uids: Vec<u32>,
    /// Record only threads with this name (comm, at most 15 bytes; repeatable).
    #[arg(long = "comm", value_parser = parse_comm)]
    comms: Vec<[u8; 16]>,
    /// Never record threads with this name (repeatable).
    #[arg(long = "exclude-comm", value_parser = parse_comm)]
    exclude_comms: Vec<[u8; 16]>,
    /// Record only processes in this cgroup v2: a path under /sys/fs/cgroup or a cgroup id
    /// (repeatable). A process in a child cgroup is not included.
    #[arg(long = "cgroup", value_parser = parse_cgroup)]
    cgroups: Vec<u64>,
    /// Never record processes in this cgroup (repeatable).
    #[arg(long = "exclude-cgroup", value_parser = parse_cgroup)]
    exclude_cgroups: Vec<u64>,
    /// How to hook the syscalls: fentry/fexit (BPF trampolines: no cost to other syscalls),
    /// syscall tracepoints (every kernel, but every syscall on the machine pays), or auto
    /// (fentry where the kernel has it).
    #[arg(long, value_enum, default_value_t = attach::AttachMode::Auto)]
    attach: attach::AttachMode,
    /// Record 32-bit (ia32) calls. fentry mode does so at no extra cost; in tracepoint mode it
    /// takes the raw syscall tracepoints, a program run for every syscall on the machine, where
    /// `off` uses the per-syscall tracepoints instead (cheaper for other syscalls, blind to
    /// 32-bit calls).
    #[arg(long, value_enum, default_value_t = attach::Ia32::On)]
    ia32: attach::Ia32,
}

fn parse_comm(s: &str) -> Result<[u8; 16], String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "{s:?}: a thread name is 1 to 15 bytes (the kernel's comm is cut to 15)"
        ));
    }
    let mut out = [0u8; 16];
    out[..s.len()].copy_from_slice(s.as_bytes());
    Ok(out)
}

/// A cgroup v2 id is the inode number of its directory.
fn parse_cgroup(s: &str) -> Result<u64, String> {
    if let Ok(id) = s.parse::<u64>() {
        return Ok(id);
    }
    let path = if s.starts_with("/sys/fs/cgroup") {
        PathBuf::from(s)
    } else {
        PathBuf::from("/sys/fs/cgroup").join(s.trim_start_matches('/'))
    };
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(&path).map(|m| m.ino()).map_err(|e| {
        format!(
            "cgroup {}: {e} (give a path under /sys/fs/cgroup or an id)",
            path.display()
        )
    })
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
    // Past a file-size limit (prlimit --fsize) a write must fail with EFBIG and be reported
    // like any other write error, not kill the recorder with SIGXFSZ mid-segment.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    probe::require_root()?;
    let dest = output::Destination::check(&cli.output)?;
    if cli.rotate_interval.is_zero() {
        anyhow::bail!("--rotate-interval must be more than 0 seconds");
    }
    let (mut probe, events, attachment) = probe::Probe::load_and_attach(&probe::ProbeOptions {
        ring_buffer_bytes: cli.ring_buffer,
        filters: probe::Filters {
            pids: cli.pids.clone(),
            exclude_pids: cli.exclude_pids.clone(),
            uids: cli.uids.clone(),
            exclude_uids: cli.exclude_uids.clone(),
            comms: cli.comms.clone(),
            exclude_comms: cli.exclude_comms.clone(),
            cgroups: cli.cgroups.clone(),
            exclude_cgroups: cli.exclude_cgroups.clone(),
        },
        attach: cli.attach,
        ia32: cli.ia32,
    })?;
    tracing::info!(
        "attached with {} ({}): {}; 32-bit calls covered: {}",
        attachment.mode,
        attachment.reason,
        attachment.points.join(", "),
        attachment.ia32.metadata_value()
    );
    // Loading parsed the kernel's whole BTF (tens of MiB, freed by now); hand that memory
    // back so a recorder running for days does not keep it resident.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    dest.create()?;
    let clock_offset_ns = clock::boot_to_wall_offset_ns();
    let lost_cell = Arc::new(Mutex::new(probe::LossCounts::default()));
    let progress = Arc::new(status::WriterProgress::default());
    let host = host::HostInfo::read();
    let origin = fantrace_schema::arrow::Origin {
        host: host.hostname.clone(),
        boot_id: host.boot_id.clone(),
    };
    let writer::WriterHandle {
        tx,
        stopped,
        thread: writer,
    } = writer::spawn(writer::WriterConfig {
        dir: dest.dir.clone(),
        host,
        clock_offset_ns,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        rotate_size: cli.rotate_size,
        rotate_interval: cli.rotate_interval,
        keep: cli.keep,
        lost: lost_cell.clone(),
        progress: progress.clone(),
        on_disk_full: cli.on_disk_full,
        attachment,
    })?;
    println!(
        "fantrace-recorder: recording fanotify_mark calls into {} (Ctrl-C to stop)",
        dest.dir.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut batcher = batch::Batcher::new(clock_offset_ns, origin);
    let drained = runtime.block_on(drain::record(
        &mut probe,
        events,
        &mut batcher,
        &tx,
        stopped,
        drain::DrainOptions {
            duration: cli.duration,
            rotate_interval: cli.rotate_interval,
            max_events: cli.max_events,
            lost: lost_cell,
            progress,
            print: cli.print,
        },
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
        "fantrace-recorder: stopped ({stop_reason}): {} calls recorded, {} lost, {} dropped (disk full), {} bytes in {} segment(s) under {}",
        drained.events,
        lost.total(),
        summary.dropped_disk_full,
        summary.bytes,
        summary.segments,
        dest.dir.display()
    );
    Ok(())
}
