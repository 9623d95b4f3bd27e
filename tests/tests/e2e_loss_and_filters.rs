//! Never lose silently: with a deliberately tiny ring buffer, every call of a multi-threaded
//! storm is either written or counted as lost, exactly. The pid filter (in the kernel) makes the
//! count exact even when other processes call fanotify_mark meanwhile.
use fantrace_tests::checks::assert_written_plus_lost;
use fantrace_tests::harness::{PausedWorkload, Recorder, query_json, require_probe, run_workload};

#[test]
fn tiny_ring_buffer_storm_written_plus_lost_equals_calls() {
    if !require_probe("tiny_ring_buffer_storm_written_plus_lost_equals_calls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let n: u64 = 200_000;
    let storm = PausedWorkload::start(&["--storm", &n.to_string(), "--threads", "4"]);
    let storm_pid = storm.pid;
    let pid = storm_pid.to_string();
    let rec = Recorder::start(&capture, &["--ring-buffer", "4096", "--pid", &pid]);
    let summary = storm.go();
    assert_eq!(summary["calls"], n);
    rec.stop();
    assert_written_plus_lost(&capture, storm_pid, n);
}

#[test]
fn pid_filters_apply_in_the_kernel() {
    if !require_probe("pid_filters_apply_in_the_kernel") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let excluded = PausedWorkload::start(&["--storm", "100"]);
    let included = PausedWorkload::start(&["--storm", "50"]);
    let (ex_pid, inc_pid) = (excluded.pid, included.pid);
    let (ex, inc) = (ex_pid.to_string(), inc_pid.to_string());
    let only = tmp.path().join("only");
    let except = tmp.path().join("except");
    let rec_only = Recorder::start(&only, &["--pid", &inc]);
    let rec_except = Recorder::start(&except, &["--exclude-pid", &ex]);
    excluded.go();
    included.go();
    rec_only.stop();
    rec_except.stop();
    let by_pid = |cap: &std::path::Path| {
        query_json(
            cap,
            "SELECT pid, count(*) AS n FROM events GROUP BY pid ORDER BY pid",
        )
        .into_iter()
        .map(|r| (r["pid"].as_u64().unwrap(), r["n"].as_u64().unwrap()))
        .collect::<std::collections::BTreeMap<_, _>>()
    };
    let only_rows = by_pid(&only);
    assert_eq!(only_rows.len(), 1, "{only_rows:?}");
    assert_eq!(only_rows[&u64::from(inc_pid)], 50);
    let except_rows = by_pid(&except);
    assert!(
        !except_rows.contains_key(&u64::from(ex_pid)),
        "{except_rows:?}"
    );
    assert_eq!(except_rows[&u64::from(inc_pid)], 50);
}

#[test]
fn uid_comm_and_cgroup_filters_apply_in_the_kernel() {
    if !require_probe("uid_comm_and_cgroup_filters_apply_in_the_kernel") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_cgroup = own_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("cgroup v2")
        .to_string();
    let dir = |name: &str| tmp.path().join(name);
    let recorders = [
        (
            "comm",
            Recorder::start(&dir("comm"), &["--comm", "fantrace-wl-thr"]),
        ),
        (
            "uid",
            Recorder::start(&dir("uid"), &["--exclude-uid", "65534"]),
        ),
        (
            "cgroup",
            Recorder::start(&dir("cgroup"), &["--cgroup", &own_cgroup]),
        ),
        (
            "not-cgroup",
            Recorder::start(&dir("not-cgroup"), &["--exclude-cgroup", &own_cgroup]),
        ),
    ];
    let calls = run_workload(&[]);
    for (_, rec) in recorders {
        rec.stop();
    }
    let mut pids: Vec<String> = calls.iter().map(|c| c.pid.to_string()).collect();
    pids.dedup();
    let rows = |name: &str| {
        query_json(
            &dir(name),
            &format!(
                "SELECT comm, uid FROM events WHERE pid IN ({}) ORDER BY time",
                pids.join(", ")
            ),
        )
    };
    let comm = rows("comm");
    assert_eq!(comm.len(), 1, "{comm:?}");
    assert_eq!(comm[0]["comm"], "fantrace-wl-thr");
    let uid = rows("uid");
    assert_eq!(uid.len(), calls.len() - 1, "the uid 65534 call is excluded");
    assert!(uid.iter().all(|r| r["uid"] != 65534));
    assert_eq!(
        rows("cgroup").len(),
        calls.len(),
        "the workload runs in our cgroup"
    );
    assert!(rows("not-cgroup").is_empty());
}
