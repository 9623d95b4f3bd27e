//! Drain: empty the ring buffer when the probe wakes us (a quarter full) or on a short timer,
//! never once per event, until a stop condition.
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::batch::Batcher;
use crate::probe::Probe;
use crate::writer::ToWriter;

/// How often the ring is drained when the probe does not wake us.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long rows may wait in the batcher before going to the writer.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub enum StopReason {
    Duration(Duration),
    Signal(&'static str),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Duration(d) => write!(f, "duration {}s elapsed", d.as_secs_f64()),
            StopReason::Signal(name) => write!(f, "signal {name}"),
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
    duration: Option<Duration>,
) -> anyhow::Result<Drained> {
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
    let reason = loop {
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready.context("waiting on the ring buffer")?;
                total += drain_ring(guard.get_inner_mut(), batcher, tx)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                total += drain_ring(ring.get_mut(), batcher, tx)?;
                if last_flush.elapsed() >= FLUSH_INTERVAL {
                    flush(batcher, tx)?;
                    last_flush = tokio::time::Instant::now();
                }
            }
            _ = sigint.recv() => break StopReason::Signal("SIGINT"),
            _ = sigterm.recv() => break StopReason::Signal("SIGTERM"),
            _ = &mut deadline => break StopReason::Duration(duration.unwrap_or_default()),
        }
    };
    // Detach first so the final drain sees every call that completed while attached.
    probe.detach();
    total += drain_ring(ring.get_mut(), batcher, tx)?;
    flush(batcher, tx)?;
    Ok(Drained {
        reason,
        events: total,
    })
}

fn drain_ring(
    ring: &mut RingBuf<MapData>,
    batcher: &mut Batcher,
    tx: &SyncSender<ToWriter>,
) -> anyhow::Result<u64> {
    let mut n = 0;
    while let Some(item) = ring.next() {
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

fn flush(batcher: &mut Batcher, tx: &SyncSender<ToWriter>) -> anyhow::Result<()> {
    if let Some(batch) = batcher.take_sorted()? {
        tx.send(ToWriter::Batch(batch))
            .map_err(|_| anyhow!("the writer thread stopped; see its error below"))?;
    }
    Ok(())
}
