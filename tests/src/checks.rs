//! What a correct capture looks like, checked the same way whichever kernel recorded it (this
//! machine's, or a guest's in the kernel matrix) and however the probe was attached.
use std::path::Path;

use serde_json::Value;

use crate::calls::{Call, PROBE_PATH_MAX};
use crate::harness::{analyzer, query_json};

pub fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned number, got {v}"))
}

pub fn i64_of(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

/// The pids of the workload's processes, as a SQL list.
pub fn pid_list(calls: &[Call]) -> String {
    let mut pids: Vec<u32> = calls.iter().map(|c| c.pid).collect();
    pids.sort();
    pids.dedup();
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the capture's recorder attached the probe (`fentry` or `tracepoint`), and whether it
/// said 32-bit calls were covered; every segment must agree.
pub fn attach_mode(capture: &Path) -> (String, String) {
    let rows = query_json(
        capture,
        "SELECT DISTINCT attach_mode, ia32_covered FROM stats",
    );
    assert_eq!(rows.len(), 1, "one attach mode per recording: {rows:?}");
    let text = |k: &str| rows[0][k].as_str().unwrap_or_default().to_string();
    (text("attach_mode"), text("ia32_covered"))
}

/// Every call the scenario workload made (`fantrace-workload` without `--storm`) is in the
/// capture exactly once, with exactly its arguments, path bytes, result, caller and ABI; its
/// `fanotify_init` calls are in `inits`; nothing else the workload did is recorded.
pub fn assert_every_call_captured(capture: &Path, calls: &[Call]) {
    assert!(calls.len() >= 16, "the workload made {} calls", calls.len());
    let rows = query_json(
        capture,
        &format!(
            "SELECT arrow_cast(time, 'Int64') AS t, pid, tid, ppid, uid, comm, fanotify_fd, flags, \
             mask, dirfd, pathname, encode(pathname_raw, 'hex') AS raw_hex, pathname_status, ret, \
             duration_ns, mnt_ns, pid_ns, exe, mark_action, mark_type, \
             array_to_string(flag_names, '|') AS flag_names, \
             array_to_string(mask_names, '|') AS mask_names, abi \
             FROM events WHERE pid IN ({}) ORDER BY time",
            pid_list(calls)
        ),
    );
    // One row per call, and none for the workload's syscalls whose numbers mean a fanotify call
    // only in the other ABI's table.
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
        assert_eq!(row["abi"], call.abi.as_str(), "{what}: abi");
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
    assert_ne!(calls[0].ppid, 0, "the workload knows its parent");
    // The pid-namespace reads take the probe's run-time-offset path only for nested callers.
    let nested = calls
        .iter()
        .find(|c| c.label == "pid 1 of a new pid namespace")
        .unwrap();
    assert_ne!(nested.pid_ns, calls[0].pid_ns, "a pid namespace of its own");
    assert!(nested.pid_ns != 0 && calls[0].pid_ns != 0);
    let fault = calls.iter().find(|c| c.label == "unreadable path").unwrap();
    assert_eq!(fault.ret, -i64::from(libc::EFAULT));

    // The fanotify_init companions: the notification group every native mark but one used,
    // the content group of the permission mark, and the group made through the ia32 ABI, each
    // with the fd the marks name.
    let inits = query_json(
        capture,
        &format!(
            "SELECT fd, class, flag_names, abi FROM inits WHERE pid = {} ORDER BY time",
            calls[0].pid
        ),
    );
    let perm = calls
        .iter()
        .find(|c| c.label.starts_with("permission mark"))
        .unwrap();
    let ia32 = calls.iter().find(|c| c.abi == "ia32").unwrap();
    assert_eq!(inits.len(), 3, "{inits:?}");
    assert_eq!(i64_of(&inits[0]["fd"]), i64::from(calls[0].fanotify_fd));
    assert_eq!(inits[0]["class"], "notif");
    assert_eq!(
        inits[0]["flag_names"],
        "FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_NONBLOCK"
    );
    assert_eq!(inits[0]["abi"], "x86_64");
    assert_eq!(i64_of(&inits[1]["fd"]), i64::from(perm.fanotify_fd));
    assert_eq!(inits[1]["class"], "content");
    assert_eq!(i64_of(&inits[2]["fd"]), i64::from(ia32.fanotify_fd));
    assert_eq!(inits[2]["flag_names"], "FAN_CLASS_NOTIF|FAN_CLOEXEC");
    assert_eq!(inits[2]["abi"], "ia32");
    let high = calls
        .iter()
        .find(|c| c.label == "ia32 mask with a high-half bit")
        .unwrap();
    assert_eq!(high.ret, -i64::from(libc::EINVAL));
    assert!(high.mask >> 32 != 0, "the mask's high half is exercised");
    // The playbook ties the permission mark to its content-class group.
    let out = analyzer(&[
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

/// A storm of `calls` calls by `pid` recorded with a deliberately tiny ring buffer: every call
/// is either a row or counted as lost, exactly, and some were lost. Returns (written, lost).
pub fn assert_written_plus_lost(capture: &Path, pid: u32, calls: u64) -> (u64, u64) {
    let written = query_json(
        capture,
        &format!("SELECT count(*) AS n FROM events WHERE pid = {pid}"),
    );
    let written = u64_of(&written[0]["n"]);
    let stats = query_json(
        capture,
        "SELECT sum(events_written) AS w, sum(events_lost) AS l, sum(lost_ring_full) AS rf, \
         sum(lost_pending_full) AS pf FROM stats",
    );
    let lost = u64_of(&stats[0]["l"]);
    eprintln!("storm of {calls}: written {written}, lost {lost}");
    assert_eq!(
        u64_of(&stats[0]["w"]),
        written,
        "only the filtered pid is recorded"
    );
    assert_eq!(
        written + lost,
        calls,
        "written + lost must equal the calls made"
    );
    assert!(lost > 0, "a 4 KiB ring should overflow under this storm");
    assert_eq!(u64_of(&stats[0]["rf"]) + u64_of(&stats[0]["pf"]), lost);
    (written, lost)
}
