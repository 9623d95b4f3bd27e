//! The fleet: recorders shipping segments to a real S3-compatible server (Garage, on
//! loopback), the analyzer reading them back there, and a Ballista cluster of
//! `fantrace-cluster` nodes answering the same queries as the analyzer does alone.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fantrace_tests::cluster::Cluster;
use fantrace_tests::harness::{PausedWorkload, Recorder, bin, require_probe};
use fantrace_tests::object_store_server::{BUCKET, Garage, garage_binary};

/// Runs the analyzer with the S3 server's credentials; returns stdout, failing on error.
fn analyzer_on(garage: &Garage, args: &[&str]) -> String {
    let out = Command::new(bin("fantrace-analyzer"))
        .args(args)
        .envs(garage.client_env())
        .output()
        .expect("running fantrace-analyzer");
    assert!(
        out.status.success(),
        "fantrace-analyzer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_rows(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("the analyzer prints JSON lines"))
        .collect()
}

fn local_segments(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("listing the capture directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fantrace-") && n.ends_with(".parquet"))
        .collect()
}

/// `fantrace-recorder --output dir --upload url --upload-only` with the server's credentials,
/// failing on error.
fn upload_only(garage: &Garage, dir: &Path, url: &str) {
    let out = Command::new(bin("fantrace-recorder"))
        .arg("--output")
        .arg(dir)
        .args(["--upload", url, "--upload-only"])
        .envs(garage.client_env())
        .output()
        .expect("running fantrace-recorder --upload-only");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A storm of failing calls from one process; returns its pid and how many calls it made.
fn storm(calls: u64, rounds: u64) -> (u64, u64) {
    let w = PausedWorkload::start(&[
        "--storm",
        &calls.to_string(),
        "--rounds",
        &rounds.to_string(),
        "--round-pause-ms",
        "50",
    ]);
    let pid = u64::from(w.pid);
    let made = w.go()["calls"]
        .as_u64()
        .expect("the storm says how many calls it made");
    (pid, made)
}

#[test]
fn uploads_survive_a_store_outage_without_losing_a_row() {
    let test = "uploads_survive_a_store_outage_without_losing_a_row";
    if !require_probe(test) {
        return;
    }
    let Some(garage_bin) = garage_binary(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut garage = Garage::start(&garage_bin, &tmp.path().join("garage"));
    let capture = tmp.path().join("capture");
    let url = format!("s3://{BUCKET}/outage/");
    // Storm threads are called storm-N; other tests' storms are told apart by pid.
    let rec = Recorder::start_with_env(
        &capture,
        &[
            "--comm",
            "storm-0",
            "--rotate-interval",
            "0.3",
            "--upload",
            &url,
            "--upload-patience",
            "60",
        ],
        &garage.client_env(),
    );
    let mut storms = vec![storm(2_000, 10)];
    // The store goes away while segments are being shipped (one every 0.3 s)...
    garage.kill();
    storms.push(storm(2_000, 10));
    std::thread::sleep(Duration::from_secs(2));
    let waiting = local_segments(&capture);
    assert!(
        waiting.len() >= 3,
        "with the store down, finished segments must wait locally; found {waiting:?}"
    );
    // ...and comes back: the backlog drains, and what is recorded meanwhile goes up too.
    garage.restart(&garage_bin);
    storms.push(storm(2_000, 10));
    let calls: u64 = storms.iter().map(|(_, n)| n).sum();
    let pids: Vec<String> = storms.iter().map(|(pid, _)| pid.to_string()).collect();
    let out = rec.stop();
    assert!(
        out.contains("uploaded"),
        "the recorder reports its uploads: {out}"
    );
    assert_eq!(
        local_segments(&capture),
        Vec::<String>::new(),
        "every segment is removed locally once uploaded"
    );
    let rows = json_rows(&analyzer_on(
        &garage,
        &[
            "query",
            "-c",
            &url,
            "--verify-data",
            "--format",
            "json",
            &format!(
                "SELECT count(*) AS n FROM events WHERE pid IN ({})",
                pids.join(", ")
            ),
        ],
    ));
    assert_eq!(
        rows[0]["n"].as_u64(),
        Some(calls),
        "every call recorded is in the bucket, none twice"
    );
    let stats = json_rows(&analyzer_on(
        &garage,
        &[
            "query",
            "-c",
            &url,
            "--format",
            "json",
            "SELECT segment, upload_backlog_segments AS backlog, events_lost FROM stats",
        ],
    ));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let day = format!("host={}/date=", hostname.trim());
    for s in &stats {
        let segment = s["segment"].as_str().expect("segment URL");
        assert!(segment.contains(&day), "Hive-partitioned key: {segment}");
        assert_eq!(s["events_lost"].as_u64(), Some(0), "{segment} lost calls");
    }
    let max_backlog = stats
        .iter()
        .filter_map(|s| s["backlog"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        max_backlog >= 2,
        "segments sealed during the outage record the backlog; saw at most {max_backlog}"
    );
}

#[test]
fn refused_credentials_and_keep_never_cost_a_segment() {
    let test = "refused_credentials_and_keep_never_cost_a_segment";
    if !require_probe(test) {
        return;
    }
    let Some(garage_bin) = garage_binary(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let garage = Garage::start(&garage_bin, &tmp.path().join("garage"));
    let capture = tmp.path().join("capture");
    let url = format!("s3://{BUCKET}/refused/");
    // The right key id with a wrong secret: the store refuses every request.
    let refused: Vec<(&'static str, String)> = garage
        .client_env()
        .into_iter()
        .map(|(k, v)| match k {
            "AWS_SECRET_ACCESS_KEY" => (k, "f".repeat(64)),
            _ => (k, v),
        })
        .collect();
    let rec = Recorder::start_with_env(
        &capture,
        &[
            "--comm",
            "storm-0",
            "--rotate-interval",
            "0.3",
            "--keep",
            "1",
            "--upload",
            &url,
            "--upload-patience",
            "1",
        ],
        &refused,
    );
    let (pid, calls) = storm(2_000, 10);
    std::thread::sleep(Duration::from_secs(1));
    let out = rec.stop();
    let waiting = local_segments(&capture);
    assert!(
        waiting.len() > 1,
        "--keep 1 must not remove segments the store refused: {waiting:?}"
    );
    assert!(
        out.contains("wait in"),
        "the recorder says what waits: {out}"
    );
    // With the right credentials, --upload-only ships the backlog and leaves nothing.
    upload_only(&garage, &capture, &url);
    assert_eq!(local_segments(&capture), Vec::<String>::new());
    let rows = json_rows(&analyzer_on(
        &garage,
        &[
            "query",
            "-c",
            &url,
            "--format",
            "json",
            &format!("SELECT count(*) AS n FROM events WHERE pid = {pid}"),
        ],
    ));
    assert_eq!(
        rows[0]["n"].as_u64(),
        Some(calls),
        "no call lost to the refusal"
    );
}

/// Answers as sets of lines: the cluster returns rows in whatever order its partitions finish
/// unless the query orders them, and a `LIMIT` after an `ORDER BY` with ties may pick other
/// rows of equal rank; the queries here order by every column they limit on.
fn answer(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

#[test]
fn a_cluster_answers_as_the_analyzer_does_over_a_bucket() {
    let test = "a_cluster_answers_as_the_analyzer_does_over_a_bucket";
    let Some(garage_bin) = garage_binary(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let garage = Garage::start(&garage_bin, &tmp.path().join("garage"));
    // A fleet of three hosts, 300,000 calls in 15 segments, shipped as the recorders would.
    let local = tmp.path().join("synthetic");
    synth(
        &local,
        &[
            "--events",
            "300000",
            "--segment-rows",
            "20000",
            "--hosts",
            "3",
        ],
    );
    let expected_local = answer(&analyzer_on(
        &garage,
        &[
            "query",
            "-c",
            &local.to_string_lossy(),
            "--format",
            "csv",
            "SELECT count(*) FROM events",
        ],
    ));
    let url = format!("s3://{BUCKET}/fleet/");
    upload_only(&garage, &local, &url);
    // Read back from the bucket: the same rows, and the Hive layout narrows by host.
    assert_eq!(
        answer(&analyzer_on(
            &garage,
            &[
                "query",
                "-c",
                &url,
                "--format",
                "csv",
                "SELECT count(*) FROM events"
            ],
        )),
        expected_local
    );
    let hosts = json_rows(&analyzer_on(
        &garage,
        &[
            "query",
            "-c",
            &format!("s3://{BUCKET}/fleet/host=*/date=*/"),
            "--format",
            "json",
            "SELECT count(DISTINCT host) AS hosts FROM events",
        ],
    ));
    assert_eq!(hosts[0]["hosts"].as_u64(), Some(3));
    // Every object's data against its seal, read through the store.
    assert_eq!(
        answer(&analyzer_on(
            &garage,
            &[
                "query",
                "-c",
                &url,
                "--verify-data",
                "--no-stats",
                "--format",
                "csv",
                "SELECT count(*) FROM events"
            ],
        )),
        expected_local
    );
    let inspected = analyzer_on(&garage, &["inspect", "-c", &url]);
    assert!(inspected.contains("synthetic-0002"), "{inspected}");

    let cluster = Cluster::start(
        &bin("fantrace-cluster"),
        2,
        2,
        &garage.client_env(),
        &tmp.path().join("cluster"),
    );
    // Every statement twice, by the analyzer alone and on the cluster: the benchmark's five
    // forensic queries, and every playbook query.
    let mut runs: Vec<(String, Vec<String>)> = fantrace_tests::forensic::forensic()
        .into_iter()
        .map(|q| {
            let args = ["query", "-c", &url, "--format", "csv", &q.sql];
            (
                q.name.to_string(),
                args.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    let listing = analyzer_on(&garage, &["playbook"]);
    for name in listing
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
    {
        let args = ["playbook", name, "-c", &url, "--format", "csv"];
        runs.push((
            format!("playbook {name}"),
            args.iter().map(|a| a.to_string()).collect(),
        ));
    }
    assert!(runs.len() >= 12, "five queries and the playbook: {runs:?}");
    let cluster_url = cluster.url();
    for (name, args) in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let local = analyzer_on(&garage, &args);
        let on_cluster: Vec<&str> = ["--cluster", cluster_url.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let distributed = analyzer_on(&garage, &on_cluster);
        assert_eq!(
            answer(&distributed),
            answer(&local),
            "the cluster's answer to {name} differs from the analyzer's"
        );
    }
    // A scan of the 15 segments is a stage of several tasks, and both executors take some
    // (the scheduler packed a stage's partitions into one task before).
    let before = cluster.tasks_run();
    let count = [
        "query",
        "-c",
        &url,
        "--format",
        "csv",
        "SELECT count(*) FROM events",
    ];
    let on_cluster = [&["--cluster", cluster_url.as_str()][..], &count[..]].concat();
    assert_eq!(
        answer(&analyzer_on(&garage, &on_cluster)),
        answer(&analyzer_on(&garage, &count))
    );
    let ran: Vec<usize> = cluster
        .tasks_run()
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    assert!(
        ran.iter().sum::<usize>() >= 15 && ran.iter().all(|n| *n > 0),
        "tasks run by each executor for one count over 15 segments: {ran:?}"
    );
    // The same window alone and on the cluster: the segments outside it are left out before
    // the plan is sent.
    let windowed = [
        "query",
        "-c",
        &url,
        "--since",
        "2026-11-01T06:00:00Z",
        "--until",
        "2026-11-01T07:00:00Z",
        "--format",
        "csv",
        "SELECT count(*), min(time), max(time) FROM calls",
    ];
    let on_cluster = [&["--cluster", cluster_url.as_str()][..], &windowed[..]].concat();
    assert_eq!(
        answer(&analyzer_on(&garage, &on_cluster)),
        answer(&analyzer_on(&garage, &windowed))
    );
}

/// `fantrace-bench synth` into `dir`, failing on error.
fn synth(dir: &Path, args: &[&str]) {
    let out = Command::new(bin("fantrace-bench"))
        .arg("synth")
        .args(args)
        .arg("--output")
        .arg(dir)
        .output()
        .expect("running fantrace-bench synth");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_hour_of_a_year_in_a_bucket_lists_only_its_days() {
    let test = "an_hour_of_a_year_in_a_bucket_lists_only_its_days";
    let Some(garage_bin) = garage_binary(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let garage = Garage::start(&garage_bin, &tmp.path().join("garage"));
    // A year of one host, shipped as its recorder would: a segment a day, and one day at the
    // default rotation of a segment a minute (1,440 segments that day).
    let year = tmp.path().join("year");
    synth(
        &year,
        &[
            "--events",
            "3650",
            "--span",
            "365d",
            "--rotate",
            "1d",
            "--start",
            "2026-11-01",
        ],
    );
    let busy = tmp.path().join("busy-day");
    synth(
        &busy,
        &[
            "--events",
            "14400",
            "--span",
            "1d",
            "--rotate",
            "1m",
            "--start",
            "2027-03-01",
        ],
    );
    let window = [
        "--since",
        "2027-03-01T12:00:00Z",
        "--until",
        "2027-03-01T13:00:00Z",
    ];
    let sql = "SELECT count(*) AS calls, min(time) AS first, max(time) AS last FROM calls";
    let local = answer(&analyzer_on(
        &garage,
        &[
            &[
                "query",
                "-c",
                &year.to_string_lossy(),
                "-c",
                &busy.to_string_lossy(),
            ],
            &window[..],
            &["--format", "csv", sql],
        ]
        .concat(),
    ));
    let url = format!("s3://{BUCKET}/year/");
    upload_only(&garage, &year, &url);
    upload_only(&garage, &busy, &url);

    let before = garage.s3_requests();
    let out = Command::new(bin("fantrace-analyzer"))
        .args(["query", "-c", &url, "--timing", "--format", "csv"])
        .args(window)
        .arg(sql)
        .envs(garage.client_env())
        .output()
        .expect("running fantrace-analyzer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let after = garage.s3_requests();
    let made: std::collections::BTreeMap<&str, u64> = after
        .iter()
        .map(|(k, v)| (k.as_str(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    eprintln!("{test}: requests for one hour of a year: {made:?}\n{stderr}");
    // The same calls as the local capture gives.
    assert_eq!(answer(&String::from_utf8_lossy(&out.stdout)), local);
    // Three of 365 days listed: the hour's day and one on each side.
    assert!(
        stderr.contains("3 date= folder(s) listed"),
        "the window's days are listed, no others: {stderr}"
    );
    // Listing: the host, its days, and three folders of at most two pages each.
    let lists = made.get("LIST").copied().unwrap_or(0);
    assert!(lists <= 2 + 6, "{lists} listings: {made:?}");
    // Reading: the three days' index chunks (26), then the 61 segments with calls in the
    // hour (its 60 minutes and the busy day's daily segment), a few requests each; never a
    // footer per listed segment (1,442 in those days).
    let total: u64 = made.values().sum();
    assert!(total <= 8 + 26 + 61 * 5, "{total} requests: {made:?}");
}
