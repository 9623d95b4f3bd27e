//! The HTML report in a real browser: a capture of the scenario workload, the mark lifecycle
//! (permission and wide marks, failures, group owners exiting) and a group still watching when
//! the recording ends is turned into a report (whose marks at the end are all known), which headless Chromium opens with every network name unresolvable. The page must
//! log no console error, show the expected sections, fetch nothing, and render: a screenshot
//! is taken (kept in the target directory as `report-screenshot.png`).
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fantrace_tests::harness::{
    Recorder, analyzer, in_ci, require_probe, run_bounded, run_workload,
};
use fantrace_tests::lifecycle;

/// Chromium, or `None` (a failure under CI) when it is not installed.
fn chromium() -> Option<&'static str> {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("chromium");
    }
    assert!(
        !in_ci(),
        "chromium is missing: ./fantrace.sh test installs Debian's chromium package"
    );
    eprintln!("skipping the browser test: chromium is not installed");
    None
}

/// Opens `page` headless: its DOM after load, what it logged to the console, and a
/// screenshot into `shot`.
fn open(browser: &str, page: &Path, profile: &Path, shot: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}", page.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Any fetch the page tried would fail, and say so in the console.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,1800",
    ];
    let run = |extra: &[String]| {
        let out = run_bounded(
            Command::new(browser)
                .args(common)
                .arg(format!("--user-data-dir={}", profile.display()))
                .args(extra)
                .arg(&url),
            Duration::from_secs(120),
        );
        assert_eq!(out.code, Some(0), "chromium failed: {}", out.stderr);
        out
    };
    let dom = run(&["--dump-dom".to_string()]);
    run(&[format!("--screenshot={}", shot.display())]);
    let console: Vec<String> = dom
        .stderr
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(str::to_string)
        .collect();
    (dom.stdout, console)
}

#[test]
fn the_report_opens_in_a_browser_without_errors_and_shows_its_sections() {
    if !require_probe("the_report_opens_in_a_browser_without_errors_and_shows_its_sections") {
        return;
    }
    let Some(browser) = chromium() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("capture");
    let rec = Recorder::start(&capture, &[]);
    run_workload(&["--linger-ms", "200"]);
    lifecycle::run_workload(&tmp.path().join("watched"));
    // A group still watching when the recording ends: its marks are in force at the end.
    let watching = tmp.path().join("still-watched");
    std::fs::create_dir_all(watching.join("sub")).unwrap();
    let mut holder = std::process::Command::new(fantrace_tests::harness::bin("fantrace-workload"))
        .args(["--early-group", "--dir"])
        .arg(&watching)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder_out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut holder_out, &mut line).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let summary = rec.stop();
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert!(summary.contains("0 lost"), "recorder summary: {summary}");

    let page = tmp.path().join("report.html");
    // A budget no table can miss: this test is about what the page shows, and under the whole
    // suite's load the default 6 s, shared among the tables, once left the marks out.
    let out = analyzer(&[
        "report",
        "-c",
        &capture.to_string_lossy(),
        "-o",
        &page.to_string_lossy(),
        "--budget",
        "120",
    ]);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for outside in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(
            !html.contains(outside),
            "the report must be self-contained, but has {outside:?}"
        );
    }

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let (dom, console) = open(browser, &page, &tmp.path().join("profile"), &shot);
    assert_eq!(console, Vec::<String>::new(), "console messages");
    for expected in [
        "id=\"summary\"",
        "id=\"timeline\"",
        "<svg",
        // The lifecycle's marks all ended with their groups; the one group still watching
        // is listed, as the kernel had it.
        "id=\"marks-at-end\"",
        "still-watched",
        "data-name=\"permission-marks\"",
        "data-name=\"permission-groups\"",
        "data-name=\"wide-marks\"",
        "data-name=\"failed-marks\"",
        "FAN_OPEN_PERM",
        "fantrace-wl",
    ] {
        assert!(dom.contains(expected), "the page lacks {expected}: {}", {
            // What the page says of the marks in force, to tell a table left out from an
            // empty one.
            let at = dom.find("Marks in force at the end").unwrap_or(0);
            dom.get(at..(at + 3000).min(dom.len())).unwrap_or("")
        });
    }
    assert!(
        !dom.contains("<tr class=\"unknown\">"),
        "every mark's state is known: the report lists no unknown mark"
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    // A blank page compresses to a few KiB; the rendered report does not.
    assert!(png.len() > 40_000, "a screenshot of {} bytes", png.len());
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());

    // The console check can fail: a page that logs an error is caught.
    let broken = tmp.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let (_, console) = open(
        browser,
        &broken,
        &tmp.path().join("profile2"),
        &tmp.path().join("broken.png"),
    );
    assert!(
        console.iter().any(|l| l.contains("boom")),
        "console errors are seen: {console:?}"
    );
}
