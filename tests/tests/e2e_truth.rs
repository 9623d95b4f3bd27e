//! The kernel as the judge: the truth workload (`fantrace_tests::truth`) makes groups and marks
//! every way it can name, share and end them (one group made before the recorder started), and
//! at each checkpoint `marks_at` must list what `/proc/PID/fdinfo` listed, mark for mark and
//! mask for mask, one group per set of fds.
use std::time::Duration;

use fantrace_tests::harness::require_probe;
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
}
