//! Never lose silently: with a deliberately tiny ring buffer, every call of a multi-threaded
//! storm is either written or counted as lost, exactly. The pid filter (in the kernel) makes the
//! count exact even when other processes call fanotify_mark meanwhile.
use fantrace_tests::harness::{PausedWorkload, Recorder, query_json, require_probe};

#[test]
fn tiny_ring_buffer_storm_written_plus_lost_equals_calls() {
    if !require_probe("tiny_ring_buffer_storm_written_plus_lost_equals_calls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let n: u64 = 200_000;
    let storm = PausedWorkload::start(&["--storm", &n.to_string(), "--threads", "4"]);
    let pid = storm.pid.to_string();
    let rec = Recorder::start(&capture, &["--ring-buffer", "4096", "--pid", &pid]);
    let summary = storm.go();
    assert_eq!(summary["calls"], n);
    rec.stop();
    let written = query_json(
        &capture,
        &format!("SELECT count(*) AS n FROM events WHERE pid = {pid}"),
    );
    let written = written[0]["n"].as_u64().unwrap();
    let stats = query_json(
        &capture,
        "SELECT sum(events_written) AS w, sum(events_lost) AS l, sum(lost_ring_full) AS rf, \
         sum(lost_pending_full) AS pf FROM stats",
    );
    let lost = stats[0]["l"].as_u64().unwrap();
    eprintln!("storm of {n}: written {written}, lost {lost}");
    assert_eq!(
        stats[0]["w"].as_u64().unwrap(),
        written,
        "only the filtered pid is recorded"
    );
    assert_eq!(
        written + lost,
        n,
        "written + lost must equal the calls made"
    );
    assert!(lost > 0, "a 4 KiB ring should overflow under this storm");
    assert_eq!(
        stats[0]["rf"].as_u64().unwrap() + stats[0]["pf"].as_u64().unwrap(),
        lost
    );
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
