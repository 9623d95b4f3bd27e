//! What the user sees while recording: a live status line on a terminal (events/s, total,
//! lost, bytes written, current segment), plain periodic log lines otherwise.
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain status line is logged when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Written by the writer thread, read by the status display.
#[derive(Default)]
pub struct WriterProgress {
    pub bytes: AtomicU64,
    pub segments: AtomicU64,
    pub current: Mutex<String>,
    /// With --upload: whether uploading is on, what was shipped, and what waits.
    pub uploading: std::sync::atomic::AtomicBool,
    pub uploaded: AtomicU64,
    pub backlog_segments: AtomicU64,
    pub backlog_bytes: AtomicU64,
}

impl WriterProgress {
    pub fn set_current(&self, name: &str) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = name.to_string();
    }

    fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct Status {
    bar: Option<ProgressBar>,
    since: Instant,
    events_then: u64,
    rate: f64,
}

impl Status {
    pub fn new() -> Status {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        Status {
            bar,
            since: Instant::now(),
            events_then: 0,
            rate: 0.0,
        }
    }

    pub fn update(&mut self, events: u64, lost: u64, writer: &WriterProgress) {
        let elapsed = self.since.elapsed();
        let refresh = if self.bar.is_some() {
            Duration::from_secs(1)
        } else {
            LOG_INTERVAL
        };
        if elapsed >= refresh {
            self.rate = (events - self.events_then) as f64 / elapsed.as_secs_f64();
            self.since = Instant::now();
            self.events_then = events;
        }
        let mut line = format!(
            "{events} calls ({:.0}/s), {lost} lost, {} written in {} finished segment(s), open: {}",
            self.rate,
            human_bytes(writer.bytes.load(Ordering::Relaxed)),
            writer.segments.load(Ordering::Relaxed),
            writer.current(),
        );
        if writer.uploading.load(Ordering::Relaxed) {
            line.push_str(&format!(
                "; uploaded {}, backlog {} segment(s) ({})",
                writer.uploaded.load(Ordering::Relaxed),
                writer.backlog_segments.load(Ordering::Relaxed),
                human_bytes(writer.backlog_bytes.load(Ordering::Relaxed)),
            ));
        }
        match &self.bar {
            Some(bar) => {
                bar.set_message(line);
                bar.tick();
            }
            None if elapsed >= refresh => tracing::info!("{line}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
