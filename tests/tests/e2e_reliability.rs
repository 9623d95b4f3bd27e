//! The analyzer against hostile and damaged files, on the optimized build (memory and stack
//! depth are judged there): memory stays within bounds, damage is an error naming the file,
//! never a crash, a hang or a silently different answer when the user asked for checking.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fantrace_tests::harness::{
    Bounded, record_one_segment, release_bin, require_probe, run_bounded, sealed_data_bytes,
};

/// Peak resident memory any query may reach under `--memory-limit 100M` (the issue's target).
const PEAK_RSS_KIB: u64 = 300 * 1024;

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn analyzer(args: &[&str], timeout: Duration) -> Bounded {
    run_bounded(
        Command::new(release_bin("fantrace-analyzer")).args(args),
        timeout,
    )
}

fn python(script: &str, args: &[&str]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (./fantrace.sh test installs pyarrow)");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rewrites a real segment as `rows` rows whose `pathname` is `bytes` bytes each, without
/// dictionary encoding and zstd-compressed (tiny on disk, huge decoded), and without the seal
/// (a segment from a tool that does not seal, or an older recorder).
const HUGE_ROWS: &str = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
src, dst, rows, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = pq.read_table(src)
meta = {k: v for k, v in (t.schema.metadata or {}).items()
        if k not in (b'ARROW:schema', b'fantrace.metadata_sha256', b'fantrace.data_sha256',
                     b'fantrace.data_bytes', b'fantrace.signature')}
row = t.slice(0, 1)
t = pa.concat_tables([row] * rows)
i = t.schema.get_field_index('pathname')
big = pa.array(['a' * size] * rows).cast(t.schema.field('pathname').type)
t = t.set_column(i, t.schema.field('pathname'), big).replace_schema_metadata(meta)
pq.write_table(t, dst, use_dictionary=False, compression='zstd', row_group_size=rows)
"#;

#[test]
fn rows_that_decode_past_the_memory_limit_are_refused_within_it() {
    if !require_probe("rows_that_decode_past_the_memory_limit_are_refused_within_it") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    let hostile = tmp.path().join("hostile");
    std::fs::create_dir(&hostile).unwrap();
    let first = hostile.join("big-0.parquet");
    python(HUGE_ROWS, &[&s(&real), &s(&first), "8", "200000000"]);
    let size = std::fs::metadata(&first).unwrap().len();
    assert!(
        size < 1 << 20,
        "the hostile file is small on disk: {size} bytes"
    );
    for i in 1..6 {
        std::fs::copy(&first, hostile.join(format!("big-{i}.parquet"))).unwrap();
    }
    let one = analyzer(
        &[
            "--memory-limit",
            "100M",
            "query",
            "-c",
            &s(&first),
            "SELECT count(*), sum(length(pathname)) FROM events",
        ],
        Duration::from_secs(60),
    );
    assert!(!one.crashed() && !one.timed_out, "{one:?}");
    assert_eq!(one.code, Some(1), "refused: {one:?}");
    assert!(
        one.stderr.contains("big-0.parquet") && one.stderr.contains("--memory-limit"),
        "the error names the file and the limit: {}",
        one.stderr
    );
    assert!(
        one.peak_rss_kib <= PEAK_RSS_KIB,
        "peak {} KiB",
        one.peak_rss_kib
    );
    eprintln!("one hostile file refused: peak {} KiB", one.peak_rss_kib);
    // Six of them beside a real segment, with --skip-bad: the real rows are answered.
    std::fs::copy(&real, hostile.join("real.parquet")).unwrap();
    let all = analyzer(
        &[
            "--memory-limit",
            "100M",
            "query",
            "--skip-bad",
            "-c",
            &s(&hostile),
            "--format",
            "csv",
            "SELECT count(*) AS n FROM (SELECT * FROM events ORDER BY pathname DESC LIMIT 1)",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(all.code, Some(0), "{all:?}");
    assert!(all.stdout.contains("\n1"), "{}", all.stdout);
    assert_eq!(all.stderr.matches("skipped:").count(), 6, "{}", all.stderr);
    assert!(
        all.peak_rss_kib <= PEAK_RSS_KIB,
        "peak {} KiB",
        all.peak_rss_kib
    );
    eprintln!(
        "six hostile files skipped, the real one answered: peak {} KiB",
        all.peak_rss_kib
    );
}

#[test]
fn functions_that_grow_their_result_are_refused_within_the_memory_limit() {
    if !require_probe("functions_that_grow_their_result_are_refused_within_the_memory_limit") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    for sql in [
        "SELECT sum(length(repeat('x', 1000000000))) FROM generate_series(1, 3)",
        "SELECT sum(length(lpad(pathname, 300000000))) FROM events",
        "SELECT sum(cardinality(range(1, 100000000))) FROM events",
    ] {
        let run = analyzer(
            &["--memory-limit", "100M", "query", "-c", &s(&real), sql],
            Duration::from_secs(60),
        );
        assert!(!run.crashed() && !run.timed_out, "{sql}: {run:?}");
        assert_eq!(run.code, Some(1), "{sql}: refused: {run:?}");
        assert!(
            run.stderr.contains("--memory-limit"),
            "{sql}: {}",
            run.stderr
        );
        assert!(
            run.peak_rss_kib <= PEAK_RSS_KIB,
            "{sql}: peak {} KiB",
            run.peak_rss_kib
        );
        eprintln!("{sql}: refused, peak {} KiB", run.peak_rss_kib);
    }
}

#[test]
fn spill_files_are_the_analyzers_own_and_removed_even_after_a_kill() {
    if !require_probe("spill_files_are_the_analyzers_own_and_removed_even_after_a_kill") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    let tmpdir = tmp.path().join("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let base = tmpdir.join(format!("fantrace-analyzer-{uid}"));
    let spill_files = |base: &Path| -> u64 {
        fn walk(p: &Path, n: &mut u64) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, n);
                } else if !path.ends_with("owner.lock") {
                    *n += 1;
                }
            }
        }
        let mut n = 0;
        walk(base, &mut n);
        n
    };
    let mut child = Command::new(release_bin("fantrace-analyzer"))
        .env("TMPDIR", &tmpdir)
        .args(["--memory-limit", "40M", "query", "-c", &s(&real)])
        .arg(
            "SELECT k, count(*) FROM (SELECT value % 20000000 AS k FROM \
             generate_series(1, 200000000)) GROUP BY k ORDER BY k LIMIT 1",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while spill_files(&base) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the query never spilled under {}",
            base.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the query ended before spilling"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        spill_files(&base) > 0,
        "a killed query leaves its spill files"
    );
    let next = run_bounded(
        Command::new(release_bin("fantrace-analyzer"))
            .env("TMPDIR", &tmpdir)
            .args(["query", "-c", &s(&real), "SELECT count(*) FROM events"]),
        Duration::from_secs(60),
    );
    assert_eq!(next.code, Some(0), "{next:?}");
    assert_eq!(
        spill_files(&base),
        0,
        "the next run removed them, and its own"
    );
    assert_eq!(
        std::fs::read_dir(&base).unwrap().count(),
        0,
        "no directory is left behind"
    );
}

/// Where the base64 text of the footer's embedded Arrow schema lies in `bytes`.
fn arrow_schema_text(bytes: &[u8]) -> std::ops::Range<usize> {
    let key = b"ARROW:schema";
    let at = bytes
        .windows(key.len())
        .rposition(|w| w == key)
        .expect("the segment embeds its Arrow schema");
    // Thrift compact: the value follows as a varint length and the bytes.
    let mut i = at + key.len() + 1;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = bytes[i];
        len |= usize::from(b & 0x7f) << shift;
        i += 1;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    i..i + len
}

#[test]
fn a_damaged_embedded_schema_makes_a_bad_segment_not_a_crash() {
    if !require_probe("a_damaged_embedded_schema_makes_a_bad_segment_not_a_crash") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    let original = std::fs::read(&real).unwrap();
    let text = arrow_schema_text(&original);
    let dir = tmp.path().join("mutants");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&real, dir.join("a-real.parquet")).unwrap();
    let mutant = dir.join("b-mutant.parquet");
    let (mut bad, mut runs) = (0, 0);
    // Every 7th character, each replaced by two others: a few hundred damaged schemas.
    for at in text.clone().step_by(7) {
        for replacement in [b'A', b'/'] {
            if original[at] == replacement {
                continue;
            }
            let mut bytes = original.clone();
            bytes[at] = replacement;
            std::fs::write(&mutant, &bytes).unwrap();
            let run = analyzer(
                &["inspect", "--skip-bad", "-c", &s(&dir)],
                Duration::from_secs(30),
            );
            runs += 1;
            assert!(
                !run.crashed() && !run.timed_out,
                "schema byte {at} set to {replacement}: {run:?}"
            );
            assert_eq!(run.code, Some(0), "the real segment is still read: {run:?}");
            if run.stderr.contains("b-mutant.parquet") {
                bad += 1;
            }
        }
    }
    eprintln!("{runs} damaged schemas, {bad} reported as bad segments");
    assert!(bad > 0, "some damage must be noticed");
}

#[test]
fn a_fifo_named_like_a_segment_is_an_error_not_a_hang() {
    if !require_probe("a_fifo_named_like_a_segment_is_an_error_not_a_hang") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    let dir = real.parent().unwrap();
    let fifo = dir.join("x.parquet");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid path string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for command in ["query", "inspect"] {
        let mut args = vec![command, "-c", dir.to_str().unwrap()];
        if command == "query" {
            args.push("SELECT count(*) FROM events");
        }
        let run = analyzer(&args, Duration::from_secs(30));
        assert!(!run.timed_out, "{command} hangs on a FIFO");
        // `inspect` is for looking at damaged captures: it lists unreadable inputs and
        // succeeds; a query stops at one unless told to skip it.
        let (code, said) = match command {
            "inspect" => (0, &run.stdout),
            _ => (1, &run.stderr),
        };
        assert_eq!(run.code, Some(code), "{command}: {run:?}");
        assert!(
            said.contains("x.parquet") && said.contains("FIFO"),
            "{said}"
        );
        args.insert(1, "--skip-bad");
        let skipping = analyzer(&args, Duration::from_secs(30));
        assert_eq!(skipping.code, Some(0), "{command} --skip-bad: {skipping:?}");
    }
}

#[test]
fn a_where_of_thousands_of_or_terms_runs_on_the_release_build() {
    if !require_probe("a_where_of_thousands_of_or_terms_runs_on_the_release_build") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    let terms: Vec<String> = (0..3000).map(|i| format!("pid = {i}")).collect();
    let sql = format!("SELECT count(*) FROM events WHERE {}", terms.join(" OR "));
    let run = analyzer(&["query", "-c", &s(&real), &sql], Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn damage_the_seal_covers_is_refused_at_query_time() {
    if !require_probe("damage_the_seal_covers_is_refused_at_query_time") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = record_one_segment(tmp.path());
    let original = std::fs::read(&real).unwrap();
    // An edited footer value (the host name, same length): refused by every query.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim().as_bytes();
    let at = original
        .windows(host.len())
        .rposition(|w| w == host)
        .expect("the footer names the host");
    let mut edited = original.clone();
    edited[at] = if edited[at] == b'x' { b'y' } else { b'x' };
    let edited_path = tmp.path().join("edited.parquet");
    std::fs::write(&edited_path, &edited).unwrap();
    let run = analyzer(
        &[
            "query",
            "-c",
            &s(&edited_path),
            "SELECT count(*) FROM events",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("seal"), "{}", run.stderr);
    // A changed data byte: refused with --verify-data.
    let data_bytes = sealed_data_bytes(&real);
    let mut changed = original.clone();
    changed[data_bytes / 2] ^= 0x10;
    let changed_path = tmp.path().join("changed.parquet");
    std::fs::write(&changed_path, &changed).unwrap();
    let run = analyzer(
        &[
            "--no-stats",
            "query",
            "--verify-data",
            "-c",
            &s(&changed_path),
            "SELECT count(*) FROM events",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("changed.parquet") && run.stderr.contains("data does not match"),
        "{}",
        run.stderr
    );
}
