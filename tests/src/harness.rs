//! Driving the real binaries: locate them, start and stop the recorder, query with the
//! analyzer. Every end-to-end test goes through here.
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::calls::Call;

/// A workspace binary, next to the test executable's `deps/` directory. The README's test
/// command builds them first (`cargo build --release --workspace --bins`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first \
         (`cargo build --release --workspace --bins`)",
        path.display()
    );
    path
}

/// A binary of the optimized build (`target/release`), for the tests that judge what only an
/// optimized build can show: keeping up with a storm, stack depth, memory. The README's test
/// command builds them (`cargo build --release --bins`); a missing one fails the test.
pub fn release_bin(name: &str) -> PathBuf {
    let debug = bin(name);
    if debug.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new("release")) {
        // The suite itself runs optimized (`cargo test --release`, as the README's test
        // command does).
        return debug;
    }
    let path = debug
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("release").join(name))
        .expect("binaries live in target/<profile>/");
    assert!(
        path.exists(),
        "{} is missing: build the optimized binaries first \
         (`cargo build --release -p fantrace-recorder -p fantrace-analyzer`)",
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

    /// [`start`](Self::start) with these environment variables set (an object store's
    /// credentials, say).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&'static str, String)]) -> Recorder {
        let mut cmd = Command::new(bin("fantrace-recorder"));
        cmd.arg("--output")
            .arg(dir)
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Recorder::spawn(cmd, dir)
    }

    /// [`start`](Self::start) with the optimized recorder: for tests of what a SIGKILL loses,
    /// which a debug build starved of CPU by a parallel test cannot keep up to.
    pub fn start_release(dir: &Path, extra: &[&str]) -> Recorder {
        let mut cmd = Command::new(release_bin("fantrace-recorder"));
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
        self.rest_of_stdout()
    }

    /// What the recorder printed after its first line, to its end: the reader thread may not
    /// have passed on the last lines yet when the exit is seen (it did not under load).
    fn rest_of_stdout(&self) -> String {
        let mut lines = Vec::new();
        while let Ok(line) = self.stdout_rest.recv_timeout(slow(Duration::from_secs(10))) {
            lines.push(line);
        }
        lines.join("\n")
    }

    /// Waits for the recorder to stop by itself (`--duration`, `--max-events`); exit must be 0.
    pub fn wait_exit(mut self) -> String {
        let mut child = self.child.take().expect("recorder running");
        let status = child.wait().expect("waiting for the recorder");
        assert!(status.success(), "recorder exited with {status}");
        self.rest_of_stdout()
    }

    pub fn stop(self) -> String {
        self.stop_with(libc::SIGINT)
    }

    /// SIGKILL: the recorder gets no chance to close anything.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("recorder running");
        let _ = child.kill();
        let _ = child.wait();
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

/// How a bounded run of a binary ended.
#[derive(Debug)]
pub struct Bounded {
    /// `None` when it was killed for taking longer than allowed.
    pub code: Option<i32>,
    /// Killed by this signal (a crash, or the timeout's SIGKILL).
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory, KiB (the kernel's own account of the child).
    pub peak_rss_kib: u64,
    pub timed_out: bool,
}

impl Bounded {
    /// Exit code 101 (a Rust panic), a message of one, or death by a signal other than the
    /// timeout's.
    pub fn crashed(&self) -> bool {
        self.code == Some(101)
            || self.stderr.contains("panicked at")
            || (self.signal.is_some() && !self.timed_out)
    }
}

/// Runs `cmd` to its end or for at most `timeout` (then SIGKILLs it), measuring its peak RSS.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Bounded {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the binary");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut timed_out = false;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by the kernel.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child, with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(r == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if !timed_out && std::time::Instant::now() >= deadline {
            timed_out = true;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The child is reaped; std must not wait for it again.
    std::mem::forget(child);
    let exited = libc::WIFEXITED(status);
    Bounded {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        peak_rss_kib: usage.ru_maxrss as u64,
        timed_out,
    }
}

/// Records the workload once and returns the one segment written.
pub fn record_one_segment(dir: &Path) -> PathBuf {
    let capture = dir.join("capture");
    let rec = Recorder::start(&capture, &[]);
    run_workload(&[]);
    rec.stop();
    std::fs::read_dir(&capture)
        .expect("the capture directory exists")
        .map(|e| e.expect("listing the capture").path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("the recorder wrote a segment")
}

/// How many leading bytes of a sealed segment its data digest covers.
pub fn sealed_data_bytes(segment: &Path) -> usize {
    use parquet::file::reader::FileReader as _;
    let file = std::fs::File::open(segment).expect("the segment opens");
    let reader = parquet::file::reader::SerializedFileReader::new(file).expect("a Parquet file");
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| {
            kv.iter()
                .find(|e| e.key == fantrace_schema::metadata::DATA_BYTES)
                .and_then(|e| e.value.as_ref())
                .and_then(|v| v.parse().ok())
        })
        .expect("a sealed segment states its data bytes")
}
