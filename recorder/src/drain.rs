//! Drain: empty the ring buffer when the probe wakes us (a quarter full) or on a short timer,
//! never once per event, until a stop condition.
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::batch::Batcher;
use crate::probe::{LossCounts, Probe};
use crate::writer::ToWriter;

/// How often the ring is drained when the probe does not wake us.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long rows may wait in the batcher before going to the writer, at most; never longer
/// than half the rotation interval, so a SIGKILL loses no more than the open segment.
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How often a status line is logged.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub enum StopReason {
    Duration(Duration),
    Signal(&'static str),
    MaxEvents(u64),
}

pub struct DrainOptions {
    pub duration: Option<Duration>,
    pub rotate_interval: Duration,
    pub max_events: Option<u64>,
    /// Where the probe's loss counters are published for the writer.
    pub lost: Arc<Mutex<LossCounts>>,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Duration(d) => write!(f, "duration {}s elapsed", d.as_secs_f64()),
            StopReason::Signal(name) => write!(f, "signal {name}"),
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
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut total = 0u64;
    let mut last_flush = tokio::time::Instant::now();
    let mut status = Status::new();
    let reason = loop {
        if total >= limit {
            break StopReason::MaxEvents(limit);
        }
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready.context("waiting on the ring buffer")?;
                total += drain_ring(guard.get_inner_mut(), batcher, tx, limit - total)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                total += drain_ring(ring.get_mut(), batcher, tx, limit - total)?;
                let lost = probe.loss_counts()?;
                *opts.lost.lock().unwrap_or_else(|p| p.into_inner()) = lost;
                if last_flush.elapsed() >= flush_interval {
                    flush(batcher, tx)?;
                    last_flush = tokio::time::Instant::now();
                }
                status.maybe_log(total, lost.total());
            }
            _ = &mut writer_stopped => {
                probe.detach();
                return Err(anyhow!("the writer stopped; see its error"));
            }
            _ = sigint.recv() => break StopReason::Signal("SIGINT"),
            _ = sigterm.recv() => break StopReason::Signal("SIGTERM"),
            _ = &mut deadline => break StopReason::Duration(duration.unwrap_or_default()),
        }
    };
    // Detach first so the final drain sees every call that completed while attached.
    probe.detach();
    total += drain_ring(ring.get_mut(), batcher, tx, limit.saturating_sub(total))?;
    flush(batcher, tx)?;
    Ok(Drained {
        reason,
        events: total,
    })
}

/// Moves up to `limit` records from the ring into batches; returns how many.
fn drain_ring(
    ring: &mut RingBuf<MapData>,
    batcher: &mut Batcher,
    tx: &SyncSender<ToWriter>,
    limit: u64,
) -> anyhow::Result<u64> {
    let mut n = 0;
    while n < limit {
        let Some(item) = ring.next() else { break };
        batcher
            .push(&item)
            .context("the probe sent a malformed record (probe and recorder built apart?)")?;
        n += 1;
        drop(item);
        if batcher.is_full() {
            flush(batcher, tx)?;
        }
    }
    Ok(n)
}

/// A periodic plain log line: rate, totals and losses.
struct Status {
    since: tokio::time::Instant,
    events_then: u64,
}

impl Status {
    fn new() -> Status {
        Status {
            since: tokio::time::Instant::now(),
            events_then: 0,
        }
    }

    fn maybe_log(&mut self, events: u64, lost: u64) {
        let elapsed = self.since.elapsed();
        if elapsed < STATUS_INTERVAL {
            return;
        }
        let rate = (events - self.events_then) as f64 / elapsed.as_secs_f64();
        tracing::info!("{events} calls recorded ({rate:.0}/s), {lost} lost");
        self.since = tokio::time::Instant::now();
        self.events_then = events;
    }
}

fn flush(batcher: &mut Batcher, tx: &SyncSender<ToWriter>) -> anyhow::Result<()> {
    if let Some(batch) = batcher.take_sorted()? {
        tx.send(ToWriter::Batch(batch))
            .map_err(|_| anyhow!("the writer thread stopped; see its error below"))?;
    }
    Ok(())
}
