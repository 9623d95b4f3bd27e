//! Mark state on the real probe: the lifecycle workload adds, removes, flushes, lets a child's
//! permission group die with the child, closes a group and reuses its fd, re-adds; a group made
//! before the recorder started is found with its mark at start and ends with its owner's exit.
//! At every checkpoint `marks_at` must list exactly what the workload holds.
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantrace_tests::calls::realtime_ns;
use fantrace_tests::harness::{Recorder, bin, query_json, require_probe};
use fantrace_tests::lifecycle::{self, CHILD_EXIT_CODE, Checkpoint, assert_marks_follow, expected};

#[test]
fn marks_at_follows_adds_removes_flushes_exits_and_fd_reuse() {
    if !require_probe("marks_at_follows_adds_removes_flushes_exits_and_fd_reuse") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("watched");
    let capture = tmp.path().join("capture");

    // A group that exists before the recording: one mark made now, unseen.
    let mut early = Command::new(bin("fantrace-workload"))
        .args(["--early-group", "--dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the early group");
    let mut early_out = BufReader::new(early.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    early_out
        .read_line(&mut line)
        .expect("the early group's pid");
    let first: serde_json::Value = serde_json::from_str(&line).expect("pid line");
    let early_pid = first["pid"].as_u64().expect("pid") as u32;
    let mut early_in = early.stdin.take().expect("piped stdin");

    let rec = Recorder::start(&capture, &[]);
    early_in.write_all(b"go\n").unwrap();
    line.clear();
    early_out
        .read_line(&mut line)
        .expect("the early checkpoint");
    let early_checkpoint: Checkpoint = serde_json::from_str(&line).expect("checkpoint line");

    let checkpoints = lifecycle::run_workload(&dir);

    early_in.write_all(b"exit\n").unwrap();
    drop(early_in);
    assert!(early.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(100));
    let end_ns = realtime_ns();
    std::thread::sleep(Duration::from_millis(100));
    let summary = rec.stop();
    assert!(summary.contains("0 lost"), "recorder summary: {summary}");

    assert_marks_follow(&capture, &checkpoints, &dir, end_ns);
    assert_eq!(
        lifecycle::marks_at(&capture, early_checkpoint.time_ns, &[early_pid]),
        expected(&early_checkpoint, &dir),
        "a group made before the recording: the mark it had then, found at start, and the one \
         made since"
    );
    assert_eq!(
        lifecycle::marks_at(&capture, end_ns, &[early_pid]),
        Vec::new(),
        "the early group's owner exit ends it (found in /proc at start)"
    );

    // Every owner's exit is a row of its own, with its wait status.
    let child = checkpoints
        .iter()
        .find_map(|c| c.child)
        .expect("the lifecycle reports its child")
        .0;
    let exits = query_json(
        &capture,
        &format!(
            "SELECT pid, status, how FROM exits WHERE pid IN ({}, {}, {}) ORDER BY time",
            child, checkpoints[0].pid, early_pid
        ),
    );
    let summary: Vec<(u64, i64, String)> = exits
        .iter()
        .map(|r| {
            (
                r["pid"].as_u64().unwrap(),
                r["status"].as_i64().unwrap(),
                r["how"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                u64::from(child),
                i64::from(CHILD_EXIT_CODE << 8),
                format!("exited with {CHILD_EXIT_CODE}")
            ),
            (u64::from(checkpoints[0].pid), 0, "exited with 0".into()),
            (u64::from(early_pid), 0, "exited with 0".into()),
        ]
    );

    // The marks view keeps the history: why each mark of the first group ended.
    let states = query_json(
        &capture,
        &format!(
            "SELECT mark_type, pathname, state FROM marks WHERE pid = {} AND group_created = \
             (SELECT min(group_created) FROM marks WHERE pid = {}) ORDER BY mark_type, pathname",
            checkpoints[0].pid, checkpoints[0].pid
        ),
    );
    let states: Vec<String> = states
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["mark_type"].as_str().unwrap(),
                r["pathname"]
                    .as_str()
                    .unwrap()
                    .replace(&*dir.to_string_lossy(), "D"),
                r["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            "inode D flushed",
            "inode D/sub removed",
            "mount D ended: group closed"
        ]
    );
}
