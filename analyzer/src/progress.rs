//! The progress bar a long query draws on stderr: segments opened of those its scans read.
//! Only on a terminal, and only once the query has run a second (DuckDB's rule), so quick
//! queries and piped output stay clean.
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use fantrace_engine::capture::table::Pruning;

/// How long a query runs before its bar appears.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// Draws the bar until dropped.
pub struct ScanProgress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScanProgress {
    /// The bar for the queries of `ctx`, or `None` where none is drawn (not a terminal, or a
    /// session whose scans run on a cluster).
    pub fn start(ctx: &SessionContext) -> Option<ScanProgress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let pruning = fantrace_engine::session::pruning(ctx)?;
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let thread = std::thread::spawn(move || draw(&pruning, &stop));
        Some(ScanProgress {
            done,
            thread: Some(thread),
        })
    }
}

fn draw(pruning: &Pruning, done: &AtomicBool) {
    let started = std::time::Instant::now();
    while started.elapsed() < QUIET_FOR {
        if done.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {wide_bar} {pos}/{len} segments read, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while !done.load(Ordering::Relaxed) {
        bar.set_length(pruning.to_open.load(Ordering::Relaxed));
        bar.set_position(pruning.opened.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

impl Drop for ScanProgress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
