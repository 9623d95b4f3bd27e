//! The five forensic queries of the analyzer comparison, run by fantrace-analyzer and by
//! DuckDB over the same Parquet files. One SQL text serves both engines, so neither gets an
//! easier question; each answer is checked against the other's.
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Deserialize;

pub use fantrace_tests::forensic::{Query, forensic};

/// One engine's answer to one query: seconds of each run (the engine's own query timer:
/// opening the files, planning, executing and fetching, without process start-up), and a
/// digest of the result to compare engines by.
#[derive(Debug, Clone, Deserialize)]
pub struct Timing {
    pub seconds: Vec<f64>,
    /// fantrace only: the whole process of each run, start-up included.
    #[serde(default)]
    pub process_seconds: Vec<f64>,
    pub rows: usize,
    pub checksum: f64,
}

/// Runs `sql` with `fantrace-analyzer query --timing` `repeat` times (after one warm-up run).
pub fn analyzer(
    bin_dir: &Path,
    capture: &Path,
    sql: &str,
    repeat: usize,
) -> anyhow::Result<Timing> {
    let mut seconds = Vec::new();
    let mut process_seconds = Vec::new();
    let mut last = String::new();
    for i in 0..=repeat {
        let t = Instant::now();
        let (out, run_time) = analyzer_timed(bin_dir, capture, sql)?;
        last = out;
        if i > 0 {
            process_seconds.push(t.elapsed().as_secs_f64());
            seconds.push(run_time);
        }
    }
    let rows: Vec<&str> = last.lines().skip(1).filter(|l| !l.is_empty()).collect();
    let checksum = rows
        .iter()
        .filter_map(|l| l.rsplit(',').next()?.trim().parse::<f64>().ok())
        .sum();
    Ok(Timing {
        seconds,
        process_seconds,
        rows: rows.len(),
        checksum,
    })
}

/// `fantrace-analyzer query --format csv --capture capture sql`: its output, or its error.
pub fn analyzer_csv(bin_dir: &Path, capture: &Path, sql: &str) -> anyhow::Result<String> {
    Ok(run_analyzer(bin_dir, capture, sql, false)?.0)
}

/// The same with `--timing`: the output and the analyzer's own run time in seconds.
fn analyzer_timed(bin_dir: &Path, capture: &Path, sql: &str) -> anyhow::Result<(String, f64)> {
    let (out, stderr) = run_analyzer(bin_dir, capture, sql, true)?;
    let run_time = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Run Time: ")?
                .strip_suffix(" s")?
                .parse()
                .ok()
        })
        .with_context(|| format!("no run time in the analyzer's standard error: {stderr}"))?;
    Ok((out, run_time))
}

fn run_analyzer(
    bin_dir: &Path,
    capture: &Path,
    sql: &str,
    timing: bool,
) -> anyhow::Result<(String, String)> {
    let exe = bin_dir.join("fantrace-analyzer");
    let mut cmd = Command::new(&exe);
    cmd.args(["query", "--format", "csv", "--capture"])
        .arg(capture)
        .arg(sql);
    if timing {
        cmd.arg("--timing");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "fantrace-analyzer failed on {sql:?} over {}: {}",
            capture.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((
        String::from_utf8(out.stdout).context("analyzer output is not UTF-8")?,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Whether DuckDB's Python package can be imported here, and its version.
pub fn duckdb_version() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The derived `events` columns the queries use, as DuckDB SQL: fantrace-analyzer computes them
/// with its decoding functions, DuckDB with CASE expressions spelled out from the same
/// decoding (every value of the bits involved), so both engines derive them at query time.
fn duckdb_derived_columns() -> String {
    use fantrace_schema::decode::{mark_action, mark_type};
    use fantrace_schema::flags::MARK_TYPE_BITS;
    let case = |bits: u64, name: fn(u64) -> &'static str| -> String {
        let arms: String = (0..=bits)
            .filter(|v| v & !bits == 0)
            .map(|v| format!(" WHEN {v} THEN '{}'", name(v)))
            .collect();
        format!("CASE flags & {bits}{arms} END")
    };
    format!(
        "{} AS mark_type, {} AS mark_action",
        case(MARK_TYPE_BITS, mark_type),
        case(0x83, mark_action)
    )
}

/// Runs every query in one DuckDB process; see `duckdb_runner.py`.
pub fn duckdb(
    capture: &Path,
    queries: &[Query],
    repeat: usize,
) -> anyhow::Result<std::collections::HashMap<String, Timing>> {
    let spec = serde_json::json!({
        "files": capture.join("*.parquet").to_string_lossy(),
        "repeat": repeat,
        "derived": duckdb_derived_columns(),
        "queries": queries.iter().map(|q| serde_json::json!({"name": q.name, "sql": q.sql}))
            .collect::<Vec<_>>(),
    });
    let mut child = Command::new("python3")
        .args(["-c", include_str!("duckdb_runner.py")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting python3 for DuckDB")?;
    child
        .stdin
        .take()
        .context("python3's stdin is not piped")?
        .write_all(spec.to_string().as_bytes())
        .context("sending the queries to DuckDB")?;
    let out = child.wait_with_output().context("waiting for DuckDB")?;
    if !out.status.success() {
        bail!(
            "DuckDB failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading DuckDB's timings")
}

/// Median wall-clock seconds from starting `command()` to its exit, over `runs` runs after
/// one warm-up; each run must print its row.
pub fn startup(command: impl Fn() -> Command, runs: usize) -> anyhow::Result<f64> {
    let mut seconds = Vec::new();
    for i in 0..=runs {
        let t = Instant::now();
        let out = command().output().context("running the start-up probe")?;
        let elapsed = t.elapsed().as_secs_f64();
        if !out.status.success() || out.stdout.is_empty() {
            bail!(
                "the start-up query failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if i > 0 {
            seconds.push(elapsed);
        }
    }
    Ok(crate::stats::median(&seconds))
}
