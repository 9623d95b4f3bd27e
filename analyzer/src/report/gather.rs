//! What the report shows, asked of the capture in SQL: the summary, the timeline's lanes and
//! time buckets, recording gaps and losses, the marks in force at the end, the playbook's
//! findings. Every aggregate is DataFusion's; Rust only lays the answers out.
use anyhow::Context as _;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use fantrace_schema::flags::{MARK_TYPE_BITS, PERMISSION_MASK};

use fantrace_engine::session::run_sql;

/// Processes drawn as lanes, at most; the rest are counted in a note.
pub const MAX_LANES: usize = 40;
/// Time buckets across the timeline.
pub const BUCKETS: i64 = 240;
/// Rows shown per table, at most.
pub const MAX_ROWS: usize = 200;

pub struct Summary {
    pub hosts: Vec<String>,
    pub segments: i64,
    pub start_ns: i64,
    pub end_ns: i64,
    pub marks: i64,
    pub failed: i64,
    pub permission: i64,
    pub wide: i64,
    pub inits: i64,
    pub exits: i64,
    pub written: i64,
    pub lost: i64,
    /// `lost_*` column name and count, for the causes that lost anything.
    pub lost_by_cause: Vec<(String, i64)>,
    pub attach: Vec<String>,
    pub kernels: Vec<String>,
}

pub struct Lane {
    pub host: String,
    pub pid: i64,
    pub comm: String,
    pub permission: i64,
    pub wide: i64,
}

/// One lane's calls in one time bucket.
pub struct Cell {
    pub lane: usize,
    pub bucket: i64,
    pub calls: i64,
    pub permission: i64,
    pub wide: i64,
    pub failed: i64,
    pub inits: i64,
    pub exits: i64,
}

/// A stretch of time a host's recording did not cover (`lost == 0`), or covered while losing
/// calls. Shaded across every lane: a lane's host may be another one.
pub struct Shade {
    pub start_ns: i64,
    pub end_ns: i64,
    pub lost: i64,
}

/// A table's first rows and how many it has (at most one more than [`MAX_ROWS`], to say
/// "more"); or why it is not in the report.
pub type Rows = Result<(Vec<RecordBatch>, usize), String>;

pub struct Finding {
    pub name: &'static str,
    pub doc: String,
    pub rows: Rows,
}

pub struct Report {
    pub summary: Summary,
    pub lanes: Vec<Lane>,
    /// Processes (and their calls) not drawn.
    pub other_processes: i64,
    pub other_calls: i64,
    pub bucket_ns: i64,
    pub cells: Vec<Cell>,
    pub shades: Vec<Shade>,
    /// The end of the capture as `marks_at` takes it.
    pub end_at: String,
    pub marks_at_end: Rows,
    pub findings: Vec<Finding>,
}

/// Column `name` of `batch` as text/number readers; a column the query did not return is a bug
/// in the query, reported as such.
struct Columns<'a>(&'a RecordBatch);

impl Columns<'_> {
    fn int(&self, name: &str, row: usize) -> anyhow::Result<i64> {
        let c = self
            .0
            .column_by_name(name)
            .with_context(|| format!("report query lost column {name}"))?;
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64)?;
        let c = c.as_primitive::<Int64Type>();
        Ok(if c.is_null(row) { 0 } else { c.value(row) })
    }

    fn text(&self, name: &str, row: usize) -> anyhow::Result<String> {
        let c = self
            .0
            .column_by_name(name)
            .with_context(|| format!("report query lost column {name}"))?;
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8)?;
        let c = c.as_string::<i32>();
        Ok(if c.is_null(row) {
            String::new()
        } else {
            c.value(row).to_string()
        })
    }
}

fn rows(batches: &[RecordBatch]) -> impl Iterator<Item = (Columns<'_>, usize)> {
    batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| (Columns(b), i)))
}

fn texts(batches: &[RecordBatch], column: &str) -> anyhow::Result<Vec<String>> {
    rows(batches).map(|(c, i)| c.text(column, i)).collect()
}

const MARK_COUNTS: &str = "sum(CASE WHEN syscall = 'fanotify_mark' THEN 1 ELSE 0 END) AS marks, \
     sum(CASE WHEN syscall = 'fanotify_mark' AND ret < 0 THEN 1 ELSE 0 END) AS failed, \
     sum(CASE WHEN syscall = 'fanotify_init' THEN 1 ELSE 0 END) AS inits, \
     sum(CASE WHEN syscall = 'process_exit' THEN 1 ELSE 0 END) AS exits";

fn permission_and_wide() -> String {
    format!(
        "sum(CASE WHEN syscall = 'fanotify_mark' AND (mask & {PERMISSION_MASK}) <> 0 \
         THEN 1 ELSE 0 END) AS permission, \
         sum(CASE WHEN syscall = 'fanotify_mark' AND (flags & {MARK_TYPE_BITS}) <> 0 \
         THEN 1 ELSE 0 END) AS wide"
    )
}

async fn summary(ctx: &SessionContext) -> anyhow::Result<Summary> {
    let stats = run_sql(
        ctx,
        "SELECT count(*) AS segments, \
         arrow_cast(min(to_timestamp_nanos(segment_start)), 'Int64') AS seg_start, \
         arrow_cast(max(to_timestamp_nanos(segment_end)), 'Int64') AS seg_end, \
         sum(events_written) AS written, sum(events_lost) AS lost FROM stats",
    )
    .await?;
    let calls = run_sql(
        ctx,
        &format!(
            "SELECT {MARK_COUNTS}, {}, arrow_cast(min(time), 'Int64') AS first, \
             arrow_cast(max(time), 'Int64') AS last FROM calls",
            permission_and_wide()
        ),
    )
    .await?;
    let hosts = run_sql(
        ctx,
        "SELECT DISTINCT hostname FROM stats WHERE hostname IS NOT NULL ORDER BY hostname",
    )
    .await?;
    let attach = run_sql(
        ctx,
        "SELECT concat(coalesce(attach_mode, 'unknown'), ' (', count(*), ' segments)') AS a \
         FROM stats GROUP BY attach_mode ORDER BY attach_mode",
    )
    .await?;
    let kernels = run_sql(
        ctx,
        "SELECT DISTINCT kernel_release FROM stats WHERE kernel_release IS NOT NULL ORDER BY 1",
    )
    .await?;
    let causes: Vec<String> = fantrace_schema::record::LossCause::ALL
        .iter()
        .map(|c| format!("lost_{}", c.name()))
        .chain(std::iter::once("lost_disk_full".to_string()))
        .collect();
    let sums: Vec<String> = causes.iter().map(|c| format!("sum({c}) AS {c}")).collect();
    let lost = run_sql(ctx, &format!("SELECT {} FROM stats", sums.join(", "))).await?;
    let s = Columns(stats.first().context("no stats row")?);
    let c = Columns(calls.first().context("no calls summary row")?);
    let l = Columns(lost.first().context("no loss row")?);
    let (first, last) = (c.int("first", 0)?, c.int("last", 0)?);
    let (seg_start, seg_end) = (s.int("seg_start", 0)?, s.int("seg_end", 0)?);
    // The recording's own span when it has one; calls outside it (exports) widen it.
    let start_ns = [seg_start, first]
        .into_iter()
        .filter(|&t| t != 0)
        .min()
        .unwrap_or(0);
    let end_ns = [seg_end, last]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(start_ns + 1);
    let mut lost_by_cause = Vec::new();
    for cause in &causes {
        let n = l.int(cause, 0)?;
        if n > 0 {
            lost_by_cause.push((cause.trim_start_matches("lost_").to_string(), n));
        }
    }
    Ok(Summary {
        hosts: texts(&hosts, "hostname")?,
        segments: s.int("segments", 0)?,
        start_ns,
        end_ns,
        marks: c.int("marks", 0)?,
        failed: c.int("failed", 0)?,
        permission: c.int("permission", 0)?,
        wide: c.int("wide", 0)?,
        inits: c.int("inits", 0)?,
        exits: c.int("exits", 0)?,
        written: s.int("written", 0)?,
        lost: s.int("lost", 0)?,
        lost_by_cause,
        attach: texts(&attach, "a")?,
        kernels: texts(&kernels, "kernel_release")?,
    })
}

/// The processes to draw: those with permission marks first, then wide marks, then the
/// busiest.
async fn lanes(ctx: &SessionContext) -> anyhow::Result<(Vec<Lane>, i64, i64)> {
    let batches = run_sql(
        ctx,
        &format!(
            "SELECT arrow_cast(host, 'Utf8') AS host, pid, arrow_cast(max(comm), 'Utf8') AS comm, \
             count(*) AS calls, {MARK_COUNTS}, {} FROM calls GROUP BY host, pid \
             ORDER BY permission DESC, wide DESC, calls DESC, host, pid",
            permission_and_wide()
        ),
    )
    .await?;
    let mut lanes = Vec::new();
    let (mut other_processes, mut other_calls) = (0, 0);
    for (c, i) in rows(&batches) {
        if lanes.len() == MAX_LANES {
            other_processes += 1;
            other_calls += c.int("calls", i)?;
            continue;
        }
        lanes.push(Lane {
            host: c.text("host", i)?,
            pid: c.int("pid", i)?,
            comm: c.text("comm", i)?,
            permission: c.int("permission", i)?,
            wide: c.int("wide", i)?,
        });
    }
    Ok((lanes, other_processes, other_calls))
}

async fn cells(
    ctx: &SessionContext,
    lanes: &[Lane],
    start_ns: i64,
    bucket_ns: i64,
) -> anyhow::Result<Vec<Cell>> {
    if lanes.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<String> = lanes
        .iter()
        .enumerate()
        .map(|(i, l)| format!("('{}', {}, {i})", l.host.replace('\'', "''"), l.pid))
        .collect();
    let batches = run_sql(
        ctx,
        &format!(
            "SELECT lane, (arrow_cast(time, 'Int64') - {start_ns}) / {bucket_ns} AS bucket, \
             count(*) AS calls, {MARK_COUNTS}, {} \
             FROM calls JOIN (VALUES {}) AS lanes(lane_host, lane_pid, lane) \
             ON arrow_cast(host, 'Utf8') = lane_host AND pid = lane_pid \
             GROUP BY lane, bucket",
            permission_and_wide(),
            values.join(", ")
        ),
    )
    .await?;
    rows(&batches)
        .map(|(c, i)| {
            Ok(Cell {
                lane: usize::try_from(c.int("lane", i)?).unwrap_or(0),
                bucket: c.int("bucket", i)?,
                calls: c.int("calls", i)?,
                permission: c.int("permission", i)?,
                wide: c.int("wide", i)?,
                failed: c.int("failed", i)?,
                inits: c.int("inits", i)?,
                exits: c.int("exits", i)?,
            })
        })
        .collect()
}

/// Time between one segment's end and the next one's start on the same host and boot
/// (more than a second), and segments that lost calls.
async fn shades(ctx: &SessionContext) -> anyhow::Result<Vec<Shade>> {
    let batches = run_sql(
        ctx,
        "SELECT hostname AS host, prev_end AS start_ns, seg_start AS end_ns, 0 AS lost \
         FROM (SELECT hostname, arrow_cast(to_timestamp_nanos(segment_start), 'Int64') AS seg_start, \
               lag(arrow_cast(to_timestamp_nanos(segment_end), 'Int64')) OVER ( \
                   PARTITION BY hostname ORDER BY segment_start) AS prev_end FROM stats) \
         WHERE seg_start - prev_end > 1000000000 \
         UNION ALL \
         SELECT hostname, arrow_cast(to_timestamp_nanos(segment_start), 'Int64'), \
                arrow_cast(to_timestamp_nanos(segment_end), 'Int64'), events_lost \
         FROM stats WHERE events_lost > 0",
    )
    .await?;
    rows(&batches)
        .map(|(c, i)| {
            Ok(Shade {
                start_ns: c.int("start_ns", i)?,
                end_ns: c.int("end_ns", i)?,
                lost: c.int("lost", i)?,
            })
        })
        .collect()
}

/// Runs `sql` and keeps its first [`MAX_ROWS`] rows; returns them with the number of rows
/// (at most one more than kept, to say "more").
async fn limited(ctx: &SessionContext, sql: &str) -> anyhow::Result<(Vec<RecordBatch>, usize)> {
    let sql = format!("SELECT * FROM ({sql}) LIMIT {}", MAX_ROWS + 1);
    let batches = run_sql(ctx, &sql).await?;
    let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut kept = Vec::new();
    let mut left = MAX_ROWS;
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        kept.push(b.slice(0, n));
        left -= n;
    }
    Ok((kept, count))
}

/// [`limited`] within what is left of `deadline`; a table that does not fit, or that the
/// memory limit refuses, is left out with the reason instead of failing the report.
async fn within(ctx: &SessionContext, sql: &str, deadline: tokio::time::Instant) -> Rows {
    match tokio::time::timeout_at(deadline, limited(ctx, sql)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => {
            let cause = e.root_cause().to_string();
            if cause.contains("Resources exhausted") || cause.contains("Not enough memory") {
                return Err("it needs more memory than --memory-limit allows".to_string());
            }
            Err(cause
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect())
        }
        Err(_) => Err("not finished within the report's time budget (--budget)".to_string()),
    }
}

/// Everything the report shows. The summary and the timeline are aggregates and always
/// made; the tables (marks at the end, then each finding) share what is left of `budget`.
pub async fn gather(ctx: &SessionContext, budget: std::time::Duration) -> anyhow::Result<Report> {
    let deadline = tokio::time::Instant::now() + budget;
    let summary = summary(ctx).await.context("summarising the capture")?;
    let (lanes, other_processes, other_calls) =
        lanes(ctx).await.context("choosing the timeline's lanes")?;
    let bucket_ns = ((summary.end_ns - summary.start_ns) / BUCKETS).max(1);
    let cells = cells(ctx, &lanes, summary.start_ns, bucket_ns)
        .await
        .context("bucketing the calls of the timeline")?;
    let shades = shades(ctx).await.context("finding recording gaps")?;
    // The findings first: most are a filter and a top-N, cheap at any size; the mark state
    // is a whole-capture computation and comes last. Each table may use at most an even
    // share of the time left, so that one slow query cannot starve the cheap ones after it.
    let tables = crate::commands::playbook::PLAYBOOK.len() as u32 + 1;
    let share = |done: u32| {
        let now = tokio::time::Instant::now();
        now + deadline.saturating_duration_since(now) / (tables - done)
    };
    let mut findings = Vec::new();
    for (done, (name, sql)) in crate::commands::playbook::PLAYBOOK.iter().enumerate() {
        findings.push(Finding {
            name,
            doc: crate::commands::playbook::doc(sql),
            rows: within(ctx, sql, share(done as u32)).await,
        });
    }
    let end_at = chrono::DateTime::from_timestamp_nanos(summary.end_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let marks_at_end = within(
        ctx,
        &format!(
            "SELECT host, group_id, comm, holders, class, mark_type, object, \
             coalesce(resolved_path, pathname) AS path, mask, ignored_mask, state, first_seen, \
             note FROM marks_at('{end_at}')"
        ),
        deadline,
    )
    .await;
    Ok(Report {
        summary,
        lanes,
        other_processes,
        other_calls,
        bucket_ns,
        cells,
        shades,
        end_at,
        marks_at_end,
        findings,
    })
}

/// Seconds from the report's start, as the timeline's x axis counts them.
pub fn seconds(ns: i64, start_ns: i64) -> f64 {
    (ns - start_ns) as f64 / 1e9
}
