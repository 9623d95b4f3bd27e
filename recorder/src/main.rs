//! fantrace-recorder: records every fanotify_mark(2) call on this machine into a capture
//! directory of zstd-compressed Parquet segments.
//!
//! Data path: kernel.rs (can this kernel run it) → probe.rs (load) → attach.rs (fentry or
//! tracepoints) → drain.rs (ring buffer) → batch.rs (Arrow rows) → writer.rs (writer thread)
//! → segment.rs (Parquet file, fsync, rename).
mod attach;
mod batch;
mod btf;
mod cli;
mod clock;
mod drain;
mod enrich;
mod host;
mod kernel;
mod lock;
mod output;
mod owners;
mod probe;
mod segment;
mod state;
mod status;
mod tracefs;
mod upload;
mod writer;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use clap::Parser as _;

use crate::cli::Cli;

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
    // Opening the store checks the URL and the credentials' form without contacting it: a
    // store that cannot be reached now is retried for as long as the recorder runs.
    let upload_to = cli
        .upload
        .as_deref()
        .map(|url| fantrace_storage::open(url, cli.endpoint.as_deref()))
        .transpose()
        .context("--upload")?;
    if cli.upload_only {
        let location = upload_to.context("--upload-only needs --upload")?;
        return upload_only(&cli, location);
    }
    probe::require_root()?;
    let kernel_types = probe::KernelTypes::prepare();
    let signals = drain::stop_signals()?;
    let dest = output::Destination::check(&cli.output)?;
    if cli.rotate_interval.is_zero() {
        anyhow::bail!("--rotate-interval must be more than 0 seconds");
    }
    // A store's readers find a segment under the day it started and expect it to end within
    // a day (see fantrace_storage::layout::days_for).
    if upload_to.is_some() && cli.rotate_interval > std::time::Duration::from_secs(86_400) {
        anyhow::bail!(
            "--rotate-interval {} s is over a day, which --upload does not take: segments in a \
             store are found by the day they start; use --rotate-interval 24h or less",
            cli.rotate_interval.as_secs()
        );
    }
    // The directory and its lock come first: a second recorder on it must fail before it
    // attaches anything. A start that fails after this takes the directory away again.
    let created = dest.create()?;
    let lock = match lock::CaptureLock::acquire(&dest.dir) {
        Ok(l) => l,
        Err(e) => {
            dest.remove_if_created(created);
            return Err(e);
        }
    };
    let filters = probe::Filters {
        pids: cli.pids.clone(),
        exclude_pids: cli.exclude_pids.clone(),
        uids: cli.uids.clone(),
        exclude_uids: cli.exclude_uids.clone(),
        comms: cli.comms.clone(),
        exclude_comms: cli.exclude_comms.clone(),
        cgroups: cli.cgroups.clone(),
        exclude_cgroups: cli.exclude_cgroups.clone(),
    };
    let loaded = probe::Probe::load_and_attach(probe::ProbeOptions {
        kernel_types,
        ring_buffer_bytes: cli.ring_buffer,
        filters: filters.clone(),
        attach: cli.attach,
        ia32: cli.ia32,
    });
    let (mut probe, events, attachment) = match loaded {
        Ok(l) => l,
        Err(e) => {
            drop(lock);
            dest.remove_if_created(created);
            return Err(e);
        }
    };
    tracing::info!(
        "attached with {} ({}): {}; 32-bit calls covered: {}",
        attachment.mode,
        attachment.reason,
        attachment.points.join(", "),
        attachment.ia32.metadata_value()
    );
    let kernel_state_sources = attachment.kernel_state_sources(cli.reconcile_interval);
    tracing::info!("kernel state: {kernel_state_sources}");
    let clock_offset_ns = clock::boot_to_wall_offset_ns();
    let lost_cell = Arc::new(Mutex::new(probe::LossCounts::default()));
    let progress = Arc::new(status::WriterProgress::default());
    let host = host::HostInfo::read();
    let origin = fantrace_schema::arrow::Origin {
        host: host.hostname.clone(),
        boot_id: host.boot_id.clone(),
    };
    let (upload_wake, uploader) = match upload_to {
        Some(location) => {
            progress
                .uploading
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let (wake, woken) = std::sync::mpsc::channel();
            let thread = upload::spawn(
                upload::UploadConfig {
                    dir: dest.dir.clone(),
                    location,
                    progress: progress.clone(),
                    patience: cli.upload_patience,
                },
                woken,
            )?;
            (Some(wake), Some(thread))
        }
        None => (None, None),
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
        kernel_state_sources,
        upload_wake,
    })?;
    // The kernel's groups and marks as they are now, before the recording is announced: a
    // group made earlier is then known before any call on it is read.
    let kernel_state =
        state::KernelState::new(&origin.boot_id, std::process::id(), Box::new(filters));
    let mut batcher = batch::Batcher::new(clock_offset_ns, origin, kernel_state);
    let mut scans = drain::ScanSchedule::new(cli.reconcile_interval);
    let started = std::time::Instant::now();
    let entries = probe.scan()?;
    scans.scanned(started.elapsed());
    batcher.state.on_scan(&entries, state::boot_now_ns(), true);
    probe.add_group_owners(&batcher.state.take_new_holders());
    batcher.settle();
    tracing::info!(
        "{} fanotify group(s) on this machine at start",
        batcher.state.counts.groups_found
    );
    println!(
        "fantrace-recorder: recording fanotify_mark calls into {} (Ctrl-C to stop)",
        dest.dir.display()
    );
    // Loading parsed the kernel's whole BTF (tens of MiB, freed by now); hand that memory
    // back so a recorder running for days does not keep it resident. After the line above:
    // it takes a while, and calls are already being recorded.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
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
            reconcile_interval: cli.reconcile_interval,
            scans,
            signals,
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
    if let Some(uploader) = uploader {
        let shipped = uploader
            .join()
            .map_err(|_| anyhow!("the uploader thread panicked"))?;
        report_upload(&shipped, &dest.dir, false);
    }
    drop(lock);
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

/// `--upload-only`: ships what waits in --output, holding the capture's lock so that a
/// recorder started meanwhile does not ship the same segments.
fn upload_only(cli: &Cli, location: fantrace_storage::Location) -> anyhow::Result<()> {
    let dir = &cli.output;
    let _lock = lock::CaptureLock::acquire(dir)?;
    let progress = Arc::new(status::WriterProgress::default());
    let (wake, woken) = std::sync::mpsc::channel::<()>();
    // Closed at once: the uploader ships the backlog and stops when it is gone or the store
    // made no progress for --upload-patience.
    drop(wake);
    let shipped = upload::spawn(
        upload::UploadConfig {
            dir: dir.clone(),
            location,
            progress,
            patience: cli.upload_patience,
        },
        woken,
    )?
    .join()
    .map_err(|_| anyhow!("the uploader thread panicked"))?;
    report_upload(&shipped, dir, true);
    if shipped.waiting.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{} segment(s) could not be uploaded and wait in {}",
            shipped.waiting.len(),
            dir.display()
        ))
    }
}

/// What was shipped; with `rate`, how fast (for --upload-only, where the time is all upload).
fn report_upload(shipped: &upload::UploadSummary, dir: &std::path::Path, rate: bool) {
    let seconds = shipped.seconds.max(1e-9);
    let speed = if rate {
        format!(
            " in {:.2} s ({:.1} MB/s, {:.1} segments/s)",
            shipped.seconds,
            shipped.bytes as f64 / seconds / 1e6,
            shipped.segments as f64 / seconds,
        )
    } else {
        String::new()
    };
    println!(
        "fantrace-recorder: uploaded {} segment(s), {}{speed}",
        shipped.segments,
        status::human_bytes(shipped.bytes),
    );
    if !shipped.waiting.is_empty() {
        println!(
            "fantrace-recorder: {} segment(s) wait in {} for upload; the next run with the same \
             --output and --upload ships them (or --upload-only)",
            shipped.waiting.len(),
            dir.display()
        );
    }
}
