//! The kernel as the judge of mark state. The workload (`--truth`) makes groups and marks the
//! ways real programs and malware do, on a tmpfs of its own, and at each checkpoint reads
//! `/proc/PID/fdinfo/FD` of every group fd it and its child hold; the test then asks
//! `marks_at` for the same moment and wants the same marks, object for object and mask for
//! mask, and one group for every fd that holds it.
//!
//! The cases: a dirfd with a NULL path, a dirfd with a relative path, `/proc/self/fd/N`, a
//! path with `.` and `..` relative to the cwd, a symlink followed and (`FAN_MARK_DONT_FOLLOW`)
//! not, two hard links of one file, a file renamed after its mark and the mark removed under
//! the new name, a marked file unlinked (the kernel drops the mark), a file system unmounted (the
//! kernel drops its mount's mark and its files'), `FAN_EVENT_ON_CHILD` on a file (the kernel
//! drops the flag), an ignore mask, mount and file-system marks, a permission
//! group, a fork, a dup, a group whose only fd is closed (and a new one given its fd and kernel
//! address at once), flushes of each mark type, a group
//! kept alive by a child after its maker closed every fd, and (`--before-recorder`) a group made
//! before the recorder started.
//!
//! fdinfo is parsed here on its own, not with the recorder's parser: the judge must not share
//! the code it judges.
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
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
const FAN_MARK_DONT_FOLLOW: u32 = 0x4;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_IGNORED_MASK: u32 = 0x20;
const FAN_MARK_IGNORED_SURV_MODIFY: u32 = 0x40;
const FAN_MARK_FLUSH: u32 = 0x80;
const FAN_MARK_FILESYSTEM: u32 = 0x100;
const FAN_ACCESS: u64 = 0x1;
const FAN_MODIFY: u64 = 0x2;
const FAN_CLOSE_WRITE: u64 = 0x8;
const FAN_CLOSE_NOWRITE: u64 = 0x10;
const FAN_OPEN: u64 = 0x20;
const FAN_OPEN_PERM: u64 = 0x1_0000;
const FAN_EVENT_ON_CHILD: u64 = 0x0800_0000;

/// One fd holding a group, and what the kernel said about it then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    pub pid: u32,
    pub fd: i32,
    pub fdinfo: String,
}

/// A moment between two steps: every group fd the workload and its child held, with fdinfo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub name: String,
    /// CLOCK_REALTIME, ns: after the step and the settle time, before fdinfo was read.
    pub time_ns: i64,
    pub held: Vec<Held>,
    /// Every pid of the workload (parent and child), to find the rows that are theirs.
    pub pids: Vec<u32>,
}

/// A mark as fdinfo names it: `(object, mask, ignored_mask)` in the capture's notation.
pub type Mark = (String, u64, u64);

/// The marks of one fdinfo file, parsed here independently of the recorder.
pub fn kernel_marks(fdinfo: &str) -> BTreeSet<Mark> {
    let mut out = BTreeSet::new();
    for line in fdinfo.lines() {
        let Some(rest) = line.strip_prefix("fanotify ") else {
            continue;
        };
        if rest.starts_with("flags:") {
            continue;
        }
        let mut f: BTreeMap<&str, &str> = BTreeMap::new();
        for kv in rest.split(' ') {
            if let Some((k, v)) = kv.split_once(':') {
                f.insert(k, v);
            }
        }
        let hex = |k: &str| u64::from_str_radix(f.get(k).copied().unwrap_or("0"), 16).unwrap_or(0);
        let object = if f.contains_key("ino") {
            format!("inode:{:x}:{:x}", hex("sdev"), hex("ino"))
        } else if f.contains_key("mnt_id") {
            format!("mount:{:x}", hex("mnt_id"))
        } else if f.contains_key("sdev") {
            format!("filesystem:{:x}", hex("sdev"))
        } else if let Some(ns) = f.get("mnt_ns") {
            format!("mntns:{ns}")
        } else {
            continue;
        };
        out.insert((object, hex("mask"), hex("ignored_mask")));
    }
    out
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

fn check(what: &str, ret: i64) -> anyhow::Result<()> {
    if ret < 0 {
        bail!("{what}: errno {}", -ret);
    }
    Ok(())
}

fn mark(fd: i32, flags: u32, mask: u64, dirfd: i32, path: Option<&[u8]>) -> anyhow::Result<()> {
    let ret = fanotify_mark(fd, flags, mask, dirfd, path);
    check(
        &format!(
            "fanotify_mark({fd}, {flags:#x}, {mask:#x}, {dirfd}, {:?})",
            path.map(String::from_utf8_lossy)
        ),
        ret,
    )
}

fn mark_at(fd: i32, flags: u32, mask: u64, path: &Path) -> anyhow::Result<()> {
    mark(fd, flags, mask, AT_FDCWD, Some(path.as_os_str().as_bytes()))
}

fn open(path: &Path, flags: i32) -> anyhow::Result<i32> {
    // SAFETY: a valid C string; the fd is the workload's to keep.
    let fd = unsafe { libc::open(cpath(path).as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        bail!(
            "open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(fd)
}

fn init(class: u32) -> anyhow::Result<i32> {
    // Not FAN_CLOEXEC: nothing is exec'd, and the child must inherit the fds.
    let fd = fanotify_init(class, libc::O_RDONLY as u32);
    check("fanotify_init", fd)?;
    Ok(fd as i32)
}

fn close(fd: i32) {
    // SAFETY: closing an fd this workload opened.
    unsafe { libc::close(fd) };
}

fn fdinfo(pid: u32, fd: i32) -> anyhow::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .with_context(|| format!("reading /proc/{pid}/fdinfo/{fd}"))
}

/// A child that inherits the parent's fds, holds them, and exits when told.
struct Child {
    pid: u32,
    go: i32,
}

impl Child {
    fn fork() -> anyhow::Result<Child> {
        let mut go = [0i32; 2];
        // SAFETY: a valid two-element array.
        if unsafe { libc::pipe(go.as_mut_ptr()) } != 0 {
            bail!("pipe: {}", std::io::Error::last_os_error());
        }
        // SAFETY: the workload is single-threaded; the child only reads a pipe and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: plain syscalls in the child; _exit never returns.
            unsafe {
                libc::close(go[1]);
                let mut byte = 0u8;
                libc::read(go[0], (&raw mut byte).cast(), 1);
                libc::_exit(0);
            }
        }
        close(go[0]);
        Ok(Child {
            pid: pid as u32,
            go: go[1],
        })
    }

    fn exit(self) -> anyhow::Result<()> {
        let mut status = 0;
        // SAFETY: telling our own child to exit, then reaping it.
        unsafe {
            libc::write(self.go, [1u8].as_ptr().cast(), 1);
            libc::close(self.go);
            libc::waitpid(self.pid as i32, &mut status, 0);
        }
        Ok(())
    }
}

struct Run {
    pid: u32,
    settle: Duration,
    /// The group fds each process holds now.
    held: Vec<(u32, i32)>,
    child: Option<u32>,
}

impl Run {
    fn checkpoint(&self, name: &str) -> anyhow::Result<()> {
        // Long enough for the recorder to read fdinfo once more (it does every second).
        std::thread::sleep(self.settle);
        let time_ns = realtime_ns();
        let mut held = Vec::new();
        for &(pid, fd) in &self.held {
            held.push(Held {
                pid,
                fd,
                fdinfo: fdinfo(pid, fd)?,
            });
        }
        let mut pids = vec![self.pid];
        pids.extend(self.child);
        let c = Checkpoint {
            name: name.to_string(),
            time_ns,
            held,
            pids,
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&c)?)?;
        out.flush()?;
        Ok(())
    }

    fn hold(&mut self, pid: u32, fd: i32) {
        self.held.push((pid, fd));
    }

    fn drop_fd(&mut self, pid: u32, fd: i32) {
        self.held.retain(|&h| h != (pid, fd));
    }
}

/// Mounts a tmpfs on `dir` for the run, so mount and file-system marks touch nothing else.
fn mount_tmpfs(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let source = CString::new("fantrace-truth").expect("no NUL");
    let fstype = CString::new("tmpfs").expect("no NUL");
    // SAFETY: valid C strings; mounting needs root, which the workload has here.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            cpath(dir).as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        bail!(
            "mounting a tmpfs on {}: {} (needs root)",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The line the workload prints, with `--before-recorder`, once its first group is made; it
/// then waits for a line on stdin (the recorder has started) before going on.
pub const READY: &str = "truth: a group made, waiting for the recorder";

/// The truth lifecycle in `dir` (created and mounted as a tmpfs, unmounted at the end),
/// printing one [`Checkpoint`] line after each step. With `before_recorder`, a group with an
/// inode and a mount mark is made first, before the recorder starts (see [`READY`]).
pub fn run(dir: &Path, settle: Duration, before_recorder: bool) -> anyhow::Result<()> {
    mount_tmpfs(dir)?;
    let result = steps(dir, settle, before_recorder);
    let target = cpath(dir);
    // SAFETY: unmounting what this function mounted; lazily, in case an fd is still open.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    result
}

fn steps(d: &Path, settle: Duration, before_recorder: bool) -> anyhow::Result<()> {
    let pid = std::process::id();
    let mut run = Run {
        pid,
        settle,
        held: Vec::new(),
        child: None,
    };
    for sub in ["a", "sub", "dir2", "perm", "early"] {
        std::fs::create_dir_all(d.join(sub))?;
    }
    // 0. A group the recorder finds already made, with marks only fdinfo can tell it of.
    if before_recorder {
        let early = init(FAN_CLASS_NOTIF)?;
        run.hold(pid, early);
        mark_at(
            early,
            FAN_MARK_ADD,
            FAN_OPEN | FAN_CLOSE_WRITE,
            &d.join("early"),
        )?;
        mark_at(early, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_NOWRITE, d)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}")?;
        out.flush()?;
        drop(out);
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("waiting on stdin for the recorder")?;
        // Made since, on the group made before.
        mark_at(early, FAN_MARK_ADD, FAN_MODIFY, &d.join("early"))?;
    }
    for file in ["b", "c", "target", "h1", "r1", "u", "ig", "oc"] {
        std::fs::write(d.join(file), b"x")?;
    }
    std::os::unix::fs::symlink("target", d.join("link"))?;
    std::fs::hard_link(d.join("h1"), d.join("h2"))?;

    // 1. Every way of naming an object.
    let g1 = init(FAN_CLASS_NOTIF)?;
    run.hold(pid, g1);
    let dfd_a = open(&d.join("a"), libc::O_RDONLY | libc::O_DIRECTORY)?;
    mark(g1, FAN_MARK_ADD, FAN_OPEN, dfd_a, None)?;
    let dfd = open(d, libc::O_RDONLY | libc::O_DIRECTORY)?;
    mark(g1, FAN_MARK_ADD, FAN_CLOSE_WRITE, dfd, Some(b"b"))?;
    let fd_c = open(&d.join("c"), libc::O_RDONLY)?;
    mark(
        g1,
        FAN_MARK_ADD,
        FAN_MODIFY,
        AT_FDCWD,
        Some(format!("/proc/self/fd/{fd_c}").as_bytes()),
    )?;
    mark_at(g1, FAN_MARK_ADD, FAN_ACCESS, &d.join("link"))?;
    mark_at(
        g1,
        FAN_MARK_ADD | FAN_MARK_DONT_FOLLOW,
        FAN_CLOSE_NOWRITE,
        &d.join("link"),
    )?;
    mark_at(g1, FAN_MARK_ADD, FAN_OPEN, &d.join("h1"))?;
    mark_at(g1, FAN_MARK_ADD, FAN_CLOSE_NOWRITE, &d.join("h2"))?;
    mark_at(g1, FAN_MARK_ADD, FAN_MODIFY, &d.join("r1"))?;
    std::fs::rename(d.join("r1"), d.join("r2"))?;
    mark_at(g1, FAN_MARK_ADD, FAN_OPEN, &d.join("u"))?;
    mark_at(g1, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN, d)?;
    mark_at(g1, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, d)?;
    mark_at(
        g1,
        FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
        FAN_MODIFY,
        &d.join("ig"),
    )?;
    mark_at(
        g1,
        FAN_MARK_ADD,
        FAN_OPEN | FAN_EVENT_ON_CHILD,
        &d.join("oc"),
    )?;
    mark_at(
        g1,
        FAN_MARK_ADD,
        FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD,
        &d.join("dir2"),
    )?;
    // The same file as "b", spelled through the cwd with `.` and `..`.
    std::env::set_current_dir(d)?;
    mark(g1, FAN_MARK_ADD, FAN_ACCESS, AT_FDCWD, Some(b"./sub/../b"))?;
    // A file system mounted inside, with a mark on its mount and on a file in it: unmounting
    // it drops both (step 2).
    let inner = d.join("inner");
    mount_tmpfs(&inner)?;
    std::fs::write(inner.join("f"), b"x")?;
    mark_at(g1, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, &inner)?;
    mark_at(g1, FAN_MARK_ADD, FAN_MODIFY, &inner.join("f"))?;
    // A permission group, on a directory no one opens (no FAN_ONDIR: opening the directory
    // itself asks nothing).
    let pg = init(FAN_CLASS_CONTENT)?;
    run.hold(pid, pg);
    mark_at(pg, FAN_MARK_ADD, FAN_OPEN_PERM, &d.join("perm"))?;
    run.checkpoint("marked")?;

    // 2. Removals by a new name and through a symlink, the kernel's own removal, fork, dup.
    mark_at(g1, FAN_MARK_REMOVE, FAN_MODIFY, &d.join("r2"))?;
    mark_at(g1, FAN_MARK_REMOVE, FAN_ACCESS, &d.join("link"))?;
    std::fs::remove_file(d.join("u"))?;
    let target = cpath(&inner);
    // SAFETY: unmounting what this function mounted; nothing in it is open.
    if unsafe { libc::umount(target.as_ptr()) } != 0 {
        bail!(
            "unmounting {}: {}",
            inner.display(),
            std::io::Error::last_os_error()
        );
    }
    let child = Child::fork()?;
    run.child = Some(child.pid);
    run.hold(child.pid, g1);
    run.hold(child.pid, pg);
    // SAFETY: duplicating our own group fd.
    let g1_dup = unsafe { libc::dup(g1) };
    check("dup", i64::from(g1_dup))?;
    run.hold(pid, g1_dup);
    run.checkpoint("changed")?;

    // 3. Flushes of the wide marks; a group made, marked and closed.
    mark(g1, FAN_MARK_FLUSH | FAN_MARK_MOUNT, 0, AT_FDCWD, None)?;
    mark(
        g1_dup,
        FAN_MARK_FLUSH | FAN_MARK_FILESYSTEM,
        0,
        AT_FDCWD,
        None,
    )?;
    let g2 = init(FAN_CLASS_NOTIF)?;
    mark_at(g2, FAN_MARK_ADD, FAN_OPEN, &d.join("b"))?;
    close(g2);
    // A new group at once: the kernel gives it the closed one's fd, and usually its address.
    let g3 = init(FAN_CLASS_NOTIF)?;
    run.hold(pid, g3);
    mark_at(g3, FAN_MARK_ADD, FAN_CLOSE_WRITE, &d.join("c"))?;
    // A group without marks is freed as its fd closes: the next one takes its address.
    for _ in 0..3 {
        close(init(FAN_CLASS_NOTIF)?);
    }
    run.checkpoint("flushed")?;

    // 4. The maker closes every fd of g1; the child keeps the group alive.
    close(g1);
    close(g1_dup);
    run.drop_fd(pid, g1);
    run.drop_fd(pid, g1_dup);
    run.checkpoint("parent closed")?;

    // 5. The child exits: g1 is gone; pg lives on in the parent.
    let child_pid = child.pid;
    child.exit()?;
    run.drop_fd(child_pid, g1);
    run.drop_fd(child_pid, pg);
    run.checkpoint("child exited")?;

    // 6. Flushing the inode marks empties the permission group.
    mark(pg, FAN_MARK_FLUSH, 0, AT_FDCWD, None)?;
    run.checkpoint("inodes flushed")?;
    close(pg);
    close(g3);
    for fd in [dfd_a, dfd, fd_c] {
        close(fd);
    }
    std::env::set_current_dir("/")?;
    Ok(())
}

/// Runs the truth workload in `dir` under a recorder writing to `capture` (with
/// `recorder_args`), the recorder started after the workload's first group: returns the
/// checkpoints and the recorder's summary line.
pub fn record(
    capture: &Path,
    dir: &Path,
    recorder_args: &[&str],
    settle: Duration,
) -> (Vec<Checkpoint>, String) {
    use std::io::{BufRead as _, Read as _};
    let mut workload = std::process::Command::new(crate::harness::bin("fantrace-workload"))
        .args(["--truth", "--before-recorder", "--settle-ms"])
        .arg(settle.as_millis().to_string())
        .arg("--dir")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the truth workload");
    let mut out = std::io::BufReader::new(workload.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line)
        .expect("the truth workload's first line");
    assert_eq!(line.trim(), READY, "the truth workload's first line");
    let rec = crate::harness::Recorder::start(capture, recorder_args);
    let mut stdin = workload.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"go\n")
        .expect("telling the workload to go on");
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest)
        .expect("the truth workload's checkpoints");
    let status = workload.wait().expect("waiting for the truth workload");
    let summary = rec.stop();
    let mut err = String::new();
    if let Some(mut e) = workload.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "the truth workload failed: {err}");
    (parse_checkpoints(&rest), summary)
}

/// The truth checkpoints the workload printed (other lines are skipped).
pub fn parse_checkpoints(stdout: &str) -> Vec<Checkpoint> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A group's marks as `marks_at` lists them, and the fds it says hold it.
#[derive(Debug, Default)]
struct Listed {
    marks: BTreeSet<Mark>,
    holders: BTreeSet<(u32, i32)>,
    states: BTreeSet<String>,
}

/// At `c`'s moment, `marks_at` must list for every fd the workload held exactly the marks the
/// kernel's fdinfo showed for it, all fds of one group under one `group_id`, and no other
/// group of the workload's processes.
pub fn assert_matches_kernel(capture: &Path, c: &Checkpoint) {
    let pids: Vec<String> = c.pids.iter().map(u32::to_string).collect();
    let rows = crate::harness::query_json(
        capture,
        &format!(
            "SELECT group_id, holders, object, mask_bits, ignored_mask_bits, state, note \
             FROM marks_at('{}')",
            crate::lifecycle::rfc3339(c.time_ns)
        ),
    );
    let mut groups: BTreeMap<u64, Listed> = BTreeMap::new();
    for r in &rows {
        let holders: BTreeSet<(u32, i32)> = r["holders"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .filter_map(|h| {
                let (p, f) = h.split_once(':')?;
                Some((p.parse().ok()?, f.parse().ok()?))
            })
            .collect();
        if !holders.iter().any(|(p, _)| c.pids.contains(p)) {
            continue;
        }
        let group = r["group_id"].as_u64().unwrap_or(0);
        let entry = groups.entry(group).or_default();
        entry.holders.extend(holders);
        entry
            .states
            .insert(r["state"].as_str().unwrap_or("").to_string());
        if let Some(object) = r["object"].as_str() {
            entry.marks.insert((
                object.to_string(),
                r["mask_bits"].as_u64().unwrap_or(u64::MAX),
                r["ignored_mask_bits"].as_u64().unwrap_or(u64::MAX),
            ));
        }
    }
    let context = || format!("checkpoint {:?} of pids {}", c.name, pids.join(","));
    let mut matched: BTreeSet<u64> = BTreeSet::new();
    for h in &c.held {
        let kernel = kernel_marks(&h.fdinfo);
        let found: Vec<(&u64, &Listed)> = groups
            .iter()
            .filter(|(_, l)| l.holders.contains(&(h.pid, h.fd)))
            .collect();
        if kernel.is_empty() && found.is_empty() {
            // A group without marks has no row: nothing is watched through it.
            continue;
        }
        assert_eq!(
            found.len(),
            1,
            "{}: fd {} of pid {} is held in {} groups of marks_at, not 1: {groups:#?}",
            context(),
            h.fd,
            h.pid,
            found.len()
        );
        let (group, listed) = found[0];
        assert_eq!(
            listed.marks,
            kernel,
            "{}: group {group} (fd {} of pid {}): marks_at (left) against the kernel's fdinfo \
             (right)\n{}",
            context(),
            h.fd,
            h.pid,
            h.fdinfo
        );
        assert!(
            listed.states.iter().all(|s| s == "in force"),
            "{}: group {group} has marks not in force: {:?}",
            context(),
            listed.states
        );
        matched.insert(*group);
    }
    let extra: Vec<&u64> = groups.keys().filter(|g| !matched.contains(g)).collect();
    assert!(
        extra.is_empty(),
        "{}: marks_at lists groups the kernel no longer has: {:?}",
        context(),
        extra.iter().map(|g| &groups[g]).collect::<Vec<_>>()
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_lines_become_marks_in_the_capture_notation() {
        let text = "pos:\t0\nfanotify flags:10 event-flags:0\n\
            fanotify ino:98c5db sdev:fe00000 mflags:0 mask:b ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:00\n\
            fanotify mnt_id:1c mflags:0 mask:50000 ignored_mask:0\n\
            fanotify sdev:28 mflags:0 mask:8 ignored_mask:2\n";
        let marks = super::kernel_marks(text);
        assert_eq!(
            marks.into_iter().collect::<Vec<_>>(),
            vec![
                ("filesystem:28".to_string(), 0x8, 0x2),
                ("inode:fe00000:98c5db".to_string(), 0xb, 0),
                ("mount:1c".to_string(), 0x50000, 0),
            ]
        );
    }
}
