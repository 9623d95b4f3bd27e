//! The kernel matrix: the same end-to-end checks on another kernel than this machine's.
//! Debian 12's 6.1 (the LTS series most servers run) has BPF trampolines, an older verifier and
//! ia32 emulation, so it exercises what this machine's kernel cannot: the fentry mode, and the
//! probe passing an older verifier, and the fentry hooks inside fanotify. The test boots the
//! guest once; inside, it records the scenario workload, the mark lifecycle, the truth workload
//! (whose checkpoints carry the kernel's fdinfo) and a loss storm in fentry and in tracepoint
//! mode; back on the host the captures are checked exactly like the host's own.
use std::path::Path;
use std::time::Duration;

use fantrace_tests::calls::{Call, realtime_ns};
use fantrace_tests::checks::{assert_every_call_captured, assert_written_plus_lost, attach_mode};
use fantrace_tests::guest::{DEBIAN_6_1, GUEST_OUT_ENV, guest_out, require_guest};
use fantrace_tests::harness::{PausedWorkload, Recorder, query_json, require_probe, run_workload};
use fantrace_tests::lifecycle::{self, assert_marks_follow};
use fantrace_tests::truth;

/// The attach mode each recording asks for, and the mode it must get: on 6.1 the default
/// (auto) must pick fentry.
const MODES: [(&str, &str); 2] = [("auto", "fentry"), ("tracepoint", "tracepoint")];
/// Calls in the guest's loss storm: enough to overflow a 4 KiB ring many times over, few
/// enough for an emulated CPU.
const STORM_CALLS: u64 = 40_000;

/// Inside the guest: record, write the calls made next to each capture, and return.
fn record_in_guest(out: &Path) {
    for (mode, _) in MODES {
        let dir = out.join(mode);
        std::fs::create_dir_all(&dir).unwrap();
        let rec = Recorder::start(&dir.join("scenario"), &["--attach", mode]);
        let calls = run_workload(&["--linger-ms", "500"]);
        // The shared directory is 9p, whose inodes do not stay the same from one path lookup to
        // the next, so an inode mark could never be found again to remove: the lifecycle
        // marks a tmpfs of the guest's own.
        let watched = dir.join("watched");
        std::fs::create_dir_all(&watched).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "fantrace-watched"])
            .arg(&watched)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mounting a tmpfs on {}",
            watched.display()
        );
        let checkpoints = lifecycle::run_workload(&watched);
        std::thread::sleep(Duration::from_millis(200));
        let end_ns = realtime_ns();
        std::thread::sleep(Duration::from_millis(200));
        let summary = rec.stop();
        let json: Vec<String> = checkpoints
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        std::fs::write(dir.join("lifecycle.jsonl"), json.join("\n")).unwrap();
        std::fs::write(dir.join("lifecycle.end"), end_ns.to_string()).unwrap();
        let _ = std::process::Command::new("umount").arg(&watched).status();
        assert!(summary.contains("0 lost"), "{mode}: {summary}");
        // The kernel as the judge: fdinfo at every checkpoint. The emulated CPU is slow, so
        // each step gets three seconds for the recorder's once-a-second look.
        let (truth_checkpoints, summary) = truth::record(
            &dir.join("truth"),
            &dir.join("truth-marked"),
            &["--attach", mode],
            Duration::from_millis(3000),
        );
        assert!(summary.contains("0 lost"), "{mode}: {summary}");
        let json: Vec<String> = truth_checkpoints
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        std::fs::write(dir.join("truth.jsonl"), json.join("\n")).unwrap();
        let json: Vec<String> = calls
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        std::fs::write(dir.join("scenario.jsonl"), json.join("\n")).unwrap();

        let storm = PausedWorkload::start(&["--storm", &STORM_CALLS.to_string(), "--threads", "4"]);
        let pid = storm.pid;
        let rec = Recorder::start(
            &dir.join("storm"),
            &[
                "--attach",
                mode,
                "--ring-buffer",
                "4096",
                "--pid",
                &pid.to_string(),
            ],
        );
        let summary = storm.go();
        assert_eq!(summary["calls"], STORM_CALLS);
        rec.stop();
        std::fs::write(dir.join("storm.pid"), pid.to_string()).unwrap();
    }
}

#[test]
fn debian_6_1_records_every_call_in_both_modes_and_accounts_for_losses() {
    const TEST: &str = "debian_6_1_records_every_call_in_both_modes_and_accounts_for_losses";
    if let Some(out) = guest_out() {
        record_in_guest(&out);
        return;
    }
    if !require_probe(TEST) {
        return;
    }
    let Some(kernel) = require_guest(TEST, DEBIAN_6_1) else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let command = format!(
        "{GUEST_OUT_ENV}={} {} --exact {TEST} --nocapture --test-threads=1",
        shared.path().display(),
        exe.display()
    );
    let log = kernel
        .run(&command, shared.path(), false, Duration::from_secs(900))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains("test result: ok. 1 passed"),
        "the recording inside the guest failed:\n{log}"
    );
    for (asked, mode) in MODES {
        let dir = shared.path().join(asked);
        let scenario = dir.join("scenario");
        let release = query_json(&scenario, "SELECT DISTINCT kernel_release FROM stats");
        let release = release[0]["kernel_release"].as_str().unwrap().to_string();
        assert!(release.starts_with("6.1."), "recorded on {release}");
        let (attached, ia32) = attach_mode(&scenario);
        assert_eq!(attached, mode, "--attach {asked} on {release}");
        assert_eq!(ia32, "yes", "{mode} on {release}: 32-bit calls covered");
        if mode == "fentry" {
            let points = query_json(&scenario, "SELECT DISTINCT attach_points FROM stats");
            let points = points[0]["attach_points"].as_str().unwrap();
            assert!(
                points.contains("__x64_sys_fanotify_mark")
                    && points.contains("__ia32_compat_sys_fanotify_mark"),
                "{points}"
            );
        }
        let calls: Vec<Call> = std::fs::read_to_string(dir.join("scenario.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        eprintln!("{release}, {mode}: checking {} calls", calls.len());
        assert_every_call_captured(&scenario, &calls);
        let checkpoints = lifecycle::parse_checkpoints(
            &std::fs::read_to_string(dir.join("lifecycle.jsonl")).unwrap(),
        );
        let end_ns: i64 = std::fs::read_to_string(dir.join("lifecycle.end"))
            .unwrap()
            .parse()
            .unwrap();
        assert_marks_follow(&scenario, &checkpoints, &dir.join("watched"), end_ns);
        let truth_checkpoints =
            truth::parse_checkpoints(&std::fs::read_to_string(dir.join("truth.jsonl")).unwrap());
        assert_eq!(truth_checkpoints.len(), 6, "{mode}: truth checkpoints");
        for c in &truth_checkpoints {
            truth::assert_matches_kernel(&dir.join("truth"), c);
        }
        let pid: u32 = std::fs::read_to_string(dir.join("storm.pid"))
            .unwrap()
            .parse()
            .unwrap();
        let storm = dir.join("storm");
        assert_eq!(attach_mode(&storm).0, mode);
        assert_written_plus_lost(&storm, pid, STORM_CALLS);
    }
}
