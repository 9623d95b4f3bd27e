//! The real probe on the real kernel: every fanotify_mark call the workload makes, native or
//! ia32, is captured exactly once with exactly its arguments, path bytes, result and caller,
//! in every attach mode this kernel offers.
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use fantrace_tests::calls::Call;
use fantrace_tests::checks::{assert_every_call_captured, attach_mode, pid_list};
use fantrace_tests::harness::{Recorder, bin, query_json, require_probe, run_workload};
use serde_json::Value;

/// The scenario workload under a recorder attached with `extra` arguments; returns the
/// capture and the calls made.
fn record_scenario(dir: &std::path::Path, extra: &[&str]) -> (std::path::PathBuf, Vec<Call>) {
    std::fs::create_dir_all(dir).unwrap();
    let capture = dir.join("capture");
    let rec = Recorder::start(&capture, extra);
    // Lingering lets the recorder read /proc/PID/exe before the workload exits.
    let calls: Vec<Call> = run_workload(&["--linger-ms", "500"]);
    let summary = rec.stop();
    assert!(summary.contains("0 lost"), "recorder summary: {summary}");
    (capture, calls)
}

#[test]
fn every_call_is_captured_once_with_exact_values() {
    if !require_probe("every_call_is_captured_once_with_exact_values") {
        return;
    }
    // The default picks fentry where the kernel has BPF trampolines; then the tracepoint
    // mode is checked too, so every mode this kernel offers records the same rows.
    let tmp = tempfile::tempdir().unwrap();
    let (capture, calls) = record_scenario(&tmp.path().join("auto"), &[]);
    let (mode, ia32) = attach_mode(&capture);
    eprintln!("auto attached with {mode}; ia32 covered: {ia32}");
    assert!(ia32.starts_with("yes"), "{ia32}");
    assert_every_call_captured(&capture, &calls);
    if mode == "fentry" {
        let (capture, calls) = record_scenario(&tmp.path().join("tp"), &["--attach", "tracepoint"]);
        assert_eq!(attach_mode(&capture).0, "tracepoint");
        assert_every_call_captured(&capture, &calls);
    } else {
        assert_eq!(mode, "tracepoint");
        let reason = query_json(&capture, "SELECT DISTINCT attach_reason FROM stats");
        assert!(
            reason[0]["attach_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("auto: fentry unavailable")),
            "{reason:?}"
        );
    }
}

#[test]
fn without_ia32_coverage_every_segment_says_so() {
    if !require_probe("without_ia32_coverage_every_segment_says_so") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (capture, calls) =
        record_scenario(tmp.path(), &["--attach", "tracepoint", "--ia32", "off"]);
    let (_, ia32) = attach_mode(&capture);
    assert!(
        ia32.starts_with("no: --ia32 off in tracepoint mode"),
        "{ia32}"
    );
    let rows = query_json(
        &capture,
        &format!(
            "SELECT count(*) AS n FROM calls WHERE pid IN ({}) AND abi = 'ia32'",
            pid_list(&calls)
        ),
    );
    assert_eq!(
        rows[0]["n"], 0,
        "the syscall tracepoints do not see ia32 calls"
    );
    let out = fantrace_tests::harness::analyzer(&["inspect", "-c", &capture.to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("32-bit (ia32) calls were not recorded"),
        "inspect must warn: {text}"
    );
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
