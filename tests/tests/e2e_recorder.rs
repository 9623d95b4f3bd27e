//! Recorder faults: rotation and pruning, SIGKILL, bad destinations and a full disk. Each
//! case runs the real recorder with the real probe.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantrace_tests::harness::{
    PausedWorkload, Recorder, analyzer, bin, query_json, release_bin, require_probe, run_workload,
};

/// The finished segments of a capture and the partial ones still in `.in-progress/`.
fn segments(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut done = Vec::new();
    let mut tmp = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".parquet") {
            done.push(p);
        }
    }
    if let Ok(partials) = std::fs::read_dir(dir.join(".in-progress")) {
        tmp.extend(partials.map(|e| e.unwrap().path()));
    }
    done.sort();
    (done, tmp)
}

#[test]
fn rotation_by_interval_keeps_the_newest_segments_each_complete() {
    if !require_probe("rotation_by_interval_keeps_the_newest_segments_each_complete") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &["--rotate-interval", "0.3", "--keep", "3"]);
    let mut calls = Vec::new();
    for _ in 0..6 {
        calls.extend(run_workload(&[]));
        std::thread::sleep(Duration::from_millis(250));
    }
    rec.stop();
    let (done, leftover) = segments(&capture);
    assert!(leftover.is_empty(), "temporary files left: {leftover:?}");
    assert_eq!(
        done.len(),
        3,
        "--keep 3 leaves exactly 3 segments: {done:?}"
    );
    let mode = std::fs::metadata(&capture).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    for seg in &done {
        let mode = std::fs::metadata(seg).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", seg.display());
    }
    // Each finished segment has its line in the index, describing the file as it is.
    let index = fantrace_schema::index::read(&capture).unwrap();
    for seg in &done {
        let name = seg.file_name().unwrap().to_string_lossy();
        let line = index
            .get(name.as_ref())
            .unwrap_or_else(|| panic!("{name}: no index line"));
        let stat = std::fs::metadata(seg).unwrap();
        assert!(line.matches(&stat), "{name}: {line:?} vs {stat:?}");
        assert_eq!(
            line.schema_version,
            fantrace_schema::metadata::CURRENT_SCHEMA_VERSION
        );
    }
    let index_file = capture.join(fantrace_schema::index::FILE_NAME);
    let mode = std::fs::metadata(&index_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stats = query_json(&capture, "SELECT stop_reason FROM stats ORDER BY segment");
    let reasons: Vec<&str> = stats
        .iter()
        .map(|r| r["stop_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons[..2],
        ["rotated: interval", "rotated: interval"],
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("signal SIGINT from pid "),
        "{reasons:?}"
    );
    // What survives is complete: no row appears twice across segments.
    let dup = query_json(
        &capture,
        "SELECT count(*) AS n, count(DISTINCT (tid, time)) AS d FROM events",
    );
    assert_eq!(dup[0]["n"], dup[0]["d"]);
}

#[test]
fn sigkill_loses_at_most_the_open_segment() {
    if !require_probe("sigkill_loses_at_most_the_open_segment") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start_release(&capture, &["--rotate-interval", "0.2"]);
    let mut pids = Vec::new();
    let mut per_run = 0;
    for _ in 0..4 {
        let calls = run_workload(&[]);
        per_run = calls.iter().filter(|c| c.pid == calls[0].pid).count();
        pids.push(calls[0].pid);
        std::thread::sleep(Duration::from_millis(300));
    }
    rec.kill();
    let (done, _open) = segments(&capture);
    assert!(done.len() >= 3, "rotated segments must survive: {done:?}");
    // The analyzer reads every finished segment and never takes the temporary file.
    let rows = query_json(
        &capture,
        "SELECT count(*) AS n, count(DISTINCT (tid, time)) AS d FROM events",
    );
    assert_eq!(rows[0]["n"], rows[0]["d"]);
    let per_workload = query_json(
        &capture,
        &format!(
            "SELECT pid, count(*) AS n FROM events WHERE pid IN ({}) GROUP BY pid",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    // Every workload but possibly the last (whose calls may sit in the open segment) is whole.
    let whole = per_workload.iter().filter(|r| r["n"] == per_run).count();
    assert!(whole >= pids.len() - 1, "{per_workload:?}");
}

#[test]
fn sigterm_during_a_storm_drains_and_closes_a_complete_file() {
    if !require_probe("sigterm_during_a_storm_drains_and_closes_a_complete_file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let storm = PausedWorkload::start(&["--storm", "16000000", "--threads", "2"]);
    let pid = storm.pid;
    let rec = Recorder::start(&capture, &["--pid", &pid.to_string()]);
    let waiter = std::thread::spawn(move || storm.go());
    std::thread::sleep(Duration::from_millis(700));
    rec.stop_with(libc::SIGTERM);
    let made = waiter.join().unwrap()["calls"].as_u64().unwrap();
    let stats = query_json(
        &capture,
        "SELECT events_written AS w, events_lost AS l, stop_reason FROM stats",
    );
    let (w, l) = (
        stats[0]["w"].as_u64().unwrap(),
        stats[0]["l"].as_u64().unwrap(),
    );
    let rows = query_json(&capture, "SELECT count(*) AS n FROM events");
    assert_eq!(
        rows[0]["n"].as_u64().unwrap(),
        w,
        "metadata matches the rows"
    );
    assert!(w > 0, "the storm was recorded while attached");
    assert!(
        w + l < made,
        "the signal came during the storm, not after it"
    );
    // Calls after the probe detached are neither written nor lost: they were never seen.
    assert!(w + l <= made, "written {w} + lost {l} vs {made} calls");
    assert!(
        stats[0]["stop_reason"]
            .as_str()
            .unwrap()
            .starts_with("signal SIGTERM")
    );
    // Rows come out in time order, read in file order (SQL gives no file order).
    let unordered = out_of_order_rows(&capture);
    eprintln!("storm: {made} calls, {w} written, {l} lost, {unordered} out of order");
    // Only a call that stayed inside the kernel for longer than the writer's 50 ms hold-back
    // can land out of order; in a storm of fast-failing calls that is rare.
    assert!(
        unordered * 10_000 <= w,
        "{unordered} of {w} rows out of time order"
    );
}

/// Rows whose time is earlier than the previous row's, in each segment's file order.
fn out_of_order_rows(capture: &Path) -> u64 {
    use arrow::array::AsArray as _;
    let (segments, _) = segments(capture);
    let mut unordered = 0;
    for seg in segments {
        let file = std::fs::File::open(&seg).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut last = i64::MIN;
        for batch in reader {
            let batch = batch.unwrap();
            let times = batch
                .column_by_name("time")
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            for &t in times.values() {
                unordered += u64::from(t < last);
                last = t;
            }
        }
    }
    unordered
}

fn refused(output: &Path, expect_in_error: &str) {
    let out = Command::new(bin("fantrace-recorder"))
        .arg("--output")
        .arg(output)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expect_in_error), "stderr: {err}");
    assert!(err.contains(&output.display().to_string()) || err.contains(expect_in_error));
    assert_eq!(err.matches("error:").count(), 1, "one clear error: {err}");
}

struct Mount(PathBuf);
impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "fantrace-test"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs at {}", at.display());
        Mount(at.to_path_buf())
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn bad_destinations_are_refused_before_anything_is_created() {
    if !require_probe("bad_destinations_are_refused_before_anything_is_created") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Parent missing.
    let missing = tmp.path().join("no/such/dir/capture");
    refused(&missing, "does not exist");
    assert!(!tmp.path().join("no").exists());
    // A symlink.
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    refused(&link, "symbolic link");
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    // Owned by another user.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
    refused(&other, "owned by uid 65534");
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
    // Not writable: a read-only file system.
    let ro = Mount::tmpfs(&tmp.path().join("ro"), "ro,size=1m");
    refused(&ro.0.join("capture"), "not writable");
    assert!(!ro.0.join("capture").exists());
    // Through a symlink by another spelling: a trailing slash, or a directory below it.
    refused(Path::new(&format!("{}/", link.display())), "symbolic link");
    refused(&link.join("sub"), "symbolic link");
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
}

#[test]
fn values_that_record_nothing_or_take_the_machine_are_refused() {
    if !require_probe("values_that_record_nothing_or_take_the_machine_are_refused") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    for (args, expect) in [
        (&["--pid", "0"][..], "pid 0"),
        (&["--cgroup", "0"][..], "cgroup id 0"),
        (&["--cgroup", "../../../../../../etc"][..], "not a cgroup"),
        (&["--ring-buffer", "2147483648"][..], "1 GiB"),
        (&["--rotate-interval", "1e-9"][..], "at least 0.1 s"),
        (&["--max-events", "0"][..], "--max-events"),
    ] {
        let out = Command::new(bin("fantrace-recorder"))
            .arg("--output")
            .arg(&capture)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!capture.exists(), "{args:?} created the capture");
    }
}

#[test]
fn one_recorder_per_directory() {
    if !require_probe("one_recorder_per_directory") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let first = Recorder::start(&capture, &[]);
    let second = Command::new(bin("fantrace-recorder"))
        .arg("--output")
        .arg(&capture)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        err.contains("is being recorded by another fantrace-recorder (pid "),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "one clear error: {err}");
    let calls = run_workload(&[]);
    first.stop();
    // Every call once: the refused recorder recorded nothing.
    let rows = query_json(
        &capture,
        &format!(
            "SELECT count(*) AS n FROM events WHERE pid = {}",
            calls[0].pid
        ),
    );
    let from_parent = calls.iter().filter(|c| c.pid == calls[0].pid).count();
    assert_eq!(rows[0]["n"], from_parent);
    // Stopped, it leaves the directory free for the next one.
    Recorder::start(&capture, &[]).stop();
}

#[test]
fn rotation_keeps_time_under_a_storm_and_sigkill_loses_only_the_open_segment() {
    if !require_probe("rotation_keeps_time_under_a_storm_and_sigkill_loses_only_the_open_segment") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let storm = PausedWorkload::start(&["--storm", "50000", "--rounds", "400"]);
    let mut rec = Command::new(release_bin("fantrace-recorder"))
        .arg("--output")
        .arg(&capture)
        .args(["--rotate-interval", "0.5", "--pid", &storm.pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let storm_thread = std::thread::spawn(move || storm.go());
    // In the middle of the storm, without a chance to close anything.
    std::thread::sleep(Duration::from_millis(3000));
    rec.kill().unwrap();
    rec.wait().unwrap();
    let _ = storm_thread.join();
    let (done, _) = segments(&capture);
    let stats = query_json(
        &capture,
        "SELECT segment_seq, events_written,          arrow_cast(to_timestamp_nanos(segment_end), 'Int64') -          arrow_cast(to_timestamp_nanos(segment_start), 'Int64') AS span_ns,          arrow_cast(to_timestamp_nanos(time_min), 'Int64') >=          arrow_cast(to_timestamp_nanos(segment_start), 'Int64') AS covered          FROM stats ORDER BY segment_seq",
    );
    eprintln!("{} finished segments: {stats:?}", done.len());
    let with_rows = stats.iter().filter(|r| r["events_written"] != 0).count();
    assert!(
        with_rows >= 3,
        "segments end on time while calls keep coming: {stats:?}"
    );
    for r in &stats {
        let span = r["span_ns"].as_i64().unwrap();
        assert!(
            span < 1_500_000_000,
            "a 0.5 s segment spans {span} ns: {stats:?}"
        );
        if r["events_written"] != 0 {
            assert_eq!(r["covered"], true, "the window covers the rows: {r:?}");
        }
    }
}

/// A recorder in `--on-disk-full drop` mode with small segments, following a paused storm of
/// `rounds` rounds of `per_round` calls with long random paths.
fn drop_mode_storm(
    capture: &Path,
    per_round: u64,
    rounds: u64,
    pause_ms: u64,
) -> (Recorder, PausedWorkload) {
    let storm = PausedWorkload::start(&[
        "--storm",
        &per_round.to_string(),
        "--rounds",
        &rounds.to_string(),
        "--round-pause-ms",
        &pause_ms.to_string(),
        "--path-bytes",
        "4000",
        "--random-paths",
    ]);
    let rec = Recorder::start(
        capture,
        &[
            "--on-disk-full",
            "drop",
            "--rotate-size",
            "65536",
            "--pid",
            &storm.pid.to_string(),
        ],
    );
    (rec, storm)
}

#[test]
fn a_recorder_stopped_on_a_full_disk_still_accounts_for_every_call() {
    if !require_probe("a_recorder_stopped_on_a_full_disk_still_accounts_for_every_call") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let small = Mount::tmpfs(&tmp.path().join("small"), "size=1m");
    let ballast = small.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 700 * 1024]).unwrap();
    let capture = small.0.join("capture");
    let (rec, storm) = drop_mode_storm(&capture, 40, 6, 300);
    let made = storm.go()["calls"].as_u64().unwrap();
    // Stopped with the disk still full: the abandoned segment's space is enough for the last
    // segment, which records the stop and every dropped call.
    let summary = rec.stop();
    let in_progress = std::fs::read_dir(capture.join(".in-progress"))
        .unwrap()
        .count();
    assert_eq!(in_progress, 0, "no partial segment left on the full disk");
    let stats = query_json(
        &capture,
        "SELECT sum(events_written) AS w, sum(lost_disk_full) AS d FROM stats",
    );
    let (w, d) = (
        stats[0]["w"].as_u64().unwrap(),
        stats[0]["d"].as_u64().unwrap(),
    );
    eprintln!("stopped on a full disk: {made} calls, {w} written, {d} dropped; {summary}");
    assert!(d > 0, "the disk was full: {summary}");
    assert_eq!(w + d, made, "every call is written or counted as dropped");
    let last = query_json(
        &capture,
        "SELECT stop_reason FROM stats ORDER BY segment_seq DESC LIMIT 1",
    );
    assert!(
        last[0]["stop_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("signal SIGINT")),
        "{last:?}"
    );
}

#[test]
fn disk_full_is_a_clear_error_and_finished_segments_stay_intact() {
    if !require_probe("disk_full_is_a_clear_error_and_finished_segments_stay_intact") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let small = Mount::tmpfs(&tmp.path().join("small"), "size=512k");
    let capture = small.0.join("capture");
    // Random 4000-byte paths do not compress: each round of 40 calls is ~120 KiB, and the
    // pauses let the recorder close a few segments before the 512 KiB fill up.
    let storm = PausedWorkload::start(&[
        "--storm",
        "40",
        "--rounds",
        "12",
        "--round-pause-ms",
        "1200",
        "--path-bytes",
        "4000",
        "--random-paths",
    ]);
    let rec = Command::new(bin("fantrace-recorder"))
        .arg("--output")
        .arg(&capture)
        // --duration bounds the test should the recorder never hit the full disk.
        .args([
            "--rotate-size",
            "65536",
            "--duration",
            "120",
            "--pid",
            &storm.pid.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    storm.go();
    let out = rec.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the recorder must fail on a full disk"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "stderr: {err}");
    assert!(
        err.contains(&capture.display().to_string()),
        "error names the path: {err}"
    );
    let (done, _) = segments(&capture);
    assert!(
        !done.is_empty(),
        "segments finished before the disk filled are kept"
    );
    for seg in &done {
        let out = analyzer(&[
            "query",
            "--capture",
            &seg.to_string_lossy(),
            "SELECT count(*) FROM events",
        ]);
        assert!(
            out.status.success(),
            "{}: {}",
            seg.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn disk_full_with_drop_keeps_recording_and_counts_every_dropped_call() {
    if !require_probe("disk_full_with_drop_keeps_recording_and_counts_every_dropped_call") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let small = Mount::tmpfs(&tmp.path().join("small"), "size=1m");
    // Ballast leaves a few hundred KiB: the storm fills them, then the test frees the space.
    let ballast = small.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 640 * 1024]).unwrap();
    let capture = small.0.join("capture");
    let rounds = 8u64;
    let per_round = 40u64;
    let (rec, storm) = drop_mode_storm(&capture, per_round, rounds, 600);
    let made = storm.go()["calls"].as_u64().unwrap();
    assert_eq!(made, rounds * per_round);
    std::fs::remove_file(&ballast).unwrap();
    // The writer retries every second; give it time to resume.
    std::thread::sleep(Duration::from_millis(2500));
    let summary = rec.stop();
    let stats = query_json(
        &capture,
        "SELECT sum(events_written) AS w, sum(lost_disk_full) AS d, sum(events_lost) AS l FROM stats",
    );
    let w = stats[0]["w"].as_u64().unwrap();
    let d = stats[0]["d"].as_u64().unwrap();
    eprintln!("disk full, drop: {made} calls, {w} written, {d} dropped; {summary}");
    assert!(d > 0, "the disk filled, so calls were dropped: {summary}");
    assert!(w > 0);
    assert_eq!(w + d, made, "every call is written or counted as dropped");
    assert_eq!(stats[0]["l"].as_u64().unwrap(), d, "drops count as losses");
    let rows = query_json(&capture, "SELECT count(*) AS n FROM events");
    assert_eq!(rows[0]["n"].as_u64().unwrap(), w);
}
