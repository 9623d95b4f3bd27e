//! Drain: empty the ring buffer when the probe wakes us (a quarter full) or on a short timer,
//! never once per event, until a stop condition.
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::batch::Batcher;
use crate::probe::{LossCounts, Probe};
use crate::status::{Status, WriterProgress};
use crate::writer::ToWriter;
use fantrace_schema::arrow::SYSCALL_NAMES;
use fantrace_schema::decode::{CallView, strace_line};
use fantrace_schema::record::{Abi, CallRecord, PathStatus};

/// Records drained before the loop looks at signals and timers again.
const DRAIN_CHUNK: u64 = crate::batch::BATCH_ROWS as u64;

/// How often the ring is drained when the probe does not wake us.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long rows may wait in the batcher before going to the writer, at most; never longer
/// than half the rotation interval, so a SIGKILL loses no more than the open segment.
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub enum StopReason {
    Duration(Duration),
    Signal {
        name: &'static str,
        sender_pid: Option<i32>,
    },
    MaxEvents(u64),
}

pub struct DrainOptions {
    pub duration: Option<Duration>,
    pub rotate_interval: Duration,
    pub max_events: Option<u64>,
    /// Where the probe's loss counters are published for the writer.
    pub lost: Arc<Mutex<LossCounts>>,
    pub progress: Arc<WriterProgress>,
    /// Print each call as it is recorded.
    pub print: bool,
    /// How often every group's fdinfo is compared with what the recorder knows.
    pub reconcile_interval: Duration,
    /// When the machine's fds are scanned (the first scan, at start, already ran).
    pub scans: ScanSchedule,
    /// Installed before the probe was loaded: a stop asked for during start-up is honoured
    /// once recording begins, with a proper last segment.
    pub signals: Signals,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Duration(d) => write!(f, "duration {}s elapsed", d.as_secs_f64()),
            StopReason::Signal {
                name,
                sender_pid: Some(pid),
            } => write!(f, "signal {name} from pid {pid}"),
            StopReason::Signal {
                name,
                sender_pid: None,
            } => write!(f, "signal {name}"),
            StopReason::MaxEvents(n) => write!(f, "max events {n} reached"),
        }
    }
}

pub struct Drained {
    pub reason: StopReason,
    pub events: u64,
}

pub async fn record(
    probe: &mut Probe,
    events: RingBuf<MapData>,
    batcher: &mut Batcher,
    tx: &SyncSender<ToWriter>,
    mut writer_stopped: tokio::sync::oneshot::Receiver<()>,
    opts: DrainOptions,
) -> anyhow::Result<Drained> {
    let duration = opts.duration;
    let flush_interval = MAX_FLUSH_INTERVAL.min(opts.rotate_interval / 2);
    let limit = opts.max_events.unwrap_or(u64::MAX);
    // SAFETY: the AsyncFd owns the ring buffer, so its descriptor stays open for as long as it
    // is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
        .map_err(|e| anyhow!("registering the ring buffer with epoll: {e}"))?;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut signals = opts.signals;
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut total = 0u64;
    let mut last_flush = tokio::time::Instant::now();
    // The kernel was looked at just before recording began (`main`).
    let mut last_reconcile = Some(tokio::time::Instant::now());
    let mut schedule = opts.scans;
    let mut status = Status::new();
    let mut more = false;
    let print = opts.print;
    let reason = loop {
        if total >= limit {
            break StopReason::MaxEvents(limit);
        }
        // Drain in chunks and go back to select! between them: a storm that refills the ring
        // as fast as it is read must not keep signals and the timer from being seen.
        let chunk = (limit - total).min(DRAIN_CHUNK);
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready.context("waiting on the ring buffer")?;
                let n = drain_ring(guard.get_inner_mut(), batcher, tx, chunk, print)?;
                total += n;
                more = n == chunk;
                guard.clear_ready();
            }
            _ = std::future::ready(()), if more => {
                let n = drain_ring(ring.get_mut(), batcher, tx, chunk, print)?;
                total += n;
                more = n == chunk;
            }
            _ = tick.tick() => {
                let n = drain_ring(ring.get_mut(), batcher, tx, chunk, print)?;
                total += n;
                more = n == chunk;
                let full = last_reconcile.is_none_or(|t| t.elapsed() >= opts.reconcile_interval);
                if full || batcher.state.scan_due() {
                    total += reconcile(
                        probe,
                        ring.get_mut(),
                        batcher,
                        tx,
                        full,
                        print,
                        limit.saturating_sub(total),
                        &mut schedule,
                    )?;
                    if full {
                        last_reconcile = Some(tokio::time::Instant::now());
                    }
                }
                let lost = probe.loss_counts()?;
                *opts.lost.lock().unwrap_or_else(|p| p.into_inner()) = lost;
                if last_flush.elapsed() >= flush_interval {
                    flush(batcher, tx)?;
                    last_flush = tokio::time::Instant::now();
                }
                status.update(total, lost.total(), &opts.progress);
            }
            _ = &mut writer_stopped => {
                probe.detach();
                return Err(anyhow!("the writer stopped; see its error"));
            }
            Some(reason) = signals.recv() => break reason,
            _ = &mut deadline => break StopReason::Duration(duration.unwrap_or_default()),
        }
    };
    // A last look at the kernel, then detach, so the final drain sees every call that
    // completed while attached.
    status.finish();
    // The last look is a full scan whatever its cost: the capture's end says the truth.
    schedule.last = None;
    total += reconcile(
        probe,
        ring.get_mut(),
        batcher,
        tx,
        true,
        print,
        limit.saturating_sub(total),
        &mut schedule,
    )?;
    probe.detach();
    total += drain_ring(
        ring.get_mut(),
        batcher,
        tx,
        limit.saturating_sub(total),
        print,
    )?;
    batcher.state.resolve_vanished();
    batcher.settle();
    flush(batcher, tx)?;
    Ok(Drained {
        reason,
        events: total,
    })
}

/// Moves up to `limit` calls from the ring into batches (with the kernel-state items that
/// come with them); returns how many calls.
fn drain_ring(
    ring: &mut RingBuf<MapData>,
    batcher: &mut Batcher,
    tx: &SyncSender<ToWriter>,
    limit: u64,
    print: bool,
) -> anyhow::Result<u64> {
    let mut n = 0;
    while n < limit {
        let Some(item) = ring.next() else { break };
        let (ev, path, is_call) = batcher
            .push(&item)
            .context("the probe sent a malformed record (probe and recorder built apart?)")?;
        if is_call {
            if print {
                print_call(&ev, path, batcher.boot_to_wall_ns());
            }
            n += 1;
        }
        drop(item);
    }
    batcher.settle();
    if batcher.is_full() {
        flush(batcher, tx)?;
    }
    Ok(n)
}

/// When the whole machine's fds are scanned. A scan walks every open file of every process
/// (about 350 ns a file: 8 ms for a thousand processes of twenty files), so its cost grows
/// with the host; scans are spaced so that they take at most [`SCAN_SHARE`] of a core, and in
/// between every known group's fdinfo is still read each interval (the kernel's own removals
/// show within it). A holder's exit asks for a scan sooner, within the same budget.
pub struct ScanSchedule {
    interval: Duration,
    last: Option<tokio::time::Instant>,
    cost: Duration,
}

/// The most of one core the machine-wide scans may take.
const SCAN_SHARE: f64 = 0.01;

impl ScanSchedule {
    pub fn new(interval: Duration) -> ScanSchedule {
        ScanSchedule {
            interval,
            last: None,
            cost: Duration::ZERO,
        }
    }

    fn gap(&self) -> Duration {
        self.interval.max(self.cost.div_f64(SCAN_SHARE))
    }

    /// A scan that took `cost` has just run.
    pub fn scanned(&mut self, cost: Duration) {
        self.last = Some(tokio::time::Instant::now());
        self.cost = cost;
    }

    /// Whether a scan may run now (`soon`: one was asked for).
    fn due(&self, soon: bool) -> bool {
        match self.last {
            None => true,
            Some(t) if soon => t.elapsed() >= self.cost.div_f64(SCAN_SHARE),
            Some(t) => t.elapsed() >= self.gap(),
        }
    }
}

/// What changed in the kernel goes into the batch: a scan of every fanotify fd when one is due
/// (with every group's fdinfo when `read_all`), else every known group's fdinfo. The ring is
/// drained first, so the calls that led to the present state are known before it is compared.
#[allow(clippy::too_many_arguments)]
fn reconcile(
    probe: &mut Probe,
    ring: &mut RingBuf<MapData>,
    batcher: &mut Batcher,
    tx: &SyncSender<ToWriter>,
    read_all: bool,
    print: bool,
    limit: u64,
    schedule: &mut ScanSchedule,
) -> anyhow::Result<u64> {
    let mut drained = 0;
    loop {
        let chunk = DRAIN_CHUNK.min(limit - drained);
        let n = drain_ring(ring, batcher, tx, chunk, print)?;
        drained += n;
        if n < chunk || chunk == 0 {
            break;
        }
    }
    if schedule.due(batcher.state.scan_due()) {
        let started = std::time::Instant::now();
        let entries = probe.scan()?;
        let scanned = started.elapsed();
        schedule.scanned(scanned);
        batcher
            .state
            .on_scan(&entries, crate::state::boot_now_ns(), read_all);
        tracing::debug!(
            "kernel state: scan {:.2} ms ({} group fds), compared in {:.2} ms; next in {:.1} s",
            scanned.as_secs_f64() * 1e3,
            entries.len(),
            (started.elapsed() - scanned).as_secs_f64() * 1e3,
            schedule.gap().as_secs_f64()
        );
    } else if read_all {
        batcher.state.check_known(crate::state::boot_now_ns());
    }
    probe.add_group_owners(&batcher.state.take_new_holders());
    batcher.settle();
    if batcher.is_full() {
        flush(batcher, tx)?;
    }
    Ok(drained)
}

fn print_call(ev: &CallRecord, path: &[u8], boot_to_wall_ns: i64) {
    let comm_len = ev
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(ev.comm.len());
    let comm = String::from_utf8_lossy(&ev.comm[..comm_len]);
    let status = PathStatus::from_u8(ev.path_status)
        .map(PathStatus::name)
        .unwrap_or("unknown");
    let has_path = matches!(status, "ok" | "truncated");
    println!(
        "{}",
        strace_line(&CallView {
            syscall: SYSCALL_NAMES
                .get(usize::from(ev.syscall))
                .copied()
                .unwrap_or("fanotify_mark"),
            time_ns: (ev.enter_ns as i64).saturating_add(boot_to_wall_ns),
            comm: &comm,
            pid: ev.pid,
            tid: ev.tid,
            uid: ev.uid,
            fanotify_fd: ev.fanotify_fd,
            flags: ev.flags,
            mask: ev.mask,
            dirfd: ev.dirfd,
            path: has_path.then_some(path),
            path_status: status,
            ret: ev.ret,
            abi: Abi::from_u8(ev.abi).map(Abi::name),
            // Printed as drained, before the kernel's side is worked out (see `state`).
            kernel: Default::default(),
        })
    );
}

/// Stop requests by signal, as they arrive.
pub type Signals = tokio::sync::mpsc::UnboundedReceiver<StopReason>;

/// SIGINT and SIGTERM, with the pid that sent them (signal-hook reads it from siginfo; tokio's
/// signal streams do not carry it). A thread waits on the signals and forwards them.
pub fn stop_signals() -> anyhow::Result<Signals> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM])
        .context("installing SIGINT/SIGTERM handlers")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("fantrace-signals".into())
        .spawn(move || {
            for origin in signals.forever() {
                let name = if origin.signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                let reason = StopReason::Signal {
                    name,
                    sender_pid: origin.process.map(|p| p.pid),
                };
                if tx.send(reason).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

fn flush(batcher: &mut Batcher, tx: &SyncSender<ToWriter>) -> anyhow::Result<()> {
    if let Some(batch) = batcher.take()? {
        tx.send(ToWriter::Batch(batch))
            .map_err(|_| anyhow!("the writer thread stopped; see its error below"))?;
    }
    Ok(())
}
