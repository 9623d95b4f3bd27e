//! A real permission-event daemon that was running before the recorder started: Debian's
//! fapolicyd (unpacked by `./fantrace.sh test`, run sandboxed by `scripts/fapolicyd-sandbox.sh`
//! in a mount namespace of its own, permissive). Its `FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM` mount
//! marks gate every open through the mounts it watches; `marks_at` must list each of them in
//! force, on its content-class group, as its fdinfo does.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantrace_tests::calls::realtime_ns;
use fantrace_tests::harness::{Recorder, in_ci, query_json, require_probe};
use fantrace_tests::truth::{self, Checkpoint, Held};

/// Where `./fantrace.sh test` unpacks Debian's fapolicyd package.
fn package() -> PathBuf {
    std::env::var_os("FANTRACE_FAPOLICYD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/fantrace/fapolicyd/root"))
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon's fanotify group fds (it makes one).
fn group_fds(pid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:[fanotify]")
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn fdinfo(pid: u32, fd: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default()
}

#[test]
fn a_permission_daemon_running_before_the_recorder_has_every_mark_listed() {
    const TEST: &str = "a_permission_daemon_running_before_the_recorder_has_every_mark_listed";
    if !require_probe(TEST) {
        return;
    }
    let daemon_bin = package().join("usr/sbin/fapolicyd");
    if !daemon_bin.exists() {
        let why = format!("{} is missing", daemon_bin.display());
        if in_ci() {
            panic!("{TEST}: CI=true but {why}; `./fantrace.sh test` unpacks it");
        }
        eprintln!("{TEST}: NOT RUN: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fapolicyd-sandbox.sh");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(&script)
        .arg(package())
        .arg(tmp.path().join("sandbox"))
        .args(["--debug", "--permissive"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting fapolicyd in its sandbox");
    let daemon = Daemon(child);
    let pid = daemon.0.id();
    // The daemon execs from the script: its fanotify fd appears once it has marked.
    let deadline = Instant::now() + Duration::from_secs(60);
    let fd = loop {
        let marked = group_fds(pid)
            .into_iter()
            .find(|&fd| !truth::kernel_marks(&fdinfo(pid, fd)).is_empty());
        if let Some(fd) = marked {
            break fd;
        }
        assert!(
            Instant::now() < deadline,
            "fapolicyd (pid {pid}) made no marks within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let time_ns = realtime_ns();
    let info = fdinfo(pid, fd);
    std::thread::sleep(Duration::from_millis(200));
    rec.stop();
    drop(daemon);

    let kernel = truth::kernel_marks(&info);
    assert!(
        kernel
            .iter()
            .all(|(object, mask, _)| object.starts_with("mount:") && mask & 0x1_0000 != 0),
        "fapolicyd marks mounts for FAN_OPEN_PERM: {info}"
    );
    truth::assert_matches_kernel(
        &capture,
        &Checkpoint {
            name: "fapolicyd running before the recorder".into(),
            time_ns,
            held: vec![Held {
                pid,
                fd,
                fdinfo: info.clone(),
            }],
            pids: vec![pid],
        },
    );
    let rows = query_json(
        &capture,
        &format!(
            "SELECT DISTINCT class, comm, mask FROM marks_at('{}') WHERE pid = {pid}",
            fantrace_tests::lifecycle::rfc3339(time_ns)
        ),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["class"], "content", "{rows:?}");
    assert_eq!(rows[0]["comm"], "fapolicyd", "{rows:?}");
    assert_eq!(
        rows[0]["mask"], "FAN_OPEN_PERM|FAN_OPEN_EXEC_PERM",
        "{rows:?}"
    );
}
