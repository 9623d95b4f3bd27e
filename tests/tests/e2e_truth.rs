//! The kernel as the judge: the truth workload (`fantrace_tests::truth`) makes groups and marks
//! every way it can name, share and end them (one group made before the recorder started), and
//! at each checkpoint `marks_at` must list what `/proc/PID/fdinfo` listed, mark for mark and
//! mask for mask, one group per set of fds.
use std::time::Duration;

use fantrace_tests::harness::{query_json, require_probe};
use fantrace_tests::truth::{self, assert_matches_kernel};

#[test]
fn marks_at_lists_what_the_kernel_lists_at_every_checkpoint() {
    if !require_probe("marks_at_lists_what_the_kernel_lists_at_every_checkpoint") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let (checkpoints, summary) = truth::record(
        &capture,
        &tmp.path().join("marked"),
        &[],
        Duration::from_millis(1500),
    );
    assert!(summary.contains("0 lost"), "recorder summary: {summary}");
    assert_eq!(
        checkpoints.len(),
        6,
        "the truth workload prints 6 checkpoints"
    );
    for c in &checkpoints {
        assert_matches_kernel(&capture, c);
    }
    // Every successful fanotify_init made a group of its own, though the kernel gave several
    // of them the address (and the fd) of one just closed.
    let pids: Vec<String> = checkpoints[0].pids.iter().map(u32::to_string).collect();
    let inits = query_json(
        &capture,
        &format!(
            "SELECT count(*) AS inits, count(DISTINCT group_id) AS groups FROM inits \
             WHERE fd >= 0 AND pid IN ({})",
            pids.join(", ")
        ),
    );
    assert_eq!(inits[0]["inits"], inits[0]["groups"], "{inits:?}");
    assert!(inits[0]["inits"].as_u64() >= Some(7), "{inits:?}");
    // History: the group whose only fd was closed (its one mark, FAN_OPEN on b) ended, even
    // though the next group got its fd and, most often, its kernel address.
    let ended = query_json(
        &capture,
        "SELECT state, note FROM marks WHERE resolved_path LIKE '%/marked/b' AND mask_bits = 32",
    );
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["state"], "ended: group closed", "{ended:?}");
}
