//! Driving the real binaries: locate them, start and stop the recorder, query with the
//! analyzer. Every end-to-end test goes through here.
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::calls::Call;

/// A workspace binary, next to the test executable's `deps/` directory. The README's test
/// command builds them first (`cargo build --workspace --bins`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// `base`, stretched when running inside an emulated guest (about 20 times slower).
pub fn slow(base: Duration) -> Duration {
    if crate::guest::guest_out().is_some() {
        base * 20
    } else {
        base
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether this process can load the probe at all. Outside CI a test that needs the probe
/// returns early with a note; in CI (`CI=true`) it fails instead, so a broken set-up can never
/// pass as green.
pub fn require_probe(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    if in_ci() {
        panic!("{test}: CI=true but the tests are not running as root, so the probe cannot load");
    }
    eprintln!("{test}: NOT RUN: needs root to load the eBPF probe (set CI=true to make this fail)");
    false
}

pub struct Recorder {
    child: Option<Child>,
    pub dir: PathBuf,
    stdout_rest: mpsc::Receiver<String>,
}

impl Recorder {
    /// Starts `fantrace-recorder --output dir extra...` and waits until it is attached.
    pub fn start(dir: &Path, extra: &[&str]) -> Recorder {
        let mut cmd = Command::new(bin("fantrace-recorder"));
        cmd.arg("--output").arg(dir).args(extra);
        Recorder::spawn(cmd, dir)
    }

    /// Like [`start`](Self::start), on a machine called `host`: the recorder runs in a UTS
    /// namespace of its own whose host name is `host`, which is what it records.
    pub fn start_as_host(dir: &Path, host: &str, extra: &[&str]) -> Recorder {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--uts",
            "--",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            host,
        ])
        .arg(bin("fantrace-recorder"))
        .arg("--output")
        .arg(dir)
        .args(extra);
        Recorder::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: &Path) -> Recorder {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning fantrace-recorder");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut rec = Recorder {
            child: Some(child),
            dir: dir.to_path_buf(),
            stdout_rest: rx,
        };
        match rec.stdout_rest.recv_timeout(slow(Duration::from_secs(60))) {
            Ok(line) if line.contains("recording fanotify_mark calls") => rec,
            Ok(line) => panic!("unexpected first line from the recorder: {line}"),
            Err(_) => {
                let status = rec.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                panic!("the recorder did not report it was attached (exit status: {status:?})");
            }
        }
    }

    /// Sends `signal`, waits for exit and returns the remaining stdout; the exit must be 0.
    pub fn stop_with(mut self, signal: i32) -> String {
        let mut child = self.child.take().expect("recorder running");
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().expect("waiting for the recorder");
        assert!(status.success(), "recorder exited with {status}");
        self.stdout_rest.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Waits for the recorder to stop by itself (`--duration`, `--max-events`); exit must be 0.
    pub fn wait_exit(mut self) -> String {
        let mut child = self.child.take().expect("recorder running");
        let status = child.wait().expect("waiting for the recorder");
        assert!(status.success(), "recorder exited with {status}");
        self.stdout_rest.try_iter().collect::<Vec<_>>().join("\n")
    }

    pub fn stop(self) -> String {
        self.stop_with(libc::SIGINT)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the workload and returns the calls it made.
pub fn run_workload(args: &[&str]) -> Vec<Call> {
    let out = Command::new(bin("fantrace-workload"))
        .args(args)
        .output()
        .expect("running fantrace-workload");
    assert!(
        out.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("workload prints one JSON call per line"))
        .collect()
}

/// A workload started with `--wait-stdin`: its pid is known before it makes any call, so a
/// recorder can be filtered to it; `go` releases it and returns its JSON summary.
pub struct PausedWorkload {
    child: Child,
    pub pid: u32,
}

impl PausedWorkload {
    pub fn start(args: &[&str]) -> PausedWorkload {
        let mut child = Command::new(bin("fantrace-workload"))
            .args(args)
            .arg("--wait-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning fantrace-workload");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped stdout"))
            .read_line(&mut first)
            .expect("reading the workload's pid");
        let v: serde_json::Value = serde_json::from_str(&first).expect("pid line is JSON");
        let pid = v["pid"].as_u64().expect("pid") as u32;
        PausedWorkload { child, pid }
    }

    pub fn go(mut self) -> serde_json::Value {
        use std::io::{Read as _, Write as _};
        let mut stdin = self.child.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").expect("releasing the workload");
        drop(stdin);
        let mut rest = String::new();
        self.child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut rest)
            .expect("reading the workload's output");
        let status = self.child.wait().expect("waiting for the workload");
        assert!(status.success(), "workload failed: {status}");
        serde_json::from_str(rest.trim()).expect("summary line is JSON")
    }
}

/// `fantrace-analyzer query` with the given arguments; returns the raw output.
pub fn analyzer(args: &[&str]) -> Output {
    Command::new(bin("fantrace-analyzer"))
        .args(args)
        .output()
        .expect("running fantrace-analyzer")
}

/// Runs `sql` over `capture` and returns the rows as JSON objects.
pub fn query_json(capture: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let capture = capture.to_string_lossy();
    let out = analyzer(&["query", "--capture", &capture, "--format", "json", sql]);
    assert!(
        out.status.success(),
        "analyzer failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("analyzer prints JSON lines"))
        .collect()
}
