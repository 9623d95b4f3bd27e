//! The real probe on the real kernel: every fanotify_mark call the workload makes is captured
//! exactly once with exactly its arguments, path bytes, result and caller.
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use fantrace_tests::calls::{Call, PROBE_PATH_MAX};
use fantrace_tests::harness::{Recorder, bin, query_json, require_probe, run_workload};
use serde_json::Value;

fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned number, got {v}"))
}
fn i64_of(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

#[test]
fn every_call_is_captured_once_with_exact_values() {
    if !require_probe("every_call_is_captured_once_with_exact_values") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &[]);
    // Lingering lets the recorder read /proc/PID/exe before the workload exits.
    let calls: Vec<Call> = run_workload(&["--linger-ms", "500"]);
    let summary = rec.stop();
    assert!(summary.contains("0 lost"), "recorder summary: {summary}");
    assert!(calls.len() >= 14, "the workload made {} calls", calls.len());
    let rows = query_json(
        &capture,
        &format!(
            "SELECT arrow_cast(time, 'Int64') AS t, pid, tid, ppid, uid, comm, fanotify_fd, flags, \
             mask, dirfd, pathname, encode(pathname_raw, 'hex') AS raw_hex, pathname_status, ret, \
             duration_ns, mnt_ns, pid_ns, exe, mark_action, mark_type, \
             array_to_string(flag_names, '|') AS flag_names, \
             array_to_string(mask_names, '|') AS mask_names \
             FROM events WHERE pid IN ({}) ORDER BY time",
            pid_list(&calls)
        ),
    );
    // One row per call, and none for the workload's ia32 syscalls numbered like fanotify_mark
    // and fanotify_init in the native table.
    assert_eq!(rows.len(), calls.len(), "one row per call; rows: {rows:#?}");
    for (call, row) in calls.iter().zip(&rows) {
        let what = &call.label;
        assert_eq!(u64_of(&row["pid"]), u64::from(call.pid), "{what}: pid");
        assert_eq!(u64_of(&row["tid"]), u64::from(call.tid), "{what}: tid");
        assert_eq!(u64_of(&row["ppid"]), u64::from(call.ppid), "{what}: ppid");
        assert_eq!(u64_of(&row["uid"]), u64::from(call.uid), "{what}: uid");
        assert_eq!(u64_of(&row["mnt_ns"]), call.mnt_ns, "{what}: mnt_ns");
        assert_eq!(u64_of(&row["pid_ns"]), call.pid_ns, "{what}: pid_ns");
        let exe = row["exe"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: exe missing: {row:?}"));
        assert!(exe.ends_with("/fantrace-workload"), "{what}: exe {exe}");
        assert_eq!(
            row["comm"].as_str(),
            Some(call.comm.as_str()),
            "{what}: comm"
        );
        assert_eq!(
            i64_of(&row["fanotify_fd"]),
            i64::from(call.fanotify_fd),
            "{what}: fd"
        );
        assert_eq!(
            u64_of(&row["flags"]),
            u64::from(call.flags),
            "{what}: flags"
        );
        assert_eq!(u64_of(&row["mask"]), call.mask, "{what}: mask");
        assert_eq!(
            i64_of(&row["dirfd"]),
            i64::from(call.dirfd),
            "{what}: dirfd"
        );
        assert_eq!(i64_of(&row["ret"]), call.ret, "{what}: ret");
        assert_eq!(
            row["pathname_status"],
            call.path_status.as_str(),
            "{what}: status"
        );
        match &call.path_hex {
            None => {
                assert!(
                    row.get("pathname").is_none_or(Value::is_null),
                    "{what}: no path"
                );
            }
            Some(hex) => {
                let mut bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                // A truncated path keeps exactly the prefix the probe's buffer holds.
                bytes.truncate(PROBE_PATH_MAX);
                let hex = &hex[..bytes.len() * 2];
                match std::str::from_utf8(&bytes) {
                    Ok(text) => {
                        assert_eq!(row["pathname"].as_str(), Some(text), "{what}: pathname");
                        assert!(row.get("raw_hex").is_none_or(Value::is_null), "{what}");
                    }
                    Err(_) => {
                        assert_eq!(row["raw_hex"].as_str(), Some(hex), "{what}: raw");
                        let lossy = String::from_utf8_lossy(&bytes);
                        assert_eq!(row["pathname"].as_str(), Some(lossy.as_ref()), "{what}");
                    }
                }
            }
        }
        // Wall time comes from the kernel's boot clock plus the recorder's offset; it must fall
        // inside the caller's own before/after stamps (1 ms of slack for the offset estimate).
        let t = i64_of(&row["t"]);
        assert!(
            t >= call.before_ns - 1_000_000 && t <= call.after_ns + 1_000_000,
            "{what}: time {t} outside [{}, {}]",
            call.before_ns,
            call.after_ns
        );
        assert!(i64_of(&row["duration_ns"]) >= 0, "{what}: duration");
    }
    let labels: Vec<&str> = calls.iter().map(|c| c.label.as_str()).collect();
    for needed in [
        "bad fanotify fd",
        "mount mark",
        "filesystem mark",
        "4000-byte path",
    ] {
        assert!(labels.contains(&needed), "workload lacks {needed}");
    }
    let bad = calls.iter().find(|c| c.label == "bad fanotify fd").unwrap();
    assert_eq!(bad.ret, -i64::from(libc::EBADF));
    let long = calls.iter().find(|c| c.label == "4000-byte path").unwrap();
    assert_eq!(long.path_hex.as_ref().unwrap().len(), 8000);
    let thread = calls
        .iter()
        .find(|c| c.label == "remove from a thread")
        .unwrap();
    assert_ne!(thread.tid, thread.pid);
    assert_eq!(thread.comm, "fantrace-wl-thr");
    let child = calls
        .iter()
        .find(|c| c.label.starts_with("as uid 65534"))
        .unwrap();
    assert_eq!(
        (child.uid, child.ppid),
        (65534, calls[0].pid),
        "child of the workload"
    );
    assert_eq!(
        calls[0].ppid,
        std::process::id(),
        "the workload is this test's child"
    );
    // The pid-namespace reads take the probe's run-time-offset path only for nested callers.
    let nested = calls
        .iter()
        .find(|c| c.label == "pid 1 of a new pid namespace")
        .unwrap();
    assert_ne!(nested.pid_ns, calls[0].pid_ns, "a pid namespace of its own");
    assert!(nested.pid_ns != 0 && calls[0].pid_ns != 0);
    let fault = calls.iter().find(|c| c.label == "unreadable path").unwrap();
    assert_eq!(fault.ret, -i64::from(libc::EFAULT));

    // The fanotify_init companions: the notification group every mark but one used, and the
    // content group of the permission mark, each with the fd the marks name.
    let inits = query_json(
        &capture,
        &format!(
            "SELECT fd, class, flag_names FROM inits WHERE pid = {} ORDER BY time",
            calls[0].pid
        ),
    );
    let perm = calls
        .iter()
        .find(|c| c.label.starts_with("permission mark"))
        .unwrap();
    assert_eq!(inits.len(), 2, "{inits:?}");
    assert_eq!(i64_of(&inits[0]["fd"]), i64::from(calls[0].fanotify_fd));
    assert_eq!(inits[0]["class"], "notif");
    assert_eq!(
        inits[0]["flag_names"],
        "FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_NONBLOCK"
    );
    assert_eq!(i64_of(&inits[1]["fd"]), i64::from(perm.fanotify_fd));
    assert_eq!(inits[1]["class"], "content");
    // The playbook ties the permission mark to its content-class group.
    let out = fantrace_tests::harness::analyzer(&[
        "playbook",
        "permission-groups",
        "--format",
        "json",
        "-c",
        &capture.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("\"pid\":{}", calls[0].pid)))
        .collect();
    assert_eq!(ours.len(), 1, "{text}");
    assert!(ours[0].contains("\"class\":\"content\"") && ours[0].contains("FAN_OPEN_PERM"));
}

/// The pids of the workload's processes, as a SQL list.
fn pid_list(calls: &[Call]) -> String {
    let mut pids: Vec<u32> = calls.iter().map(|c| c.pid).collect();
    pids.sort();
    pids.dedup();
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn capture_opens_in_an_independent_parquet_reader() {
    if !require_probe("capture_opens_in_an_independent_parquet_reader") {
        return;
    }
    let have_pyarrow = Command::new("python3")
        .args(["-c", "import pyarrow.parquet"])
        .status()
        .is_ok_and(|s| s.success());
    if !have_pyarrow {
        assert!(
            !fantrace_tests::harness::in_ci(),
            "CI=true but pyarrow is not installed; the README's test command installs it"
        );
        eprintln!("NOT RUN: pyarrow is not installed (pip install pyarrow)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &[]);
    let calls = run_workload(&[]);
    rec.stop();
    let ours = query_json(
        &capture,
        &format!(
            "SELECT tid, flags, mask, ret, pathname FROM events WHERE pid IN ({}) ORDER BY time",
            pid_list(&calls)
        ),
    );
    let script = r#"
import sys, json, glob
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.compute as pc
files = sorted(f for f in glob.glob(sys.argv[1] + "/*.parquet"))
codecs = set()
rows = []
for f in files:
    md = pq.ParquetFile(f).metadata
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            codecs.add(md.row_group(g).column(c).compression)
    pids = [int(p) for p in sys.argv[2].split(",")]
    t = pq.read_table(f).filter(pc.is_in(pc.field("pid"), pa.array(pids, pa.uint32())) & (pc.field("syscall") == "fanotify_mark")).sort_by("time")
    for r in t.select(["tid", "flags", "mask", "ret", "pathname"]).to_pylist():
        rows.append(r)
print(json.dumps({"codecs": sorted(codecs), "rows": rows}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&capture)
        .arg(pid_list(&calls).replace(' ', ""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs["codecs"], serde_json::json!(["ZSTD"]));
    let their_rows = theirs["rows"].as_array().unwrap();
    assert_eq!(their_rows.len(), calls.len());
    assert_eq!(their_rows.len(), ours.len());
    for (a, b) in their_rows.iter().zip(&ours) {
        for k in ["tid", "flags", "mask", "ret"] {
            assert_eq!(a[k], b[k], "{k}");
        }
        assert_eq!(a["pathname"], *b.get("pathname").unwrap_or(&Value::Null));
    }
}

#[test]
fn recorder_without_root_fails_clearly_and_writes_nothing() {
    if !require_probe("recorder_without_root_fails_clearly_and_writes_nothing") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let out = Command::new(bin("fantrace-recorder"))
        .arg("--output")
        .arg(&capture)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run as root"), "stderr: {err}");
    assert_eq!(err.matches("error:").count(), 1, "one clear error: {err}");
    assert!(!capture.exists(), "nothing may be created");
}

#[test]
fn duration_stops_cleanly_with_a_complete_file() {
    if !require_probe("duration_stops_cleanly_with_a_complete_file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let out = Command::new(bin("fantrace-recorder"))
        .arg("--output")
        .arg(&capture)
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = query_json(&capture, "SELECT stop_reason, events_lost FROM stats");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["stop_reason"], "duration 1s elapsed");
    assert_eq!(rows[0]["events_lost"], 0);
}

#[test]
fn sigterm_stops_cleanly() {
    if !require_probe("sigterm_stops_cleanly") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &[]);
    let calls = run_workload(&[]);
    rec.stop_with(libc::SIGTERM);
    let rows = query_json(
        &capture,
        &format!(
            "SELECT count(*) AS n FROM events WHERE pid IN ({})",
            pid_list(&calls)
        ),
    );
    assert_eq!(rows[0]["n"], calls.len());
    let stats = query_json(&capture, "SELECT stop_reason FROM stats");
    assert_eq!(
        stats[0]["stop_reason"],
        format!("signal SIGTERM from pid {}", std::process::id()),
        "the stop reason names the signal and its sender"
    );
}

#[test]
fn print_mode_prints_each_call_as_recorded() {
    if !require_probe("print_mode_prints_each_call_as_recorded") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::start(&tmp.path().join("capture"), &["--print"]);
    let calls = run_workload(&[]);
    let printed = rec.stop();
    let pid = calls[0].pid;
    let ours: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains(&format!("[{pid}/")) && l.contains("fanotify_mark("))
        .collect();
    let from_parent = calls.iter().filter(|c| c.pid == pid).count();
    assert_eq!(ours.len(), from_parent, "one line per call:\n{printed}");
    assert!(
        ours.iter().any(|l| l.contains(&format!(
            "fantrace-wl[{pid}/{pid}] uid=0 fanotify_mark(-1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, \""
        )) && l.ends_with("= -1 EBADF")),
        "{ours:#?}"
    );
    assert!(
        ours.iter()
            .any(|l| l.contains("FAN_MARK_FLUSH, 0, AT_FDCWD, NULL) = 0"))
    );
    assert!(
        ours.iter().any(|l| l.contains("\\xff\\xfe-name\")")),
        "{ours:#?}"
    );
}

#[test]
fn max_events_stops_the_recorder_by_itself() {
    if !require_probe("max_events_stops_the_recorder_by_itself") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let workload = fantrace_tests::harness::PausedWorkload::start(&["--storm", "20"]);
    let pid = workload.pid.to_string();
    let rec = Recorder::start(&capture, &["--max-events", "5", "--pid", &pid]);
    workload.go();
    rec.wait_exit();
    let stats = query_json(&capture, "SELECT events_written, stop_reason FROM stats");
    assert_eq!(stats[0]["events_written"], 5);
    assert_eq!(stats[0]["stop_reason"], "max events 5 reached");
}
