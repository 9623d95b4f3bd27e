//! What recording costs: the slowdown of a calling loop under the recorder and under
//! bpftrace, and a storm's losses, recorder CPU and memory and bytes per event on disk.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::ValueEnum as _;

use crate::caller::{CallReport, Mode};
use crate::report::{Row, thousands};
use crate::stats::median;
use crate::tracer::{Tracer, bpftrace_lost};

/// What every scenario needs: where the binaries are, a scratch directory, the peers found.
pub struct Bench {
    pub bin_dir: PathBuf,
    pub work: PathBuf,
    pub repeat: usize,
    pub bpftrace: bool,
    pub duckdb: bool,
}

/// bpftrace doing the least a tracer can: counting the calls in a map.
pub const BPFTRACE_COUNT: &str = "BEGIN { printf(\"ready\\n\"); } \
    tracepoint:syscalls:sys_enter_fanotify_mark { @calls = count(); }";

/// bpftrace doing what fantrace does, as far as a one-liner can: every call with its
/// arguments, path and result, printed as it happens.
const BPFTRACE_PRINT: &str = "BEGIN { printf(\"ready\\n\"); } \
    tracepoint:syscalls:sys_enter_fanotify_mark { @path[tid] = str(args->pathname); \
      @fd[tid] = args->fanotify_fd; @flags[tid] = args->flags; @mask[tid] = args->mask; } \
    tracepoint:syscalls:sys_exit_fanotify_mark /@fd[tid] != 0/ { \
      printf(\"%d %d %s %d %x %x %s %d\\n\", pid, tid, comm, @fd[tid], @flags[tid], @mask[tid], \
        @path[tid], args->ret); \
      delete(@path[tid]); delete(@fd[tid]); delete(@flags[tid]); delete(@mask[tid]); }";

impl Bench {
    /// Runs the calling loop in a child process pinned to CPU 0.
    pub fn call(
        &self,
        mode: Mode,
        calls: Option<u64>,
        seconds: Option<f64>,
    ) -> anyhow::Result<CallReport> {
        let out = self
            .caller_command(mode, calls, seconds)
            .output()
            .context("running the calling loop (fantrace-bench call)")?;
        if !out.status.success() {
            bail!(
                "the calling loop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("reading the calling loop's report")
    }

    /// `fantrace-bench call ...` pinned to CPU 0, its report on stdout.
    fn caller_command(&self, mode: Mode, calls: Option<u64>, seconds: Option<f64>) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("fantrace-bench"));
        cmd.args(["call", "--cpu", "0", "--mode"]);
        if let Some(v) = mode.to_possible_value() {
            cmd.arg(v.get_name());
        }
        cmd.arg("--dir").arg(&self.work);
        if let Some(n) = calls {
            cmd.args(["--calls", &n.to_string()]);
        }
        if let Some(s) = seconds {
            cmd.args(["--seconds", &s.to_string()]);
        }
        cmd.stdout(std::process::Stdio::piped());
        cmd
    }

    fn fresh_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(dir)
    }

    /// The slowdown of `calls` calls of `mode` under the recorder (default settings) and under
    /// bpftrace counting, each against bare runs just before and after it.
    pub fn overhead(
        &self,
        mode: Mode,
        calls: u64,
        figure: &str,
        target: Option<f64>,
    ) -> anyhow::Result<Row> {
        let (mut ours, mut peer, mut bare_ns, mut ours_ns) = (vec![], vec![], vec![], vec![]);
        for rep in 0..self.repeat {
            let before = self.call(mode, Some(calls), None)?.ns_per_call();
            let dir = self.fresh_dir(&format!("overhead-{rep}"))?;
            let rec = Tracer::recorder(&self.bin_dir, &dir, &[])?;
            let traced = self.call(mode, Some(calls), None)?.ns_per_call();
            rec.stop()?;
            std::fs::remove_dir_all(&dir).ok();
            let counted = if self.bpftrace {
                let bt = Tracer::bpftrace(BPFTRACE_COUNT)?;
                let t = self.call(mode, Some(calls), None)?.ns_per_call();
                bt.stop()?;
                Some(t)
            } else {
                None
            };
            let after = self.call(mode, Some(calls), None)?.ns_per_call();
            let bare = (before + after) / 2.0;
            eprintln!(
                "  {mode:?} rep {rep}: bare {bare:.0} ns, fantrace {traced:.0} ns, bpftrace count {} ns",
                counted.map_or("-".into(), |c| format!("{c:.0}"))
            );
            bare_ns.push(bare);
            ours_ns.push(traced);
            ours.push(traced / bare);
            if let Some(c) = counted {
                peer.push(c / bare);
            }
        }
        let ours = median(&ours);
        let mut row = Row::new(
            figure,
            format!(
                "{ours:.2}x ({:.0} vs {:.0} ns/call)",
                median(&ours_ns),
                median(&bare_ns)
            ),
        );
        if let Some(target) = target {
            row = row.target(format!("≤ {target:.1}x"), ours <= target);
        }
        Ok(if self.bpftrace {
            let peer = median(&peer);
            row.peer(format!("bpftrace counting: {peer:.2}x"), Some(ours / peer))
        } else {
            row.peer("bpftrace unavailable (see above)", None)
        })
    }

    /// One core calling as fast as it can for `seconds`, recorded with default settings.
    pub fn storm(&self, seconds: f64) -> anyhow::Result<Vec<Row>> {
        let dir = self.fresh_dir("storm")?;
        let rec = Tracer::recorder(&self.bin_dir, &dir, &[])?;
        let cpu0 = rec.cpu_seconds()?;
        let mut caller = self
            .caller_command(Mode::Fail, None, Some(seconds))
            .spawn()
            .context("starting the calling loop (fantrace-bench call)")?;
        // Resident memory once past start-up: the maximum of samples after the first second.
        let start = Instant::now();
        let mut rss_max = 0u64;
        while caller.try_wait()?.is_none() {
            std::thread::sleep(Duration::from_millis(250));
            if start.elapsed() > Duration::from_secs(1) {
                rss_max = rss_max.max(rec.rss_bytes()?);
            }
        }
        let out = caller.wait_with_output()?;
        let report: CallReport =
            serde_json::from_slice(&out.stdout).context("reading the storm's report")?;
        // Let the recorder finish draining what the storm left in the ring, and charge that
        // CPU time to the storm too.
        std::thread::sleep(Duration::from_millis(500));
        let cpu = (rec.cpu_seconds()? - cpu0) / (report.elapsed_ns as f64 / 1e9);
        rec.stop()?;
        let (written, lost) = self.written_lost(&dir)?;
        let bytes = dir_bytes(&dir)?;
        let rate = report.calls as f64 / (report.elapsed_ns as f64 / 1e9);
        eprintln!(
            "  storm: {} calls in {:.1} s ({rate:.0}/s), written {written}, lost {lost}, {bytes} bytes, cpu {cpu:.2}, rss {rss_max}",
            report.calls,
            report.elapsed_ns as f64 / 1e9
        );
        if written + lost < report.calls {
            bail!(
                "the storm made {} calls but the capture accounts for {} (written {written} + lost {lost})",
                report.calls,
                written + lost
            );
        }
        std::fs::remove_dir_all(&dir).ok();

        let mut lost_row = Row::new(
            format!("events lost, one core calling flat out for {seconds:.0} s, default settings"),
            format!(
                "{} of {} ({:.2} M calls/s)",
                thousands(lost),
                thousands(report.calls),
                rate / 1e6
            ),
        )
        .target("0", lost == 0);
        if self.bpftrace {
            let (bt_lost, bt_calls) = self.bpftrace_storm(seconds)?;
            lost_row = lost_row.peer(
                format!(
                    "bpftrace printing: {} of {} lost",
                    thousands(bt_lost),
                    thousands(bt_calls)
                ),
                None,
            );
        } else {
            lost_row = lost_row.peer("bpftrace unavailable (see above)", None);
        }
        Ok(vec![
            lost_row,
            Row::new("recorder CPU during that storm", format!("{cpu:.2} cores"))
                .target("≤ 1 core", cpu <= 1.0),
            Row::new(
                "bytes per event on disk, storm of repeating calls",
                format!("{:.2}", bytes as f64 / written.max(1) as f64),
            )
            .target("≤ 8", (bytes as f64 / written.max(1) as f64) <= 8.0),
            Row::new(
                "recorder resident memory, steady state",
                format!("{:.1} MiB", rss_max as f64 / 1048576.0),
            )
            .target("≤ 64 MiB", rss_max <= 64 * 1024 * 1024),
        ])
    }

    /// The same storm under bpftrace printing every call: how many it loses.
    fn bpftrace_storm(&self, seconds: f64) -> anyhow::Result<(u64, u64)> {
        let bt = Tracer::bpftrace(BPFTRACE_PRINT)?;
        let report = self.call(Mode::Fail, None, Some(seconds))?;
        std::thread::sleep(Duration::from_millis(500));
        let out = bt.stop()?;
        Ok((bpftrace_lost(&out), report.calls))
    }

    /// Several named processes marking varied paths with varied flags.
    pub fn varied(&self, seconds: f64) -> anyhow::Result<Row> {
        let dir = self.fresh_dir("varied")?;
        let rec = Tracer::recorder(&self.bin_dir, &dir, &[])?;
        let report = self.call(Mode::Varied, None, Some(seconds))?;
        std::thread::sleep(Duration::from_millis(300));
        rec.stop()?;
        let (written, lost) = self.written_lost(&dir)?;
        let bytes = dir_bytes(&dir)?;
        eprintln!(
            "  varied: {} calls, written {written}, lost {lost}, {bytes} bytes",
            report.calls
        );
        let per = bytes as f64 / written.max(1) as f64;
        std::fs::remove_dir_all(&dir).ok();
        Ok(Row::new(
            "bytes per event, varied paths/processes",
            format!("{per:.2} ({} events)", thousands(written)),
        )
        .target("≤ 24", per <= 24.0))
    }

    /// Events written and lost in a capture, as the analyzer's `stats` table reports them.
    fn written_lost(&self, capture: &Path) -> anyhow::Result<(u64, u64)> {
        let text = crate::queries::analyzer_csv(
            &self.bin_dir,
            capture,
            "SELECT sum(events_written), sum(events_lost) FROM stats",
        )?;
        let line = text
            .lines()
            .nth(1)
            .context("the stats query returned no row")?;
        let mut v = line.split(',').map(|f| f.trim().parse::<u64>());
        match (v.next(), v.next()) {
            (Some(Ok(w)), Some(Ok(l))) => Ok((w, l)),
            _ => bail!("unexpected stats row {line:?}"),
        }
    }
}

/// Bytes of the finished segments in a capture directory.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "parquet") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}
