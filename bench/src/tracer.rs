//! The tracers under test, run as child processes: fantrace's recorder and the peer,
//! bpftrace. Each is started, waited for until its probes are attached, sampled from /proc
//! and stopped the way a user would stop it (SIGINT).
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub struct Tracer {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Reads a child's stdout as it comes (a tracer must never block on a full pipe), forwarding
/// the lines `keep` selects to a channel so waiting for "attached" can time out. The other
/// lines, one per traced call for bpftrace's printf, are read and dropped.
fn line_channel(
    child: &mut Child,
    keep: fn(&str) -> bool,
) -> anyhow::Result<mpsc::Receiver<String>> {
    let stdout = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if keep(&line) && tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

impl Tracer {
    /// `fantrace-recorder --output dir extra...`, ready once it reports it is attached.
    pub fn recorder(bin_dir: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<Tracer> {
        let exe = bin_dir.join("fantrace-recorder");
        let mut child = Command::new(&exe)
            .arg("--output")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let lines = line_channel(&mut child, |_| true)?;
        let t = Tracer {
            name: "fantrace-recorder",
            child,
            lines,
        };
        t.wait_for("recording fanotify_mark calls")
    }

    /// `bpftrace -e script`, its output read from a pipe; the script must print "ready" from
    /// its BEGIN probe, which bpftrace runs once every probe is attached. (With `-o FILE`
    /// bpftrace buffers its output until exit, so readiness could not be seen.)
    pub fn bpftrace(script: &str) -> anyhow::Result<Tracer> {
        let mut child = Command::new("bpftrace")
            .args(["-q", "-e", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace")?;
        let lines = line_channel(&mut child, |l| l == "ready" || l.starts_with("Lost "))?;
        let t = Tracer {
            name: "bpftrace",
            child,
            lines,
        };
        t.wait_for("ready")
    }

    fn wait_for(mut self, needle: &str) -> anyhow::Result<Tracer> {
        let limit = attach_timeout();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(needle) => return Ok(self),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!("{} exited ({status}) before attaching", self.name);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("{} exited ({status}) before attaching", self.name);
                }
            }
        }
        bail!("{} did not attach within {limit:?}", self.name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time the tracer has used so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        crate::procfs::cpu_seconds(self.pid())
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        crate::procfs::rss_bytes(self.pid())
    }

    /// SIGINT, then waits; returns the lines the tracer printed that were kept. bpftrace now
    /// and then ignores a SIGINT that arrives while it drains a flood of output (seen once in
    /// a run of the storm: it then waited forever), so the signal is repeated every two
    /// seconds, and after half a minute the tracer is killed and the run fails.
    pub fn stop(mut self) -> anyhow::Result<String> {
        let started = Instant::now();
        let mut signalled = None::<Instant>;
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for the tracer")? {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{} did not stop within 30 s of SIGINT; killed it",
                    self.name
                );
            }
            if signalled.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                // SAFETY: kill on our own child's pid, which has not been reaped yet.
                unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
                signalled = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!("{} exited with {status}", self.name);
        }
        // The reader thread ends at EOF; give it a moment to forward the last lines.
        let mut text = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            text.push(line);
        }
        Ok(text.join("\n"))
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long a tracer may take to attach: a minute, or (in an emulated guest, where parsing the
/// kernel's BTF alone takes that long) what `FANTRACE_BENCH_ATTACH_TIMEOUT` says, in seconds.
fn attach_timeout() -> Duration {
    std::env::var("FANTRACE_BENCH_ATTACH_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Sum of bpftrace's "Lost N events" reports.
pub fn bpftrace_lost(output: &str) -> u64 {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Lost ")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Whether bpftrace is installed and can run here.
/// bpftrace's version if it is installed and attaches here (`script` is a trial run), else
/// what is wrong, for the table's header: the bench then runs without that peer.
pub fn bpftrace_peer(script: &str) -> Result<String, String> {
    let version = bpftrace_version().ok_or("bpftrace MISSING (apt-get install bpftrace)")?;
    let unavailable = |e: anyhow::Error| {
        format!(
            "{version} UNAVAILABLE: {e:#} (is tracefs mounted? mount -t tracefs nodev \
             /sys/kernel/tracing)"
        )
    };
    Tracer::bpftrace(script)
        .and_then(Tracer::stop)
        .map_err(unavailable)?;
    Ok(version)
}

pub fn bpftrace_version() -> Option<String> {
    let out = Command::new("bpftrace").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lost_lines_are_summed() {
        let out = "ready\nLost 120 events\n1 2 3\nLost 5 events\n";
        assert_eq!(super::bpftrace_lost(out), 125);
        assert_eq!(super::bpftrace_lost("ready\n"), 0);
    }
}
