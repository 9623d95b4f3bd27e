//! The analyzer binary against captures built here with the schema crate's own builder:
//! every command, the read-only and memory guards, and every kind of bad input. No probe needed.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use fantrace_schema::arrow::{COLUMNS, EventBuilder, ProcessInfo, events_schema};
use fantrace_schema::metadata as keys;
use fantrace_schema::record::{CallRecord, PathStatus};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;

const T0: i64 = 1_795_000_000_000_000_000;

/// One call at T0 + `i` ms.
struct Row {
    i: u64,
    pid: u32,
    comm: &'static str,
    flags: u32,
    mask: u64,
    ret: i64,
    path: &'static [u8],
    status: PathStatus,
}

fn event(r: &Row) -> CallRecord {
    let mut c = [0u8; 16];
    c[..r.comm.len()].copy_from_slice(r.comm.as_bytes());
    CallRecord {
        enter_ns: r.i * 1_000_000,
        exit_ns: r.i * 1_000_000 + 500,
        mask: r.mask,
        ret: r.ret,
        cgroup_id: 1,
        pid: r.pid,
        tid: r.pid,
        uid: 0,
        gid: 0,
        ppid: 1,
        mnt_ns: 4026531841,
        pid_ns: 4026531836,
        abi: 0,
        fanotify_fd: 3,
        flags: r.flags,
        dirfd: -100,
        path_len: r.path.len() as u16,
        path_status: r.status as u8,
        syscall: 0,
        comm: c,
        ..CallRecord::default()
    }
}

/// A segment with known rows: two processes, a permission mark, a mount mark, a failure, a
/// non-UTF-8 path and a NULL path.
fn write_segment(path: &Path, schema_version: &str, lost: u64) {
    write_segment_with(path, schema_version, lost, &[]);
}

/// A segment like [`write_segment`], with extra key-value metadata.
fn write_segment_with(path: &Path, schema_version: &str, lost: u64, extra: &[(&str, &str)]) {
    let row = |i, pid, comm, flags, mask, ret, path, status| Row {
        i,
        pid,
        comm,
        flags,
        mask,
        ret,
        path,
        status,
    };
    let rows = [
        row(
            1,
            100,
            "avd",
            0x1,
            0x10000 | 0x20,
            0,
            b"/etc",
            PathStatus::Ok,
        ),
        row(2, 100, "avd", 0x11, 0x20, 0, b"/", PathStatus::Ok),
        row(3, 200, "evil", 0x1, 0x20, -9, b"/root/.ssh", PathStatus::Ok),
        row(4, 200, "evil", 0x1, 0x1, 0, b"/tmp/\xff", PathStatus::Ok),
        row(5, 200, "evil", 0x80, 0, 0, b"", PathStatus::Null),
    ];
    let mut b = EventBuilder::with_capacity(rows.len(), 64, Default::default());
    for r in &rows {
        let process = ProcessInfo {
            exe: Some(format!("/usr/bin/{}", r.comm)),
            container_id: None,
        };
        b.append(&event(r), r.path, T0, &process, &Default::default());
    }
    let batch = as_stored_in(
        b.finish().unwrap(),
        schema_version.parse().unwrap_or(u32::MAX),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    for (k, v) in [
        (keys::SCHEMA_VERSION, schema_version.to_string()),
        (keys::HOSTNAME, "testhost".to_string()),
        (keys::EVENTS_WRITTEN, rows.len().to_string()),
        (keys::EVENTS_LOST, lost.to_string()),
        (keys::STOP_REASON, "signal SIGINT".to_string()),
    ] {
        w.append_key_value_metadata(KeyValue::new(k.to_string(), v));
    }
    for (k, v) in extra {
        w.append_key_value_metadata(KeyValue::new(k.to_string(), v.to_string()));
    }
    w.close().unwrap();
}

/// The batch as segments of `version` stored it: each column cast to that version's type, and
/// the columns it did not have left out.
fn as_stored_in(batch: RecordBatch, version: u32) -> RecordBatch {
    let schema = events_schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (column, array) in COLUMNS.iter().zip(batch.columns()) {
        let Some(t) = column.stored_type(version) else {
            continue;
        };
        fields.push(Field::new(column.name, t.clone(), column.nullable));
        columns.push(arrow::compute::cast(array, &t).unwrap());
    }
    let schema = Schema::new(fields).with_metadata(schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

fn capture(dir: &Path) -> PathBuf {
    let cap = dir.join("capture");
    std::fs::create_dir(&cap).unwrap();
    write_segment(&cap.join("fantrace-a-000000.parquet"), "1", 0);
    cap
}

fn analyzer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fantrace-analyzer"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = analyzer(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exactly one error line that contains every `needle`; never a panic.
fn fails(args: &[&str], needles: &[&str]) {
    let out = analyzer(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.matches("fantrace-analyzer: error:").count(),
        1,
        "one error: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

/// Segments of schema version 2 (plain-text `syscall`) and of the current version, in one
/// capture: both open, and every view sees the rows of both.
#[test]
fn segments_of_older_and_current_versions_query_together() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("capture");
    std::fs::create_dir(&cap).unwrap();
    write_segment(&cap.join("fantrace-a-000000.parquet"), "2", 0);
    write_segment(
        &cap.join("fantrace-b-000001.parquet"),
        &fantrace_schema::metadata::CURRENT_SCHEMA_VERSION.to_string(),
        0,
    );
    let c = cap.to_str().unwrap();
    let csv = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "csv",
        "SELECT syscall, count(*) AS n FROM calls GROUP BY syscall",
    ]);
    assert_eq!(csv, "syscall,n\nfanotify_mark,10\n");
    let csv = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "csv",
        "SELECT mark_action, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    ]);
    assert_eq!(csv, "mark_action,n\nadd,8\nflush,2\n");
    // The current type, whichever segment sorts first.
    let csv = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "csv",
        "SELECT DISTINCT arrow_typeof(syscall) AS t FROM calls",
    ]);
    assert_eq!(csv, "t\n\"Dictionary(UInt8, Utf8)\"\n");
}

#[test]
fn query_formats_and_sql_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    let c = cap.to_str().unwrap();
    let table = ok(&[
        "query",
        "-c",
        c,
        "SELECT comm, count(*) AS n FROM events GROUP BY comm ORDER BY comm",
    ]);
    assert!(
        table.contains("| avd  | 2 |") && table.contains("| evil | 3 |"),
        "{table}"
    );
    // A statement that does not name the mark-state views is planned without them; one that
    // does, or lists the tables, has them, however it spells them.
    let listed = ok(&["query", "-c", c, "--format", "csv", "SHOW TABLES"]);
    assert!(listed.contains(",marks,"), "{listed}");
    let marks = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM MARKS",
    ]);
    assert!(marks.starts_with("n\n"), "{marks}");
    let at = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM marks_at('2030-01-01T00:00:00Z')",
    ]);
    assert!(at.starts_with("n\n"), "{at}");
    let csv = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "csv",
        "SELECT pid, ret FROM events ORDER BY time",
    ]);
    assert_eq!(csv.lines().next(), Some("pid,ret"));
    assert_eq!(csv.lines().count(), 6);
    let json = ok(&[
        "query",
        "-c",
        c,
        "--format",
        "json",
        "SELECT encode(pathname_raw, 'hex') AS h FROM events WHERE pathname_raw IS NOT NULL",
    ]);
    assert_eq!(json.trim(), r#"{"h":"2f746d702fff"}"#);
    let sql_file = tmp.path().join("q.sql");
    std::fs::write(&sql_file, "SELECT count(*) AS n FROM events").unwrap();
    assert!(ok(&["query", "-c", c, "-f", sql_file.to_str().unwrap()]).contains("| 5 |"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fantrace-analyzer"))
        .args(["query", "-c", c, "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT max(pid) AS m FROM events")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "m\n200\n");
    let pq = tmp.path().join("out.parquet");
    ok(&[
        "query",
        "-c",
        c,
        "--format",
        "parquet",
        "-o",
        pq.to_str().unwrap(),
        "SELECT * FROM events",
    ]);
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&pq).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader as _;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 5);
    fails(
        &["query", "-c", c, "--format", "parquet", "SELECT 1"],
        &["--output"],
    );
}

#[test]
fn decoding_functions_in_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    let out = ok(&[
        "query",
        "-c",
        cap.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT fan_flag_names(flags) AS f, fan_mask_names(mask) AS m, fan_mark_type(flags) AS t, \
         errno_name(ret) AS e, has_mask(mask, 'FAN_OPEN_PERM') AS p FROM events ORDER BY time",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "FAN_MARK_ADD,FAN_OPEN|FAN_OPEN_PERM,inode,,true");
    assert_eq!(
        lines[2],
        "FAN_MARK_ADD|FAN_MARK_MOUNT,FAN_OPEN,mount,,false"
    );
    assert_eq!(lines[3], "FAN_MARK_ADD,FAN_OPEN,inode,EBADF,false");
    // The view's derived columns are the same decoding, as columns.
    let out = analyzer(&[
        "query",
        "-c",
        cap.to_str().unwrap(),
        "--format",
        "csv",
        "--timing",
        "SELECT mark_action, mark_type, array_to_string(flag_names, '|') AS f, \
         array_to_string(mask_names, '|') AS m FROM events ORDER BY time",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "add,inode,FAN_MARK_ADD,FAN_OPEN|FAN_OPEN_PERM");
    assert_eq!(lines[2], "add,mount,FAN_MARK_ADD,FAN_OPEN");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.lines()
            .any(|l| l.starts_with("Run Time: ") && l.ends_with(" s")),
        "{err}"
    );
}

#[test]
fn segments_blind_to_ia32_calls_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let current = keys::CURRENT_SCHEMA_VERSION.to_string();
    let covered = tmp.path().join("covered.parquet");
    write_segment_with(&covered, &current, 0, &[(keys::IA32_COVERED, "yes")]);
    let blind = tmp.path().join("blind.parquet");
    write_segment_with(
        &blind,
        &current,
        0,
        &[(keys::IA32_COVERED, "no: --ia32 off in tracepoint mode")],
    );
    let old = tmp.path().join("old.parquet");
    write_segment(&old, "3", 0);
    let out = analyzer(&["query", "-c", covered.to_str().unwrap(), "SELECT 1"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("ia32"),
        "no warning when every segment saw 32-bit calls"
    );
    for (input, reason) in [
        (&blind, "--ia32 off in tracepoint mode"),
        (&old, "recorded with schema version 3"),
    ] {
        let out = analyzer(&["query", "-c", input.to_str().unwrap(), "SELECT 1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warning: 32-bit (ia32) calls were not recorded in 1 of 1 segment(s)")
                && err.contains(reason),
            "{err}"
        );
    }
    let out = ok(&[
        "inspect",
        "-c",
        covered.to_str().unwrap(),
        "-c",
        blind.to_str().unwrap(),
    ]);
    assert!(
        out.contains("warning: 32-bit (ia32) calls were not recorded in 1 of 2 segment(s)"),
        "{out}"
    );
    // The abi column of a segment from before it existed reads as NULL.
    let abi = ok(&[
        "query",
        "-c",
        old.to_str().unwrap(),
        "-c",
        covered.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT count(*) AS n, count(abi) AS with_abi FROM calls",
    ]);
    assert_eq!(abi.lines().nth(1), Some("10,5"), "{abi}");
}

#[test]
fn replay_prints_strace_lines_with_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    let c = cap.to_str().unwrap();
    let all = ok(&["replay", "-c", c]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0].ends_with(
        "avd[100/100] uid=0 fanotify_mark(3, FAN_MARK_ADD, FAN_OPEN|FAN_OPEN_PERM, AT_FDCWD, \"/etc\") = 0"
    ), "{}", lines[0]);
    assert!(lines[3].contains("\"/tmp/\\xff\""), "{}", lines[3]);
    assert!(
        lines[4].contains("FAN_MARK_FLUSH, 0, AT_FDCWD, NULL) = 0"),
        "{}",
        lines[4]
    );
    let evil = ok(&["replay", "-c", c, "--comm", "evil", "--where", "ret < 0"]);
    assert_eq!(evil.lines().count(), 1);
    assert!(evil.contains("= -1 EBADF"));
    // Paced at 1000x: the 4 ms the calls span take about 4 µs.
    let paced = ok(&["replay", "-c", c, "--speed", "1000"]);
    assert_eq!(paced, all);
    let by_pid = ok(&["replay", "-c", c, "--pid", "100"]);
    assert_eq!(by_pid.lines().count(), 2);
    // T0 + 3 ms is the third call; --since/--until select by wall time.
    let since = ok(&[
        "replay",
        "-c",
        c,
        "--since",
        "2026-11-18T11:06:40.003Z",
        "--until",
        "2026-11-18T11:06:40.005Z",
    ]);
    assert_eq!(since.lines().count(), 2, "{since}");
}

#[test]
fn inspect_and_playbook() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    std::fs::write(cap.join("broken.parquet"), b"not parquet at all").unwrap();
    let out = ok(&["inspect", "-c", cap.to_str().unwrap()]);
    assert!(out.contains("testhost"), "{out}");
    assert!(
        out.contains("1 unreadable input(s)") && out.contains("broken.parquet"),
        "{out}"
    );
    let list = ok(&["playbook"]);
    for name in [
        "permission-marks",
        "wide-marks",
        "sensitive-paths",
        "failed-marks",
        "marks-by-process",
        "brief-watchers",
    ] {
        assert!(list.contains(name));
        let good = cap.join("fantrace-a-000000.parquet");
        let res = ok(&["playbook", name, "-c", good.to_str().unwrap()]);
        assert!(res.contains('+'), "{name}: {res}");
    }
    let perm = ok(&[
        "playbook",
        "permission-marks",
        "-c",
        cap.join("fantrace-a-000000.parquet").to_str().unwrap(),
    ]);
    assert!(perm.contains("avd") && !perm.contains("evil"), "{perm}");
    let sens = ok(&[
        "playbook",
        "sensitive-paths",
        "-c",
        cap.join("fantrace-a-000000.parquet").to_str().unwrap(),
    ]);
    assert!(
        sens.contains("/etc") && sens.contains("/root/.ssh"),
        "{sens}"
    );
    fails(&["playbook", "nope"], &["no playbook query \"nope\""]);
}

#[test]
fn writes_and_escapes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    let c = cap.to_str().unwrap();
    for sql in [
        "COPY events TO '/tmp/fantrace-copy.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "INSERT INTO events SELECT * FROM events",
        "SET datafusion.execution.batch_size = 1",
        "CREATE TABLE t AS SELECT 1",
    ] {
        fails(&["query", "-c", c, sql], &["not supported"]);
    }
    fails(
        &["query", "-c", c, "SELECT * FROM '/etc/passwd'"],
        &["/etc/passwd", "not found"],
    );
    assert!(!Path::new("/tmp/fantrace-copy.csv").exists());
}

#[test]
fn memory_limit_turns_a_runaway_query_into_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    fails(
        &[
            "--memory-limit",
            "64M",
            "query",
            "-c",
            cap.to_str().unwrap(),
            "SELECT array_agg(v) FROM generate_series(1, 100000000) AS t(v)",
        ],
        &["Resources exhausted"],
    );
}

#[test]
fn every_bad_input_is_one_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = d.join("good.parquet");
    write_segment(&good, "1", 0);
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.parquet", vec![], "not a Parquet file"),
        (
            "truncated.parquet",
            bytes[..bytes.len() - 20].to_vec(),
            "not a Parquet file",
        ),
        (
            "random.parquet",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            "not a Parquet file",
        ),
        (
            "renamed.parquet",
            b"pid,comm\n1,x\n2,y\n".to_vec(),
            "not a Parquet file",
        ),
    ];
    for (name, content, reason) in &cases {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        fails(
            &["query", "-c", p.to_str().unwrap(), "SELECT 1"],
            &[name, reason],
        );
    }
    // A Parquet file of another schema.
    let other = d.join("other.parquet");
    {
        use arrow::array::Int32Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema =
            std::sync::Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let batch = arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(Int32Array::from(vec![1]))],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&other).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    fails(
        &["query", "-c", other.to_str().unwrap(), "SELECT 1"],
        &["other.parquet", "not a fantrace capture segment"],
    );
    let newer = d.join("newer.parquet");
    write_segment(&newer, "99", 0);
    fails(
        &["query", "-c", newer.to_str().unwrap(), "SELECT 1"],
        &["newer.parquet", "schema version 99", "upgrade"],
    );
    fails(
        &[
            "query",
            "-c",
            d.join("missing").to_str().unwrap(),
            "SELECT 1",
        ],
        &["missing", "No such file"],
    );
    let empty_dir = d.join("emptydir");
    std::fs::create_dir(&empty_dir).unwrap();
    fails(
        &["query", "-c", empty_dir.to_str().unwrap(), "SELECT 1"],
        &["emptydir", "no capture segments"],
    );
    fails(
        &["query", "-c", good.to_str().unwrap(), "SELEC 1"],
        &["SELEC"],
    );
    fails(
        &[
            "query",
            "-c",
            &format!("{}/nomatch*.parquet", d.display()),
            "SELECT 1",
        ],
        &["no file matches"],
    );

    // --skip-bad: the good segment is read, every bad one reported.
    let out = analyzer(&[
        "query",
        "--skip-bad",
        "-c",
        &format!("{}/*.parquet", d.display()),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM events",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n5\n");
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["empty", "truncated", "random", "renamed", "other", "newer"] {
        assert!(
            err.contains(&format!(
                "skipped: {}",
                d.join(format!("{name}.parquet")).display()
            )),
            "{name}: {err}"
        );
    }
}

#[test]
fn losses_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("lossy.parquet");
    write_segment(&p, "1", 42);
    let out = analyzer(&[
        "query",
        "-c",
        p.to_str().unwrap(),
        "SELECT count(*) FROM events",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not deliver 42 call(s)"));
}

#[test]
fn shell_runs_statements_and_backslash_commands_and_keeps_history() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = capture(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_fantrace-analyzer"))
        .args(["shell", "-c", cap.to_str().unwrap()])
        .env("HOME", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n\n  FROM events;\n\\dt\n\\d inits\nSELEC 1;\n\\df\nSELECT max(pid) AS m FROM events;\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| 5 |"),
        "multi-line statement ran: {stdout}"
    );
    assert!(
        stdout.contains("| inits ") && stdout.contains("| stats "),
        "\\dt: {stdout}"
    );
    assert!(stdout.contains("| class "), "\\d inits: {stdout}");
    assert!(
        stdout.contains("has_mask(mask UINT64, name TEXT)"),
        "\\df: {stdout}"
    );
    assert!(
        stdout.contains("| 200 |"),
        "the shell goes on after an error: {stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SELEC"));
    let history = std::fs::read_to_string(tmp.path().join(".fantrace_history")).unwrap();
    assert!(
        history.contains("SELECT max(pid) AS m FROM events;"),
        "{history}"
    );
}

/// A segment of the current version holding one call at T0 + `k` s, its time range recorded
/// as the recorder records it.
fn write_one_call_segment(path: &Path, k: u64) {
    let r = Row {
        i: k * 1000,
        pid: 100 + k as u32,
        comm: "watcher",
        flags: 0x1,
        mask: 0x20,
        ret: 0,
        path: b"/etc",
        status: PathStatus::Ok,
    };
    let mut b = EventBuilder::with_capacity(1, 64, Default::default());
    b.append(
        &event(&r),
        r.path,
        T0,
        &ProcessInfo::default(),
        &Default::default(),
    );
    let batch = b.finish().unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    let rfc3339 = fantrace_engine::timespec::rfc3339(T0 + k as i64 * 1_000_000_000);
    for (key, v) in [
        (
            keys::SCHEMA_VERSION,
            keys::CURRENT_SCHEMA_VERSION.to_string(),
        ),
        (keys::HOSTNAME, "testhost".to_string()),
        (keys::EVENTS_WRITTEN, "1".to_string()),
        (keys::EVENTS_LOST, "0".to_string()),
        (keys::TIME_MIN, rfc3339.clone()),
        (keys::TIME_MAX, rfc3339),
    ] {
        w.append_key_value_metadata(KeyValue::new(key.to_string(), v));
    }
    w.close().unwrap();
}

/// A capture of `segments` one-call segments a second apart, indexed as the recorder indexes
/// them or not.
fn one_call_capture(segments: u64, indexed: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("capture");
    std::fs::create_dir(&cap).unwrap();
    for k in 0..segments {
        let path = cap.join(format!("fantrace-{k:06}.parquet"));
        write_one_call_segment(&path, k);
        if indexed {
            fantrace_schema::index::add(&path).unwrap();
        }
    }
    (dir, cap)
}

/// `query --timing --format csv` over `cap`, started by `sh` after `before` (a `ulimit`).
fn timed_query(cap: &Path, sql: &str, before: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{before}exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_fantrace-analyzer"))
        .args(["query", "--timing", "--format", "csv", "-c"])
        .arg(cap)
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Thousands of segments under a small open-file limit: every one is counted, and a time
/// window opens only the segments whose recorded range meets it. (DataFusion's listing opened
/// every file at once: 5,000 segments failed with "Too many open files" under 1024.)
#[test]
fn many_segments_under_a_small_open_file_limit_and_windows_prune() {
    const SEGMENTS: u64 = 1500;
    let (_dir, cap) = one_call_capture(SEGMENTS, false);
    let limited = |sql: &str| timed_query(&cap, sql, "ulimit -n 128 && ");
    let all = limited("SELECT count(*) AS n FROM events");
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert!(all.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&all.stdout),
        format!("n\n{SEGMENTS}\n")
    );
    assert!(stderr.contains("0 pruned"), "{stderr}");
    // So many segments are read a chunk at a time, the filter still handed to each chunk.
    let one = limited("SELECT count(*) AS n FROM events WHERE pid = 105");
    assert_eq!(String::from_utf8_lossy(&one.stdout), "n\n1\n");
    let plan = limited("EXPLAIN SELECT count(*) AS n FROM events WHERE pid = 105");
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains(&format!("ChunkedScan: {SEGMENTS} segment(s)")) && plan.contains("pid@"),
        "{plan}"
    );
    // Ten seconds: ten segments read, the rest never opened.
    let from = fantrace_engine::timespec::rfc3339(T0 + 100_000_000_000);
    let to = fantrace_engine::timespec::rfc3339(T0 + 109_000_000_000);
    let window = limited(&format!(
        "SELECT count(*) AS n FROM events WHERE time BETWEEN '{from}' AND '{to}'"
    ));
    let stderr = String::from_utf8_lossy(&window.stderr);
    assert!(window.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&window.stdout), "n\n10\n");
    assert!(
        stderr.contains(&format!("{} pruned", SEGMENTS - 10)),
        "{stderr}"
    );
}

/// With the index the recorder keeps beside its segments, a window never opens the segments
/// it prunes (a damaged one out of the window goes unnoticed; without the index it failed the
/// query), a segment changed since its line was written is opened and checked, one replaced
/// under the same name is read by its footer, and `stats` still shows every key.
#[test]
fn the_capture_index_prunes_without_opening_and_is_checked_against_each_file() {
    let (_dir, cap) = one_call_capture(50, true);
    let name = |k: u64| cap.join(format!("fantrace-{k:06}.parquet"));
    let query = |sql: &str| timed_query(&cap, sql, "");
    let window = |from: u64, to: u64| {
        format!(
            "SELECT count(*) AS n, min(pid) AS pid FROM events WHERE time BETWEEN '{}' AND '{}'",
            fantrace_engine::timespec::rfc3339(T0 + from as i64 * 1_000_000_000),
            fantrace_engine::timespec::rfc3339(T0 + to as i64 * 1_000_000_000),
        )
    };
    // Damaged in place (same inode), outside the window: never opened.
    std::fs::write(name(5), b"not parquet any more").unwrap();
    let out = query(&window(30, 34));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n,pid\n5,130\n");
    // The same window as --since/--until: every table holds only its calls, and the
    // segments outside it are left out before the session opens.
    let at = |k: i64| fantrace_engine::timespec::rfc3339(T0 + k * 1_000_000_000);
    let out = Command::new(env!("CARGO_BIN_EXE_fantrace-analyzer"))
        .args(["query", "--timing", "--format", "csv", "-c"])
        .arg(&cap)
        .args(["--since", &at(30), "--until", &at(35)])
        .arg("SELECT count(*) AS n, min(pid) AS pid FROM calls")
        .output()
        .unwrap();
    let windowed = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{windowed}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n,pid\n5,130\n");
    assert!(
        windowed.contains("45 segment(s) outside --since/--until left out (45 known from an index"),
        "{windowed}"
    );
    assert!(
        stderr.contains(
            "45 pruned by their recorded time range before opening (45 known from \
                         the capture's index, never opened), 5 read"
        ),
        "{stderr}"
    );
    // Read by a full count: it no longer matches its line, is opened, and fails by name.
    let out = query("SELECT count(*) FROM events");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fantrace-000005.parquet") && stderr.contains("not a Parquet file"),
        "{stderr}"
    );
    std::fs::remove_file(name(5)).unwrap();
    // Replaced under the same name (a new file: another inode) by a segment of another time:
    // its stale line is not trusted, its footer is.
    let tmp = cap.join("replacement.tmp");
    write_one_call_segment(&tmp, 200);
    std::fs::rename(&tmp, name(20)).unwrap();
    let out = query(&window(200, 200));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n,pid\n1,300\n");
    let out = query(&window(20, 20));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n,pid\n0,\n");
    // The stats table reads what the index does not keep from the footers.
    let out =
        query("SELECT count(*) AS n, min(hostname) AS h, min(schema_version) AS v FROM stats");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n,h,v\n49,testhost,{}\n", keys::CURRENT_SCHEMA_VERSION)
    );
}

/// A footer changed to point one column at another column's pages reads sealed data as the
/// wrong column: the seal covers the data and the metadata keys, not the footer's offsets. Found
/// by the fuzz test (the `object` column's dictionary offset set to `resolved_path`'s chunk);
/// --verify-data and `verify` now check that the column chunks tile the sealed data exactly.
#[test]
fn a_footer_pointing_a_column_at_another_columns_pages_is_refused() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redirected-column.parquet");
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("fantrace-redirected.parquet");
    std::fs::copy(&fixture, &segment).unwrap();
    let segment = segment.to_str().unwrap();
    fails(
        &[
            "--no-stats",
            "query",
            "--verify-data",
            "-c",
            segment,
            "SELECT count(*) FROM calls",
        ],
        &[
            "fantrace-redirected.parquet",
            "footer does not describe its sealed data",
            "column object",
        ],
    );
    let out = analyzer(&["verify", "-c", segment]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("its footer was changed after it was written: column object"),
        "{text}"
    );
}
