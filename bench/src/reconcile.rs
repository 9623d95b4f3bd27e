//! What keeping in step with the kernel costs the recorder on a busy host: every second it
//! scans every fanotify fd on the machine (a BPF iterator over every open file) and reads each
//! group's fdinfo. With a thousand processes holding twenty files each and ten groups of ten
//! marks, the recorder's CPU with the default interval is compared with the same recorder
//! looking only once an hour.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::capture_cost::Bench;
use crate::report::Row;

/// Processes standing in for a host's.
pub const PROCESSES: usize = 1000;
/// Files each one holds open.
pub const FILES: usize = 20;
/// Of those processes, how many hold a fanotify group, and marks per group.
pub const GROUPS: usize = 10;
pub const MARKS: usize = 10;

/// How long the recorder's CPU is measured for, after it started.
const WINDOW: Duration = Duration::from_secs(20);

#[derive(clap::Args, Clone, Debug)]
pub struct IdleArgs {
    /// Files to hold open.
    #[arg(long, default_value_t = FILES)]
    pub files: usize,
    /// Also make a fanotify group with this many inode marks in --dir.
    #[arg(long, default_value_t = 0)]
    pub marks: usize,
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// A process of the crowd: holds its files (and group) until killed.
pub fn idle(args: &IdleArgs) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(args.files);
    for _ in 0..args.files {
        held.push(std::fs::File::open("/dev/null").context("opening /dev/null")?);
    }
    if args.marks > 0 {
        let dir = args.dir.as_deref().context("--marks needs --dir")?;
        // SAFETY: plain syscalls; the fd is kept for the life of the process.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_fanotify_init,
                libc::FAN_CLASS_NOTIF,
                libc::O_RDONLY,
            )
        };
        anyhow::ensure!(
            fd >= 0,
            "fanotify_init: {}",
            std::io::Error::last_os_error()
        );
        for i in 0..args.marks {
            let path = dir.join(format!("f{}-{i}", std::process::id()));
            std::fs::write(&path, b"x")?;
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
            // SAFETY: a valid path and group fd.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_fanotify_mark,
                    fd,
                    libc::FAN_MARK_ADD,
                    libc::FAN_OPEN,
                    libc::AT_FDCWD,
                    c.as_ptr(),
                )
            };
            anyhow::ensure!(r == 0, "fanotify_mark: {}", std::io::Error::last_os_error());
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

struct Crowd(Vec<Child>);

impl Drop for Crowd {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// User and system CPU of a process so far, ns.
fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/PID/stat")?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(ticks * 1_000_000_000 / hz)
}

impl Bench {
    /// The recorder's CPU while a crowd of processes idles, with `--reconcile-interval` of
    /// `interval`: a share of one core.
    fn recorder_cpu(&self, interval: &str, capture: &Path) -> anyhow::Result<f64> {
        let _ = std::fs::remove_dir_all(capture);
        let mut rec = Command::new(self.bin_dir.join("fantrace-recorder"))
            .arg("--output")
            .arg(capture)
            .args(["--reconcile-interval", interval])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the recorder")?;
        let pid = rec.id();
        let mut out = std::io::BufReader::new(rec.stdout.take().context("recorder stdout")?);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).context("waiting for the recorder")?;
        // Past start-up (BTF, the first scan), in its steady state.
        std::thread::sleep(Duration::from_secs(2));
        let (cpu0, t0) = (cpu_ns(pid)?, Instant::now());
        std::thread::sleep(WINDOW);
        let (cpu1, elapsed) = (cpu_ns(pid)?, t0.elapsed());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        rec.wait().context("waiting for the recorder to stop")?;
        Ok((cpu1 - cpu0) as f64 / elapsed.as_nanos() as f64)
    }

    pub fn reconcile(&self) -> anyhow::Result<Vec<Row>> {
        let dir = self.work.join("reconcile-marked");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let bench = self.bin_dir.join("fantrace-bench");
        let mut crowd = Crowd(Vec::with_capacity(PROCESSES));
        for i in 0..PROCESSES {
            let mut cmd = Command::new(&bench);
            cmd.args(["idle", "--files", &FILES.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if i < GROUPS {
                cmd.args(["--marks", &MARKS.to_string(), "--dir"]).arg(&dir);
            }
            crowd
                .0
                .push(cmd.spawn().context("starting an idle process")?);
        }
        // Let every process open its files and make its marks.
        std::thread::sleep(Duration::from_secs(3));
        let mut on = Vec::new();
        let mut off = Vec::new();
        for r in 0..self.repeat {
            eprintln!("  reconcile: run {} of {}", r + 1, self.repeat);
            on.push(self.recorder_cpu("1", &self.work.join("reconcile-on"))?);
            off.push(self.recorder_cpu("3600", &self.work.join("reconcile-off"))?);
        }
        drop(crowd);
        let (on, off) = (crate::stats::median(&on), crate::stats::median(&off));
        let per_pass_ms = (on - off) * 1000.0;
        Ok(vec![
            Row::new(
                format!(
                    "recorder CPU keeping in step with the kernel ({PROCESSES} processes of \
                     {FILES} files, {GROUPS} groups of {MARKS} marks; scan and fdinfo every 1 s)"
                ),
                format!(
                    "{:.2}% of a core ({:.2}% looking once an hour): {per_pass_ms:.1} ms per pass",
                    on * 100.0,
                    off * 100.0
                ),
            )
            .target("≤ 1% of a core", on - off <= 0.01),
        ])
    }
}
