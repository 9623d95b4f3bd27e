//! The local segments of a capture as one DataFusion table, read without DataFusion's listing.
//!
//! `read_parquet` over N files asks the object store for each file's metadata all at once,
//! and the local store opens every file to answer: 5,000 segments failed under the usual
//! `ulimit -n` of 1024 ("Too many open files"). The segments are already found and checked
//! (`capture::load`), so this table hands DataFusion the files directly: a scan opens one
//! file at a time per partition, however many segments there are.
//!
//! A scan's time condition prunes first: a segment whose recorded time range (`time_min`,
//! `time_max` in its metadata, exact to the nanosecond) cannot meet it is not opened at all.
//! What was pruned is counted in [`Pruning`], for `--timing`.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::Segment;
use super::chunked_scan::{ChunkedScan, CountingReaders, ScanSpec};

/// Above this many segments to read, a scan reads them a chunk at a time (see
/// `chunked_scan`); below, one engine scan reads them all.
const CHUNKED_ABOVE: usize = 1024;

/// One local segment as a scan needs it.
#[derive(Debug, Clone)]
struct File {
    /// Size and modification time, as the footer cache knows them (`None`: stat at scan).
    known: Option<(u64, SystemTime)>,
    /// What its index line says of it, checked at scan (see [`Segment::indexed`]).
    indexed: Option<fantrace_schema::index::FileIdentity>,
    path: std::path::PathBuf,
    /// The first and last `time` in it, in ns since the epoch (`None`: not recorded).
    times: Option<(i64, i64)>,
    /// Rows in its largest row group.
    largest_rows: i64,
}

/// A row group of at most this many rows is one page per column (the Parquet writer's page
/// row limit), so its page index prunes nothing a row group's statistics do not: reading it
/// is one more read and decode per file for nothing (on 100,000 ten-row segments, a third of
/// a full scan).
const PAGE_INDEX_MIN_ROWS: i64 = 20_000;

/// How many segments the scans of one query were given, and how many they left unopened.
#[derive(Debug, Default)]
pub struct Pruning {
    pub scans: AtomicU64,
    pub segments: AtomicU64,
    pub pruned_by_time: AtomicU64,
    /// Of those, the ones known by their index line: never opened since the session began.
    pub pruned_unopened: AtomicU64,
    /// Segments the scans are to read, and have opened so far (for a progress bar).
    pub to_open: AtomicU64,
    pub opened: AtomicU64,
}

impl Pruning {
    /// One line for `--timing`; `None` before any scan.
    pub fn summary(&self) -> Option<String> {
        let scans = self.scans.load(Ordering::Relaxed);
        if scans == 0 {
            return None;
        }
        let segments = self.segments.load(Ordering::Relaxed);
        let pruned = self.pruned_by_time.load(Ordering::Relaxed);
        let unopened = self.pruned_unopened.load(Ordering::Relaxed);
        Some(format!(
            "{scans} scan(s) of {segments} segment(s): {pruned} pruned by their recorded time range \
             before opening ({unopened} known from the capture's index, never opened), {} read",
            segments - pruned
        ))
    }
}

#[derive(Debug)]
pub struct CaptureTable {
    schema: SchemaRef,
    files: Vec<File>,
    pruning: Arc<Pruning>,
    /// For a segment that changed since its index line was written, opened at scan.
    checks: super::Checks,
}

impl CaptureTable {
    /// The table over `segments` (local files, already checked), typed as `schema`: a segment
    /// of an older version reads its missing columns as NULL.
    pub fn new(
        segments: &[&Segment],
        schema: SchemaRef,
        pruning: Arc<Pruning>,
        checks: super::Checks,
    ) -> CaptureTable {
        let files = segments
            .iter()
            .map(|s| File {
                known: s.footer.as_ref().map(|f| (f.size, f.modified)),
                indexed: s.indexed,
                path: s.path.clone(),
                times: s.time_range(),
                largest_rows: s.largest_row_group.rows,
            })
            .collect();
        CaptureTable {
            schema,
            files,
            pruning,
            checks,
        }
    }

    /// Whether every segment can be named to the local store (a path that is not valid
    /// UTF-8 cannot be, and is read through the listing path instead).
    pub fn covers(segments: &[&Segment]) -> bool {
        segments.iter().all(|s| s.path.to_str().is_some())
    }
}

/// Where the local object store finds the file at `path`; `None` for a path it cannot name.
pub fn local_location(path: &std::path::Path) -> Option<object_store::path::Path> {
    let absolute = std::path::absolute(path).ok()?;
    object_store::path::Path::from_absolute_path(&absolute).ok()
}

/// A file's identity as DataFusion's footer cache checks it: where, how large, when changed.
pub fn object_meta(
    location: object_store::path::Path,
    size: u64,
    modified: SystemTime,
) -> object_store::ObjectMeta {
    object_store::ObjectMeta {
        location,
        last_modified: modified.into(),
        size,
        e_tag: None,
        version: None,
    }
}

/// The narrowest `[lo, hi]` (ns, inclusive) the conjuncts of `filters` allow `time`; any
/// condition this does not understand allows everything.
fn time_bounds(filters: &[Expr]) -> (i64, i64) {
    let mut bounds = (i64::MIN, i64::MAX);
    for filter in filters {
        for conjunct in datafusion::logical_expr::utils::split_conjunction(filter) {
            narrow(conjunct, &mut bounds);
        }
    }
    bounds
}

fn narrow(expr: &Expr, bounds: &mut (i64, i64)) {
    let (lo, hi) = bounds;
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = match (is_time(left), nanos(right), is_time(right), nanos(left)) {
                (true, Some(v), _, _) => (*op, v),
                (_, _, true, Some(v)) => match op.swap() {
                    Some(op) => (op, v),
                    None => return,
                },
                _ => return,
            };
            match op {
                Operator::Eq => {
                    *lo = (*lo).max(value);
                    *hi = (*hi).min(value);
                }
                Operator::Gt => *lo = (*lo).max(value.saturating_add(1)),
                Operator::GtEq => *lo = (*lo).max(value),
                Operator::Lt => *hi = (*hi).min(value.saturating_sub(1)),
                Operator::LtEq => *hi = (*hi).min(value),
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_time(expr) => {
            if let (Some(l), Some(h)) = (nanos(low), nanos(high)) {
                *lo = (*lo).max(l);
                *hi = (*hi).min(h);
            }
        }
        _ => {}
    }
}

fn is_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == "time")
}

/// A literal instant, in ns since the epoch; only nanosecond timestamps (the column's type,
/// to which the planner casts what is compared with it) are taken.
fn nanos(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _) => Some(*v),
        _ => None,
    }
}

impl CaptureTable {
    /// The size and modification time the engine reads `file` by. A segment known by its index
    /// line is that line's file while they match; one that changed since is opened and checked
    /// as if there were no index, and its scan fails if it no longer passes.
    fn size_and_time(&self, file: &File) -> Result<(u64, SystemTime)> {
        let stat = std::fs::metadata(&file.path)?;
        if let Some(indexed) = file.indexed
            && !indexed.matches(&stat)
        {
            let opened = super::open_segment(&file.path)
                .and_then(|segment| self.checks.check(&segment).map(|()| segment))
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            if let Some(footer) = opened.footer {
                return Ok((footer.size, footer.modified));
            }
        }
        Ok((stat.len(), stat.modified()?))
    }
}

#[async_trait]
impl TableProvider for CaptureTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Seen for pruning, still applied above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (lo, hi) = time_bounds(filters);
        let mut pruned = 0u64;
        let mut unopened = 0u64;
        let mut files = Vec::new();
        let mut largest_rows = 0;
        for file in &self.files {
            if !super::meets(file.times, (lo, hi)) {
                pruned += 1;
                unopened += u64::from(file.indexed.is_some());
                continue;
            }
            largest_rows = largest_rows.max(file.largest_rows);
            let (size, modified) = match file.known {
                Some(known) => known,
                None => self.size_and_time(file)?,
            };
            let location = local_location(&file.path).ok_or_else(|| {
                datafusion::error::DataFusionError::Plan(format!(
                    "{}: a path the engine cannot name",
                    file.path.display()
                ))
            })?;
            files.push(PartitionedFile::new_from_meta(object_meta(
                location, size, modified,
            )));
        }
        self.pruning.scans.fetch_add(1, Ordering::Relaxed);
        self.pruning
            .segments
            .fetch_add(self.files.len() as u64, Ordering::Relaxed);
        self.pruning
            .pruned_by_time
            .fetch_add(pruned, Ordering::Relaxed);
        self.pruning
            .pruned_unopened
            .fetch_add(unopened, Ordering::Relaxed);
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut options = state.table_options().parquet.clone();
        if largest_rows <= PAGE_INDEX_MIN_ROWS {
            options.global.enable_page_index = false;
        }
        self.pruning
            .to_open
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        let groups = FileGroup::new(files).split_files(state.config().target_partitions());
        let spec = ScanSpec {
            table_schema: Arc::clone(&self.schema),
            options,
            projection: projection.cloned(),
            limit,
        };
        if groups.iter().map(FileGroup::len).sum::<usize>() > CHUNKED_ABOVE {
            return Ok(Arc::new(ChunkedScan::new(
                groups,
                spec,
                Arc::clone(&self.pruning),
            )?));
        }
        let reader = CountingReaders::new(state.runtime_env(), Arc::clone(&self.pruning))?;
        Ok(Arc::new(DataSourceExec::new(
            spec.data_source(groups, Some(Arc::new(reader)))?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_conditions_narrow_the_range_and_others_do_not() {
        assert_eq!(time_bounds(&[]), (i64::MIN, i64::MAX));
        let f = col("time").gt_eq(ts(10)).and(col("time").lt(ts(20)));
        assert_eq!(time_bounds(&[f]), (10, 19));
        // Written the other way round, and as BETWEEN.
        assert_eq!(time_bounds(&[ts(10).lt(col("time"))]), (11, i64::MAX));
        assert_eq!(time_bounds(&[col("time").between(ts(5), ts(7))]), (5, 7));
        // A disjunction, a negation or another column prune nothing.
        let or = col("time").lt(ts(5)).or(col("time").gt(ts(50)));
        assert_eq!(time_bounds(&[or]), (i64::MIN, i64::MAX));
        assert_eq!(
            time_bounds(&[col("time").not_between(ts(5), ts(7))]),
            (i64::MIN, i64::MAX)
        );
        assert_eq!(
            time_bounds(&[col("exit_time").gt(ts(5))]),
            (i64::MIN, i64::MAX)
        );
        assert_eq!(time_bounds(&[col("time").eq(ts(8))]), (8, 8));
    }
}
