//! The kernel as the judge: the truth workload (`fantrace_tests::truth`) makes groups and marks
//! every way it can name, share and end them, and at each checkpoint `marks_at` must list what
//! `/proc/PID/fdinfo` listed, mark for mark and mask for mask, one group per set of fds.
use fantrace_tests::harness::{Recorder, bin, require_probe};
use fantrace_tests::truth::{self, assert_matches_kernel};

#[test]
fn marks_at_lists_what_the_kernel_lists_at_every_checkpoint() {
    if !require_probe("marks_at_lists_what_the_kernel_lists_at_every_checkpoint") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &[]);
    let out = std::process::Command::new(bin("fantrace-workload"))
        .arg("--truth")
        .arg("--dir")
        .arg(tmp.path().join("marked"))
        .output()
        .expect("running the truth workload");
    let summary = rec.stop();
    assert!(
        out.status.success(),
        "the truth workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("0 lost"), "recorder summary: {summary}");
    let checkpoints = truth::parse_checkpoints(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        checkpoints.len(),
        6,
        "the truth workload prints 6 checkpoints"
    );
    for c in &checkpoints {
        assert_matches_kernel(&capture, c);
    }
}
