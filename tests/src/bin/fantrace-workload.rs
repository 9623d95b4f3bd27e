//! The workload the end-to-end tests and the demo run under the recorder: `fanotify_mark(2)`
//! calls with known arguments, printed as one JSON object per call so a test can check the
//! capture holds exactly these.
use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use fantrace_tests::calls::{
    AT_FDCWD, Call, IA32_FANOTIFY_INIT, IA32_FANOTIFY_MARK, call, call_unreadable_path,
    fanotify_init,
};

const FAN_CLOEXEC: u32 = 0x1;
const FAN_NONBLOCK: u32 = 0x2;
const FAN_CLASS_CONTENT: u32 = 0x4;
const FAN_OPEN_PERM: u64 = 0x1_0000;
const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_REMOVE: u32 = 0x2;
const FAN_MARK_DONT_FOLLOW: u32 = 0x4;
const FAN_MARK_ONLYDIR: u32 = 0x8;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_FLUSH: u32 = 0x80;
const FAN_MARK_FILESYSTEM: u32 = 0x100;
const FAN_ACCESS: u64 = 0x1;
const FAN_MODIFY: u64 = 0x2;
const FAN_CLOSE_WRITE: u64 = 0x8;
const FAN_CLOSE_NOWRITE: u64 = 0x10;
const FAN_OPEN: u64 = 0x20;
const FAN_EVENT_ON_CHILD: u64 = 0x0800_0000;
const FAN_ONDIR: u64 = 0x4000_0000;

/// Make fanotify_mark(2) calls with known arguments and print each as a JSON line.
#[derive(Parser)]
struct Args {
    /// Directory to create the marked files in (default: a fresh one under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Thread name (comm) of the main thread, at most 15 bytes.
    #[arg(long, default_value = "fantrace-wl")]
    comm: String,
    /// Storm mode: make this many fast-failing calls per round (bad fd) instead of the scenario, and
    /// print one JSON summary line.
    #[arg(long)]
    storm: Option<u64>,
    /// Storm mode: threads sharing the calls.
    #[arg(long, default_value_t = 1)]
    threads: u64,
    /// Storm mode: length of each call's path.
    #[arg(long, default_value_t = 16)]
    path_bytes: usize,
    /// Storm mode: a different random path on every call (defeats compression).
    #[arg(long)]
    random_paths: bool,
    /// Storm mode: repeat the storm this many times...
    #[arg(long, default_value_t = 1)]
    rounds: u64,
    /// ...pausing this many milliseconds between rounds.
    #[arg(long, default_value_t = 0)]
    round_pause_ms: u64,
    /// Stay alive this long after the calls, so the recorder can read /proc/PID (exe).
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// Print `{"pid":N}` and wait for a line on stdin before calling, so a recorder can be
    /// pointed at this process first.
    #[arg(long)]
    wait_stdin: bool,
    /// Run the mark lifecycle (`fantrace_tests::lifecycle`) in --dir, printing a checkpoint
    /// line between steps, instead of the scenario.
    #[arg(long)]
    lifecycle: bool,
    /// Make a group with one mark, print `{"pid","fd"}`, and after a line on stdin add a second
    /// mark, print a checkpoint and wait for another line before exiting.
    #[arg(long)]
    early_group: bool,
    /// Run the truth lifecycle (`fantrace_tests::truth`): every way of naming, sharing and
    /// ending marks, on a tmpfs mounted on --dir, printing fdinfo of every group fd at each
    /// checkpoint.
    #[arg(long)]
    truth: bool,
    /// Truth lifecycle: how long to wait after each step before the checkpoint, in ms (the
    /// recorder compares with the kernel every second).
    #[arg(long, default_value_t = 1500)]
    settle_ms: u64,
    /// Truth lifecycle: first make a group, print `fantrace_tests::truth::READY` and wait for
    /// a line on stdin (start the recorder in between).
    #[arg(long)]
    before_recorder: bool,
}

/// Calls `fanotify_mark(-1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, path)` `calls` times: the
/// kernel fails them with EBADF after the probe has seen every argument.
fn storm(calls: u64, path_bytes: usize, random: bool, seed: u64) -> u64 {
    let mut path = vec![b'/'; path_bytes.max(1)];
    let mut x = seed | 1;
    let mut made = 0;
    for _ in 0..calls {
        if random {
            for b in path.iter_mut().skip(1) {
                // xorshift64: cheap, and random enough that zstd cannot shrink the paths.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = b'!' + (x % 90) as u8;
            }
        }
        fantrace_tests::calls::fanotify_mark(-1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, Some(&path));
        made += 1;
    }
    made
}

fn run_storm(args: &Args, total: u64) -> anyhow::Result<u64> {
    let threads = args.threads.max(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let share = total / threads + u64::from(t < total % threads);
            let (bytes, random) = (args.path_bytes, args.random_paths);
            std::thread::Builder::new()
                .name(format!("storm-{t}"))
                .spawn(move || storm(share, bytes, random, 0x9e37_79b9_7f4a_7c15 ^ (t + 1)))
        })
        .collect::<Result<_, _>>()
        .context("starting storm threads")?;
    let mut made = 0;
    for h in handles {
        made += h
            .join()
            .map_err(|_| anyhow::anyhow!("a storm thread panicked"))?;
    }
    Ok(made)
}

fn run_storms(args: &Args, total: u64) -> anyhow::Result<()> {
    let mut made = 0;
    for round in 0..args.rounds.max(1) {
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(args.round_pause_ms));
        }
        made += run_storm(args, total)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        serde_json::json!({ "pid": std::process::id(), "calls": made })
    )
    .context("writing to stdout")?;
    Ok(())
}

/// Runs `body` in a forked child and returns the call it hands back through a pipe. The child
/// lingers after the call so the recorder can read its /proc entry.
fn in_child(
    what: &str,
    linger_ms: u64,
    body: impl FnOnce() -> Option<Call>,
) -> anyhow::Result<(Call, libc::pid_t)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the process is single-threaded here (the helper thread was joined), so the
    // child may run ordinary Rust code before exiting with _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: plain syscalls in the child; _exit never returns.
        unsafe {
            libc::close(fds[0]);
            let made = body();
            if let Some(c) = &made {
                let json = serde_json::to_vec(c).unwrap_or_default();
                libc::write(fds[1], json.as_ptr().cast(), json.len());
            }
            libc::close(fds[1]);
            std::thread::sleep(std::time::Duration::from_millis(linger_ms));
            libc::_exit(if made.is_some() { 0 } else { 1 });
        }
    }
    // SAFETY: closing our copy of the write end; reading from the read end we own.
    unsafe { libc::close(fds[1]) };
    let mut json = Vec::new();
    {
        use std::io::Read as _;
        use std::os::fd::FromRawFd as _;
        // SAFETY: fds[0] is an open descriptor only this File owns from here on.
        let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        f.read_to_end(&mut json)
            .with_context(|| format!("reading the call of the child {what}"))?;
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the child {what} failed");
    }
    let call = serde_json::from_slice(&json).with_context(|| format!("the call of {what}"))?;
    Ok((call, child))
}

/// A child process that drops to uid/gid 65534 (nobody) and makes one call: a known parent and
/// a known uid after setuid.
fn as_other_user(fd: i32, dir: &[u8], linger_ms: u64) -> anyhow::Result<Call> {
    let (c, _) = in_child("switching to uid 65534", linger_ms, || {
        // SAFETY: plain syscalls in the freshly forked child.
        let ok = unsafe { libc::setgid(65534) == 0 && libc::setuid(65534) == 0 };
        let c = call(
            "as uid 65534 in a child",
            fd,
            FAN_MARK_ADD,
            FAN_OPEN,
            AT_FDCWD,
            Some(dir),
        );
        ok.then_some(c)
    })?;
    Ok(c)
}

/// A call from pid 1 of a new pid namespace (a child that unshares, then its child): the probe
/// must report the caller's own pid namespace, not the host's, and host pids.
fn in_new_pid_namespace(fd: i32, dir: &[u8], linger_ms: u64) -> anyhow::Result<Call> {
    let (c, _) = in_child("creating a pid namespace", linger_ms, || {
        // SAFETY: unshare with a plain flag in the single-threaded child.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return None;
        }
        let host_ppid = std::process::id();
        let (mut c, host_pid) = in_child("in the new pid namespace", linger_ms, || {
            Some(call(
                "pid 1 of a new pid namespace",
                fd,
                FAN_MARK_ADD,
                FAN_OPEN,
                AT_FDCWD,
                Some(dir),
            ))
        })
        .ok()?;
        // Inside, the caller is pid 1 with no visible parent; the capture holds host ids.
        (c.pid == 1).then_some(())?;
        c.pid = host_pid as u32;
        c.tid = host_pid as u32;
        c.ppid = host_ppid;
        Some(c)
    })?;
    Ok(c)
}

fn set_comm(name: &str) -> anyhow::Result<()> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: PR_SET_NAME takes a NUL-terminated string of up to 16 bytes.
    if unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) } != 0 {
        bail!("prctl(PR_SET_NAME): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Syscalls whose numbers mean `fanotify_init`/`fanotify_mark` in the *other* ABI's table: ia32
/// calls numbered 300 and 301 (native fanotify_init/mark; fstatat64 and unlinkat in the ia32
/// table) and native calls numbered 338 and 339 (ia32 fanotify_init/mark; unassigned in the
/// native table). None may be recorded, so they are not in the workload's list of calls.
fn abi_lookalikes() -> anyhow::Result<()> {
    #[cfg(target_arch = "x86_64")]
    for nr in [libc::SYS_fanotify_init, libc::SYS_fanotify_mark] {
        // dirfd -1 and NULL pointers: EBADF or EFAULT, never a change.
        let ret = fantrace_tests::calls::ia32_syscall(nr as u32, [u32::MAX, 0, 0, 0, 0, 0]);
        if ret != -i64::from(libc::EBADF) && ret != -i64::from(libc::EFAULT) {
            bail!(
                "ia32 syscall {nr} returned {ret}; expected EBADF or EFAULT (IA32 emulation off?)"
            );
        }
    }
    for nr in [IA32_FANOTIFY_INIT, IA32_FANOTIFY_MARK] {
        // SAFETY: an unassigned native syscall number only returns ENOSYS.
        let ret = unsafe { libc::syscall(libc::c_long::from(nr), 0, 0, 0, 0, 0) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        if ret != -1 || errno != Some(libc::ENOSYS) {
            bail!("native syscall {nr} returned {ret} ({errno:?}); expected ENOSYS");
        }
    }
    Ok(())
}

/// A group made and marked through the ia32 ABI (`int $0x80` from this 64-bit process), as
/// a 32-bit program or malware avoiding the native ABI would: its `fanotify_init` and marks
/// must be recorded like native ones, the 64-bit mask joined from its two halves.
#[cfg(target_arch = "x86_64")]
fn ia32_group(dir: &[u8]) -> anyhow::Result<Vec<Call>> {
    use fantrace_tests::calls::{Low32Buffer, ia32_call, ia32_syscall};
    let mut buffer = Low32Buffer::new(4096).context("mapping a buffer below 4 GiB")?;
    let fd = ia32_syscall(
        IA32_FANOTIFY_INIT,
        [FAN_CLOEXEC, libc::O_RDONLY as u32, 0, 0, 0, 0],
    );
    if fd < 0 {
        bail!(
            "ia32 fanotify_init failed: errno {} (IA32 emulation off?)",
            -fd
        );
    }
    let fd = fd as i32;
    let calls = vec![
        ia32_call(
            "ia32 add",
            fd,
            FAN_MARK_ADD,
            FAN_OPEN | FAN_CLOSE_WRITE | FAN_ONDIR,
            AT_FDCWD,
            dir,
            &mut buffer,
        ),
        // A bit in the mask's high half: the kernel refuses it, and the row must show the
        // whole 64-bit mask it refused.
        ia32_call(
            "ia32 mask with a high-half bit",
            fd,
            FAN_MARK_ADD,
            (1 << 32) | FAN_OPEN,
            AT_FDCWD,
            dir,
            &mut buffer,
        ),
    ];
    // SAFETY: our own fd, closed once.
    unsafe { libc::close(fd) };
    Ok(calls)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    set_comm(&args.comm)?;
    if args.wait_stdin {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::json!({ "pid": std::process::id() }))?;
        out.flush()?;
        drop(out);
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("waiting on stdin")?;
    }
    if let Some(total) = args.storm {
        return run_storms(&args, total);
    }
    if args.truth {
        let dir = args.dir.clone().context("--truth needs --dir")?;
        return fantrace_tests::truth::run(
            &dir,
            std::time::Duration::from_millis(args.settle_ms),
            args.before_recorder,
        );
    }
    if args.lifecycle || args.early_group {
        let dir = args
            .dir
            .clone()
            .context("--lifecycle and --early-group need --dir")?;
        std::fs::create_dir_all(dir.join("sub"))
            .with_context(|| format!("creating {}", dir.display()))?;
        return if args.lifecycle {
            fantrace_tests::lifecycle::run(&dir)
        } else {
            fantrace_tests::lifecycle::early_group(&dir)
        };
    }
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("fantrace-workload-{}", std::process::id())),
    };
    std::fs::create_dir_all(dir.join("sub"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let dir_bytes = dir.as_os_str().as_bytes().to_vec();
    let mut non_utf8 = dir_bytes.clone();
    non_utf8.extend_from_slice(b"/bad-\xff\xfe-name");
    std::fs::write(OsStr::from_bytes(&non_utf8), b"x").context("creating the non-UTF-8 file")?;

    let fd = fanotify_init(FAN_CLOEXEC | FAN_NONBLOCK, libc::O_RDONLY as u32);
    if fd < 0 {
        bail!("fanotify_init failed: errno {} (are you root?)", -fd);
    }
    let fd = fd as i32;
    let dirfd = std::fs::File::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let dirfd_raw = dirfd.as_raw_fd();

    // A path of exactly 4000 bytes: absolute, made of 99-byte components that do not exist.
    let mut long = b"/".to_vec();
    while long.len() < 4000 {
        let room = 4000 - long.len();
        let part = room.min(100);
        long.extend(std::iter::repeat_n(b'p', part.saturating_sub(1)));
        if long.len() < 4000 {
            long.push(b'/');
        }
    }
    debug_assert_eq!(long.len(), 4000);

    let inode_mask = FAN_OPEN | FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD | FAN_ONDIR;
    let mut calls: Vec<Call> = vec![
        call(
            "inode add, AT_FDCWD",
            fd,
            FAN_MARK_ADD,
            inode_mask,
            AT_FDCWD,
            Some(&dir_bytes),
        ),
        call(
            "bad fanotify fd",
            -1,
            FAN_MARK_ADD,
            FAN_OPEN,
            AT_FDCWD,
            Some(&dir_bytes),
        ),
        call(
            "mount mark",
            fd,
            FAN_MARK_ADD | FAN_MARK_MOUNT,
            FAN_OPEN,
            AT_FDCWD,
            Some(&dir_bytes),
        ),
        call(
            "filesystem mark",
            fd,
            FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
            FAN_OPEN | FAN_CLOSE_NOWRITE,
            AT_FDCWD,
            Some(&dir_bytes),
        ),
        call(
            "relative to a real dirfd",
            fd,
            FAN_MARK_ADD | FAN_MARK_ONLYDIR,
            FAN_MODIFY,
            dirfd_raw,
            Some(b"sub"),
        ),
        call(
            "non-UTF-8 path",
            fd,
            FAN_MARK_ADD | FAN_MARK_DONT_FOLLOW,
            FAN_ACCESS,
            AT_FDCWD,
            Some(&non_utf8),
        ),
        call(
            "4000-byte path",
            fd,
            FAN_MARK_ADD,
            FAN_OPEN,
            AT_FDCWD,
            Some(&long),
        ),
        call(
            "empty path",
            fd,
            FAN_MARK_ADD,
            FAN_OPEN,
            AT_FDCWD,
            Some(b""),
        ),
    ];
    let thread_dir = dir_bytes.clone();
    let from_thread = std::thread::Builder::new()
        .name("fantrace-wl-thr".into())
        .spawn(move || {
            call(
                "remove from a thread",
                fd,
                FAN_MARK_REMOVE,
                inode_mask,
                AT_FDCWD,
                Some(&thread_dir),
            )
        })
        .context("starting the workload thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the workload thread panicked"))?;
    calls.push(from_thread);
    calls.push(call(
        "flush with NULL path",
        fd,
        FAN_MARK_FLUSH,
        0,
        AT_FDCWD,
        None,
    ));
    calls.push(call_unreadable_path(
        "unreadable path",
        fd,
        FAN_MARK_ADD,
        FAN_OPEN,
        AT_FDCWD,
    ));
    let mut too_long = b"/".to_vec();
    too_long.extend(std::iter::repeat_n(b'q', 4999));
    calls.push(call(
        "5000-byte path, truncated",
        fd,
        FAN_MARK_ADD,
        FAN_OPEN,
        AT_FDCWD,
        Some(&too_long),
    ));
    calls.push(as_other_user(fd, &dir_bytes, args.linger_ms)?);
    calls.push(in_new_pid_namespace(fd, &dir_bytes, args.linger_ms)?);
    // A content-class group (it may receive permission events) with a FAN_OPEN_PERM mark. It is
    // closed at once: nothing here answers permission events, and an open under the mark would
    // wait for an answer.
    let content_fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, libc::O_RDONLY as u32);
    if content_fd < 0 {
        bail!(
            "fanotify_init(FAN_CLASS_CONTENT) failed: errno {}",
            -content_fd
        );
    }
    let mut sub = dir_bytes.clone();
    sub.extend_from_slice(b"/sub");
    calls.push(call(
        "permission mark in a content group",
        content_fd as i32,
        FAN_MARK_ADD,
        FAN_OPEN_PERM,
        AT_FDCWD,
        Some(&sub),
    ));
    // SAFETY: our own fd, closed once.
    unsafe { libc::close(content_fd as i32) };
    calls.push(call(
        "flush mount marks, NULL path",
        fd,
        FAN_MARK_FLUSH | FAN_MARK_MOUNT,
        0,
        AT_FDCWD,
        None,
    ));

    #[cfg(target_arch = "x86_64")]
    calls.extend(ia32_group(&dir_bytes)?);
    abi_lookalikes()?;

    std::thread::sleep(std::time::Duration::from_millis(args.linger_ms));
    let mut out = std::io::stdout().lock();
    for c in &calls {
        writeln!(out, "{}", serde_json::to_string(c)?).context("writing to stdout")?;
    }
    drop(dirfd);
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}
