//! The bench's own workload: a tight loop of raw `fanotify_mark(2)` syscalls, the way a C
//! program would make them (no allocation, no libc wrapper logic per call). It runs in a
//! child process (`fantrace-bench call ...`) so the timing covers nothing but the calls.
use std::ffi::CString;
use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_REMOVE: u32 = 0x2;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_OPEN: u64 = 0x20;
const FAN_CLOSE_WRITE: u64 = 0x8;
const FAN_MODIFY: u64 = 0x2;
const FAN_ONDIR: u64 = 0x4000_0000;
const FAN_EVENT_ON_CHILD: u64 = 0x0800_0000;
const FAN_CLASS_NOTIF: u32 = 0x0;
const AT_FDCWD: i32 = -100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `fanotify_mark(-1, ...)`: the kernel fails it with EBADF at once (about 100 ns).
    Fail,
    /// A real mark added and removed in turn on one directory (about 1.2 µs).
    Mark,
    /// Many paths, flags and masks from several named processes; most calls fail on a
    /// missing path, some succeed, some hit a bad fd.
    Varied,
    /// `getppid(2)`, a syscall fantrace does not record: what tracing costs every other call
    /// on the machine (syscall tracepoints of any kind send every syscall down the traced path).
    Other,
}

#[derive(Args, Debug, Clone)]
pub struct CallArgs {
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Stop after this many calls...
    #[arg(long, conflicts_with = "seconds")]
    pub calls: Option<u64>,
    /// ...or after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Varied mode: run this many worker processes, each with its own name.
    #[arg(long, default_value_t = 4)]
    pub procs: usize,
    /// Set by the varied mode's parent: which worker this process is.
    #[arg(long, hide = true)]
    pub worker: Option<usize>,
    /// Pin the calling thread to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Directory the mark modes mark (it must exist).
    #[arg(long, default_value = "/tmp")]
    pub dir: String,
}

/// What one calling run did, printed as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallReport {
    pub calls: u64,
    pub elapsed_ns: u64,
    /// CPU time of the calling thread alone (`CLOCK_THREAD_CPUTIME_ID`: the scheduler's exact
    /// run time, kernel and BPF work done in its syscalls included, the tracer's own threads
    /// not). In a guest under `icount` this is the instructions the caller executed.
    #[serde(default)]
    pub thread_cpu_ns: u64,
}

impl CallReport {
    pub fn ns_per_call(&self) -> f64 {
        self.elapsed_ns as f64 / self.calls.max(1) as f64
    }

    pub fn cpu_ns_per_call(&self) -> f64 {
        self.thread_cpu_ns as f64 / self.calls.max(1) as f64
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; the clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[inline(always)]
fn mark(fd: i32, flags: u32, mask: u64, dirfd: i32, path: *const libc::c_char) -> i64 {
    // SAFETY: integer arguments and a NUL-terminated path that outlives the call.
    unsafe { libc::syscall(libc::SYS_fanotify_mark, fd, flags, mask, dirfd, path) }
}

/// Runs the calls and prints the report.
pub fn run(args: &CallArgs) -> anyhow::Result<()> {
    if let Some(cpu) = args.cpu {
        pin_to(cpu)?;
    }
    let report = match (args.mode, args.worker) {
        (Mode::Varied, None) => run_varied_workers(args)?,
        (Mode::Varied, Some(worker)) => varied(args, worker)?,
        (Mode::Fail, _) => fail(args)?,
        (Mode::Mark, _) => add_remove(args)?,
        (Mode::Other, _) => other(args),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&report)?).context("writing the report")?;
    Ok(())
}

/// Calls `one(i)` until the budget is spent; the clock is read every 1024 calls so reading it
/// costs nothing measurable.
#[inline(always)]
fn timed(args: &CallArgs, mut one: impl FnMut(u64)) -> CallReport {
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut calls = 0u64;
    match (args.calls, args.seconds) {
        (Some(n), _) => {
            while calls < n {
                one(calls);
                calls += 1;
            }
        }
        (None, secs) => {
            let budget = Duration::from_secs_f64(secs.unwrap_or(1.0));
            loop {
                for _ in 0..1024 {
                    one(calls);
                    calls += 1;
                }
                if start.elapsed() >= budget {
                    break;
                }
            }
        }
    }
    CallReport {
        calls,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        thread_cpu_ns: thread_cpu_ns() - cpu_start,
    }
}

fn fail(args: &CallArgs) -> anyhow::Result<CallReport> {
    let path = CString::new(args.dir.as_str())?;
    Ok(timed(args, |_| {
        mark(-1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, path.as_ptr());
    }))
}

fn other(args: &CallArgs) -> CallReport {
    timed(args, |_| {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    })
}

fn fanotify_group() -> anyhow::Result<i32> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_fanotify_init, FAN_CLASS_NOTIF, libc::O_RDONLY) };
    if fd < 0 {
        bail!(
            "fanotify_init failed: {} (the bench needs root)",
            std::io::Error::last_os_error()
        );
    }
    Ok(fd as i32)
}

fn add_remove(args: &CallArgs) -> anyhow::Result<CallReport> {
    let fd = fanotify_group()?;
    let path = CString::new(args.dir.as_str())?;
    let mask = FAN_OPEN | FAN_CLOSE_WRITE;
    // Check once that the calls really succeed: a loop of failures would measure the wrong
    // thing.
    if mark(fd, FAN_MARK_ADD, mask, AT_FDCWD, path.as_ptr()) != 0
        || mark(fd, FAN_MARK_REMOVE, mask, AT_FDCWD, path.as_ptr()) != 0
    {
        bail!(
            "fanotify_mark on {} failed: {}",
            args.dir,
            std::io::Error::last_os_error()
        );
    }
    let report = timed(args, |i| {
        let flags = if i % 2 == 0 {
            FAN_MARK_ADD
        } else {
            FAN_MARK_REMOVE
        };
        mark(fd, flags, mask, AT_FDCWD, path.as_ptr());
    });
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    Ok(report)
}

/// Process names of the varied workload: the kinds of programs that set fanotify marks.
const WORKER_NAMES: &[&str] = &[
    "clamd",
    "fapolicyd",
    "mdatp",
    "falcon-sensor",
    "auditbeat",
    "tracker-miner",
    "osqueryd",
    "dropbox",
];
const DIRS: &[&str] = &[
    "/etc",
    "/root",
    "/home/alice/.ssh",
    "/home/bob/projects",
    "/usr/bin",
    "/usr/lib/x86_64-linux-gnu",
    "/var/log",
    "/var/lib/docker/overlay2",
    "/srv/www/htdocs",
    "/opt/app/releases",
    "/tmp",
    "/dev/shm",
];
const EXTS: &[&str] = &["conf", "so", "log", "py", "txt", "json", "key", "db"];
const MASKS: &[u64] = &[
    FAN_OPEN,
    FAN_OPEN | FAN_CLOSE_WRITE,
    FAN_MODIFY,
    FAN_OPEN | FAN_ONDIR | FAN_EVENT_ON_CHILD,
    FAN_CLOSE_WRITE | FAN_MODIFY,
];

fn run_varied_workers(args: &CallArgs) -> anyhow::Result<CallReport> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let start = Instant::now();
    let children = (0..args.procs.max(1))
        .map(|w| {
            let mut cmd = Command::new(&exe);
            cmd.args(["call", "--mode", "varied", "--worker", &w.to_string()]);
            match (args.calls, args.seconds) {
                (Some(n), _) => cmd.args(["--calls", &(n / args.procs.max(1) as u64).to_string()]),
                (None, s) => cmd.args(["--seconds", &s.unwrap_or(1.0).to_string()]),
            };
            cmd.stdout(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("starting varied worker {w}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut calls = 0;
    for child in children {
        let out = child.wait_with_output().context("waiting for a worker")?;
        if !out.status.success() {
            bail!("a varied worker failed: {}", out.status);
        }
        let r: CallReport = serde_json::from_slice(&out.stdout).context("worker report")?;
        calls += r.calls;
    }
    Ok(CallReport {
        calls,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        thread_cpu_ns: 0,
    })
}

fn varied(args: &CallArgs, worker: usize) -> anyhow::Result<CallReport> {
    let name = WORKER_NAMES[worker % WORKER_NAMES.len()];
    let cname = CString::new(name)?;
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr()) };
    let fd = fanotify_group()?;
    // A fixed vocabulary of paths, like a real watcher's configuration, built before timing.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1);
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let paths: Vec<CString> = (0..4096)
        .map(|_| {
            let r = rand();
            let dir = DIRS[(r % DIRS.len() as u64) as usize];
            let ext = EXTS[((r >> 8) % EXTS.len() as u64) as usize];
            CString::new(format!("{dir}/file-{}.{ext}", (r >> 16) % 5000))
        })
        .collect::<Result<_, _>>()?;
    let dirs: Vec<CString> = DIRS
        .iter()
        .map(|d| CString::new(*d))
        .collect::<Result<_, _>>()?;
    Ok(timed(args, |_| {
        let r = rand();
        let mask = MASKS[((r >> 40) % MASKS.len() as u64) as usize];
        match r % 16 {
            // Existing directories: real marks, added and later removed.
            0..=2 => {
                let d = dirs[((r >> 8) % dirs.len() as u64) as usize].as_ptr();
                let flags = if r & 0x100 == 0 {
                    FAN_MARK_ADD
                } else {
                    FAN_MARK_REMOVE
                };
                mark(fd, flags, mask, AT_FDCWD, d);
            }
            // A mount mark that a notification group may set.
            3 => {
                mark(
                    fd,
                    FAN_MARK_ADD | FAN_MARK_MOUNT,
                    FAN_OPEN,
                    AT_FDCWD,
                    dirs[10].as_ptr(),
                );
            }
            // A stale fd.
            4 => {
                mark(-1, FAN_MARK_ADD, mask, AT_FDCWD, paths[0].as_ptr());
            }
            // Files that mostly do not exist: ENOENT after a path walk.
            _ => {
                let p = paths[((r >> 16) % paths.len() as u64) as usize].as_ptr();
                mark(fd, FAN_MARK_ADD, mask, AT_FDCWD, p);
            }
        }
    }))
}

fn pin_to(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "pinning to CPU {cpu}: {} (does this machine have that CPU?)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
