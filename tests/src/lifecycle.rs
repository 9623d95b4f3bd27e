//! A mark lifecycle with known state at each step, for the mark-state tests: marks added,
//! partly removed, flushed, a child's permission group that ends when the child exits, a group
//! fd closed and the number reused by a new group, a mark re-added; and a group made before
//! the recording started. The workload runs it (`--lifecycle`, `--early-group`) and prints a
//! checkpoint line between steps; [`expected`] says what `marks_at` must list at each.
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::calls::{AT_FDCWD, fanotify_init, fanotify_mark, realtime_ns};

const FAN_CLASS_NOTIF: u32 = 0x0;
const FAN_CLASS_CONTENT: u32 = 0x4;
const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_REMOVE: u32 = 0x2;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_FLUSH: u32 = 0x80;
pub const FAN_ACCESS: u64 = 0x1;
pub const FAN_MODIFY: u64 = 0x2;
pub const FAN_CLOSE_WRITE: u64 = 0x8;
pub const FAN_OPEN: u64 = 0x20;
pub const FAN_OPEN_PERM: u64 = 0x1_0000;
/// The child's exit code, which the capture's `process_exit` row must carry.
pub const CHILD_EXIT_CODE: i32 = 3;

/// A moment between two steps, and who held which group then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub name: String,
    /// CLOCK_REALTIME, ns: half-way through a quiet gap after the step.
    pub time_ns: i64,
    pub pid: u32,
    pub fd: i32,
    /// The child's pid and group fd, once it exists.
    pub child: Option<(u32, i32)>,
}

/// A mark `marks_at` must list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub pid: u32,
    pub fd: i32,
    pub class: String,
    /// `None` for the "unknown" row of a group made before the recording.
    pub mark_type: Option<String>,
    pub path: Option<String>,
    pub mask: u64,
    pub state: String,
}

/// Half of the quiet time around each checkpoint: long enough that the recorder's clock
/// conversion cannot move a call across it.
const GAP: Duration = Duration::from_millis(40);

fn checkpoint(name: &str, pid: u32, fd: i32, child: Option<(u32, i32)>) -> anyhow::Result<()> {
    std::thread::sleep(GAP);
    let c = Checkpoint {
        name: name.to_string(),
        time_ns: realtime_ns(),
        pid,
        fd,
        child,
    };
    std::thread::sleep(GAP);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&c)?)?;
    out.flush()?;
    Ok(())
}

fn mark(fd: i32, flags: u32, mask: u64, path: Option<&Path>) -> anyhow::Result<()> {
    let bytes = path.map(|p| p.as_os_str().as_bytes());
    let ret = fanotify_mark(fd, flags, mask, AT_FDCWD, bytes);
    if ret != 0 {
        bail!(
            "fanotify_mark({fd}, {flags:#x}, {mask:#x}, {path:?}) failed: errno {}",
            -ret
        );
    }
    Ok(())
}

fn init(flags: u32) -> anyhow::Result<i32> {
    let fd = fanotify_init(flags, libc::O_RDONLY as u32);
    if fd < 0 {
        bail!(
            "fanotify_init({flags:#x}) failed: errno {} (are you root?)",
            -fd
        );
    }
    Ok(fd as i32)
}

/// The lifecycle, in `dir` (which must exist, with a `sub` directory).
pub fn run(dir: &Path) -> anyhow::Result<()> {
    let sub = dir.join("sub");
    let pid = std::process::id();
    let fd = init(FAN_CLASS_NOTIF)?;
    mark(fd, FAN_MARK_ADD, FAN_OPEN | FAN_CLOSE_WRITE, Some(dir))?;
    mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN, Some(dir))?;
    mark(fd, FAN_MARK_ADD, FAN_MODIFY, Some(&sub))?;
    checkpoint("added", pid, fd, None)?;
    mark(fd, FAN_MARK_REMOVE, FAN_OPEN, Some(dir))?;
    mark(fd, FAN_MARK_REMOVE, FAN_MODIFY, Some(&sub))?;
    checkpoint("removed", pid, fd, None)?;
    // Flushing inode marks (a mark type of 0) takes no path.
    mark(fd, FAN_MARK_FLUSH, 0, None)?;
    checkpoint("flushed", pid, fd, None)?;
    let (child, child_fd, done) = permission_child(dir)?;
    checkpoint("child alive", pid, fd, Some((child, child_fd)))?;
    done()?;
    checkpoint("child exited", pid, fd, Some((child, child_fd)))?;
    // SAFETY: closing a descriptor this function opened and no one else uses.
    unsafe { libc::close(fd) };
    let again = init(FAN_CLASS_NOTIF)?;
    if again != fd {
        bail!("the new group got fd {again}, not the closed {fd}: the fd-reuse step needs it");
    }
    mark(again, FAN_MARK_ADD, FAN_ACCESS, Some(dir))?;
    checkpoint("fd reused", pid, again, None)?;
    mark(again, FAN_MARK_ADD, FAN_MODIFY, Some(&sub))?;
    checkpoint("re-added", pid, again, None)?;
    Ok(())
}

/// A child that makes a content-class group with a permission mark on `dir`, then exits with
/// [`CHILD_EXIT_CODE`] when told to. Returns its pid, its fd and the call that ends it.
#[allow(clippy::type_complexity)]
fn permission_child(
    dir: &Path,
) -> anyhow::Result<(u32, i32, Box<dyn FnOnce() -> anyhow::Result<()>>)> {
    let mut ready = [0i32; 2];
    let mut go = [0i32; 2];
    // SAFETY: valid two-element arrays.
    if unsafe { libc::pipe(ready.as_mut_ptr()) } != 0 || unsafe { libc::pipe(go.as_mut_ptr()) } != 0
    {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the workload is single-threaded here; the child only makes syscalls and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: plain syscalls in the child; _exit never returns.
        unsafe {
            let fd = fanotify_init(FAN_CLASS_CONTENT, libc::O_RDONLY as u32) as i32;
            let path = [dir.as_os_str().as_bytes(), b"\0"].concat();
            let ok = fd >= 0
                && libc::syscall(
                    libc::SYS_fanotify_mark,
                    fd,
                    FAN_MARK_ADD,
                    FAN_OPEN_PERM,
                    AT_FDCWD,
                    path.as_ptr(),
                ) == 0;
            let report = if ok { fd } else { -1 };
            libc::write(ready[1], (&raw const report).cast(), 4);
            let mut byte = 0u8;
            libc::read(go[0], (&raw mut byte).cast(), 1);
            libc::_exit(CHILD_EXIT_CODE);
        }
    }
    // SAFETY: our copies of the child's ends; reading a 4-byte fd from our own pipe.
    let child_fd = unsafe {
        libc::close(ready[1]);
        libc::close(go[0]);
        let mut fd = -1i32;
        let n = libc::read(ready[0], (&raw mut fd).cast(), 4);
        libc::close(ready[0]);
        if n != 4 { -1 } else { fd }
    };
    if child_fd < 0 {
        bail!("the child could not make its permission group (FAN_CLASS_CONTENT needs root)");
    }
    let done = move || -> anyhow::Result<()> {
        let mut status = 0;
        // SAFETY: telling our own child to exit, then reaping it.
        unsafe {
            libc::write(go[1], [1u8].as_ptr().cast(), 1);
            libc::close(go[1]);
            libc::waitpid(child, &mut status, 0);
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != CHILD_EXIT_CODE {
            bail!("the permission child ended with status {status:#x}");
        }
        Ok(())
    };
    Ok((child as u32, child_fd, Box::new(done)))
}

/// A group made before the recorder starts: a mark on `dir`, then (after a line on stdin) a
/// mark on `dir/sub` and a checkpoint, then (after another line) exit.
pub fn early_group(dir: &Path) -> anyhow::Result<()> {
    let pid = std::process::id();
    let fd = init(FAN_CLASS_NOTIF)?;
    mark(fd, FAN_MARK_ADD, FAN_OPEN, Some(dir))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({ "pid": pid, "fd": fd }))?;
    out.flush()?;
    drop(out);
    let wait = || -> anyhow::Result<()> {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("waiting on stdin")?;
        Ok(())
    };
    wait()?;
    mark(fd, FAN_MARK_ADD, FAN_CLOSE_WRITE, Some(&dir.join("sub")))?;
    checkpoint("early", pid, fd, None)?;
    wait()
}

/// What `marks_at` must list for the lifecycle's processes at checkpoint `c`.
pub fn expected(c: &Checkpoint, dir: &Path) -> Vec<Expected> {
    let d = dir.to_string_lossy().into_owned();
    let sub = dir.join("sub").to_string_lossy().into_owned();
    let m = |mark_type: &str, path: &str, mask| Expected {
        pid: c.pid,
        fd: c.fd,
        class: "notif".into(),
        mark_type: Some(mark_type.into()),
        path: Some(path.to_string()),
        mask,
        state: "in force".into(),
    };
    let mut out = match c.name.as_str() {
        "added" => vec![
            m("inode", &d, FAN_OPEN | FAN_CLOSE_WRITE),
            m("mount", &d, FAN_OPEN),
            m("inode", &sub, FAN_MODIFY),
        ],
        "removed" => vec![m("inode", &d, FAN_CLOSE_WRITE), m("mount", &d, FAN_OPEN)],
        "flushed" | "child exited" => vec![m("mount", &d, FAN_OPEN)],
        "child alive" => {
            let (child, child_fd) = c.child.unwrap_or((0, -1));
            vec![
                m("mount", &d, FAN_OPEN),
                Expected {
                    pid: child,
                    fd: child_fd,
                    class: "content".into(),
                    mark_type: Some("inode".into()),
                    path: Some(d.clone()),
                    mask: FAN_OPEN_PERM,
                    state: "in force".into(),
                },
            ]
        }
        "fd reused" => vec![m("inode", &d, FAN_ACCESS)],
        "re-added" => vec![m("inode", &d, FAN_ACCESS), m("inode", &sub, FAN_MODIFY)],
        // Made before the recording: the recorder found the group and its mark in the kernel
        // at start, and saw the second mark made.
        "early" => vec![m("inode", &d, FAN_OPEN), m("inode", &sub, FAN_CLOSE_WRITE)],
        _ => Vec::new(),
    };
    out.sort();
    out
}

/// RFC 3339 with nanoseconds, as `marks_at` takes it.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// What `marks_at(c)` lists for `pids` in `capture`, in [`Expected`]'s terms.
pub fn marks_at(capture: &Path, at_ns: i64, pids: &[u32]) -> Vec<Expected> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let rows = crate::harness::query_json(
        capture,
        &format!(
            "SELECT pid, fd, class, mark_type, coalesce(pathname, resolved_path) AS pathname, \
             mask_bits, state FROM marks_at('{}') WHERE pid IN ({})",
            rfc3339(at_ns),
            pids.join(", ")
        ),
    );
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let mut out: Vec<Expected> = rows
        .iter()
        .map(|r| Expected {
            pid: r["pid"].as_u64().unwrap_or(0) as u32,
            fd: r["fd"].as_i64().unwrap_or(-1) as i32,
            class: text(&r["class"]).unwrap_or_default(),
            mark_type: text(&r["mark_type"]),
            path: text(&r["pathname"]),
            mask: r["mask_bits"].as_u64().unwrap_or(0),
            state: text(&r["state"]).unwrap_or_default(),
        })
        .collect();
    out.sort();
    out
}

/// The lifecycle's checkpoints as the workload printed them (other lines are skipped).
pub fn parse_checkpoints(stdout: &str) -> Vec<Checkpoint> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// At every checkpoint, `marks_at` lists exactly what the lifecycle holds; after the last,
/// once every process exited, nothing of theirs.
pub fn assert_marks_follow(capture: &Path, checkpoints: &[Checkpoint], dir: &Path, end_ns: i64) {
    assert_eq!(checkpoints.len(), 7, "the lifecycle prints 7 checkpoints");
    let mut pids: Vec<u32> = checkpoints.iter().map(|c| c.pid).collect();
    pids.extend(checkpoints.iter().filter_map(|c| c.child.map(|(p, _)| p)));
    for c in checkpoints {
        assert_eq!(
            marks_at(capture, c.time_ns, &pids),
            expected(c, dir),
            "marks at checkpoint {:?} ({})",
            c.name,
            rfc3339(c.time_ns)
        );
    }
    assert_eq!(
        marks_at(capture, end_ns, &pids),
        Vec::new(),
        "after the owners exited"
    );
}

/// Runs the lifecycle workload in `dir`; returns its checkpoints.
pub fn run_workload(dir: &Path) -> Vec<Checkpoint> {
    let out = std::process::Command::new(crate::harness::bin("fantrace-workload"))
        .args(["--lifecycle", "--dir"])
        .arg(dir)
        .output()
        .expect("running the lifecycle workload");
    assert!(
        out.status.success(),
        "lifecycle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_checkpoints(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_spells_unix_nanoseconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_795_715_124_489_087_761),
            "2026-11-26T17:45:24.489087761Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }
}
