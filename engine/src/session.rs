//! The one place the query engine is configured: a read-only DataFusion session with a memory
//! limit and the capture's tables registered.
use std::sync::Arc;

use anyhow::Context as _;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SQLOptions, SessionConfig, SessionContext};
use fantrace_schema::metadata as keys;

use crate::capture::Segment;
use crate::capture::table::{CaptureTable, Pruning, local_location, object_meta};

/// What the scans of this session's queries pruned so far; `None` for a session whose queries
/// run on a cluster.
pub fn pruning(ctx: &SessionContext) -> Option<Arc<Pruning>> {
    ctx.state().config().get_extension::<Pruning>()
}

#[derive(Clone)]
pub struct SessionOptions {
    pub memory_limit: usize,
    /// Owned by this process (see `spill`); DataFusion's spill files go there.
    pub spill_dir: std::path::PathBuf,
    pub max_spill: u64,
    /// Neither prune nor answer by footer statistics and page indexes.
    pub no_stats: bool,
    /// Run queries on this Ballista cluster (`df://host:port`) instead of in this process.
    pub cluster: Option<String>,
    /// Define `marks` and `marks_at`. Planning the mark-state views is most of a session's
    /// set-up (13 of its 20 ms), so a single statement that cannot name them (see
    /// [`may_name_marks`]) goes without.
    pub plan_marks: bool,
    /// Every table holds only the calls in this window (ns since the epoch, inclusive): what
    /// `--since`/`--until` ask for (see `CaptureArgs::window`).
    pub window: Option<(i64, i64)>,
}

/// Whether `sql` may use `marks` or `marks_at`, or list the tables: any mention of "marks"
/// (in any case, even in a string), of the catalog or of SHOW. An over-approximation, so
/// that a statement that needs the views always has them.
pub fn may_name_marks(sql: &str) -> bool {
    let sql = sql.to_ascii_lowercase();
    ["marks", "information_schema", "show", "describe"]
        .iter()
        .any(|word| sql.contains(word))
}

/// Statements that write, change settings or reach outside the captures are refused.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Runs one read-only statement and collects its result; errors quote the statement.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    Ok(run_sql_with_schema(ctx, sql).await?.1)
}

/// [`run_sql`], with the result's schema, which a result of no rows has too.
pub async fn run_sql_with_schema(
    ctx: &SessionContext,
    sql: &str,
) -> anyhow::Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let short: String = sql.trim().chars().take(200).collect();
    let df = ctx
        .sql_with_options(sql, read_only())
        .await
        .with_context(|| format!("in SQL statement {short:?}"))?;
    let schema: arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .with_context(|| format!("running SQL statement {short:?}"))?;
    Ok((schema, batches))
}

/// What every querying command does first: find and check the captures' segments (refusing
/// broken seals and row groups too large for the memory limit), warn about what the
/// recordings missed, and open a session over them.
pub async fn open_captures(
    args: &crate::capture::CaptureArgs,
    opts: &SessionOptions,
) -> anyhow::Result<(crate::capture::Loaded, SessionContext)> {
    let loaded =
        crate::capture::load(args, crate::capture::Checks::for_queries(opts.memory_limit)).await?;
    crate::capture::warn_about_gaps(&loaded.segments);
    let opts = SessionOptions {
        window: args.window.or(opts.window),
        ..opts.clone()
    };
    let ctx = open(&loaded.segments, &opts).await?;
    Ok((loaded, ctx))
}

pub async fn open(segments: &[Segment], opts: &SessionOptions) -> anyhow::Result<SessionContext> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    // Fair rather than first come, first served: with several sorts and aggregations in one
    // plan (the mark state has a window sort, a flush sort and a large aggregation), the
    // first to grow took the whole limit and a later join, which cannot spill, failed; here
    // each operator that can spill is held to its share and spills beyond it.
    const TOP_CONSUMERS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(5).unwrap();
    let pool = TrackConsumersPool::new(FairSpillPool::new(opts.memory_limit), TOP_CONSUMERS);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![opts.spill_dir.clone()]))
                .with_max_temp_directory_size(opts.max_spill),
        )
        .build_arc()
        .context("configuring the query memory limit")?;
    let mut config = SessionConfig::new().with_information_schema(true);
    let parquet = &mut config.options_mut().execution.parquet;
    // Statistics and the page index prune row groups and pages before anything is decoded
    // (a one-minute query reads one row group of 155). Row-level filter pushdown stays off: on
    // these scans arrow-rs spent more on building row selections than it saved in decoding,
    // and every one of the benchmark's forensic queries ran faster without it (up to 2x).
    parquet.pushdown_filters = false;
    parquet.enable_page_index = !opts.no_stats;
    parquet.pruning = !opts.no_stats;
    config.options_mut().execution.collect_statistics = !opts.no_stats;
    // Deliberately no `enable_url_table()`: `SELECT * FROM '/etc/passwd'` must not read files.
    let ctx = match &opts.cluster {
        None => SessionContext::new_with_config_rt(
            config.with_extension(Arc::new(Pruning::default())),
            runtime,
        ),
        Some(url) => crate::cluster::connect(url, config, runtime)?,
    };
    for segment in segments {
        if let Some(object) = &segment.object {
            let url = url::Url::parse(&object.store_url)
                .with_context(|| format!("{}: not a store URL", object.store_url))?;
            ctx.register_object_store(&url, Arc::clone(&object.store));
        }
    }
    crate::sql::functions::register(&ctx);
    crate::sql::bounded_functions::register(&ctx, opts.memory_limit);
    share_footers(&ctx, segments);
    let mut calls = calls_frame(&ctx, segments, opts.memory_limit).await?;
    if let Some((lo, hi)) = opts.window {
        use datafusion::prelude::{col, lit};
        let at = |ns| {
            lit(datafusion::common::ScalarValue::TimestampNanosecond(
                Some(ns),
                Some("UTC".into()),
            ))
        };
        calls = calls.filter(col("time").between(at(lo), at(hi)))?;
    }
    // The segments hold both syscalls; `events` and `inits` are the views people query.
    ctx.register_table("calls", calls.into_view())
        .context("registering table calls")?;
    for view in [
        EVENTS_VIEW.as_str(),
        INITS_VIEW.as_str(),
        EXITS_VIEW.as_str(),
    ] {
        define_view(&ctx, view).await?;
    }
    if opts.plan_marks {
        let model = mark_model(segments);
        define_view(&ctx, &crate::marks::view_sql(model)).await?;
        let marks_at = crate::marks::MarksAt::new(&ctx, model).await?;
        ctx.register_udtf("marks_at", Arc::new(marks_at));
    }
    let registered = if opts.cluster.is_some() {
        // A cluster is sent plans, and an in-memory table is not something a plan can carry:
        // the rows go as a VALUES list instead.
        let stats = crate::sql::stats::batch(&crate::capture::complete(segments).await?)?;
        let view = crate::cluster::values_view(&ctx, &stats)?;
        ctx.register_table("stats", view)
    } else {
        ctx.register_table(
            "stats",
            Arc::new(crate::sql::stats::StatsTable::new(segments)),
        )
    };
    registered.context("registering table stats")?;
    Ok(ctx)
}

async fn define_view(ctx: &SessionContext, view: &str) -> anyhow::Result<()> {
    ctx.sql(view)
        .await
        .with_context(|| format!("defining a view: {view}"))?;
    Ok(())
}

/// The mark-state model the segments allow: the kernel's view when any segment records it
/// (older segments' calls then have no group and are left out of it, which every command
/// warns about), the calls as given when none does.
pub fn mark_model(segments: &[Segment]) -> crate::marks::Model {
    if segments
        .iter()
        .any(|s| s.schema_version >= keys::KERNEL_STATE_SINCE_VERSION)
    {
        crate::marks::Model::Kernel
    } else {
        crate::marks::Model::Legacy {
            exits_recorded: segments
                .iter()
                .all(|s| s.schema_version >= keys::EXITS_SINCE_VERSION),
        }
    }
}

/// Every stored row of the segments, as the current schema types it. Segments of version 4 and
/// later agree on every type, so DataFusion takes the schema from a footer and reads them in
/// one scan. Older ones store some columns with other types or lack them: the current types are
/// then given (their columns are cast as they are read, missing ones are NULL), and the row
/// columns naming the host and boot, which they kept only in their metadata, are filled from
/// it: one scan per host and boot, put together with the rest.
async fn calls_frame(
    ctx: &SessionContext,
    segments: &[Segment],
    memory_limit: usize,
) -> anyhow::Result<datafusion::dataframe::DataFrame> {
    use datafusion::logical_expr::{ExprSchemable as _, cast, lit};
    let path = |s: &Segment| s.path.to_string_lossy().into_owned();
    let table_schema = scan_schema();
    // From version 4 on every column has its current type; version 5 added row kinds and
    // version 6 columns, which segments of one version read alike. Segments of several
    // versions are read with the current schema (missing columns are NULL).
    let versions: std::collections::BTreeSet<u32> =
        segments.iter().map(|s| s.schema_version).collect();
    let with_origin = |s: &&Segment| s.schema_version >= 4;
    let current: Vec<&Segment> = segments.iter().filter(with_origin).collect();
    // Local segments are handed to the engine directly (no listing, one open file per
    // partition, pruned by time); a cluster's executors and object stores take the listing
    // path, which they plan and read themselves.
    let local =
        pruning(ctx).filter(|_| !current.is_empty() && current.iter().all(|s| s.object.is_none()));
    let mut frames = Vec::new();
    if let Some(pruning) = local
        && CaptureTable::covers(&current)
    {
        let table = CaptureTable::new(
            &current,
            Arc::new(table_schema.clone()),
            pruning,
            crate::capture::Checks::for_queries(memory_limit),
        );
        frames.push(
            ctx.read_table(Arc::new(table))
                .context("opening the capture segments")?,
        );
    }
    if frames.is_empty() && !current.is_empty() {
        let paths: Vec<String> = current.iter().map(|s| path(s)).collect();
        let options = if current.len() == segments.len() && versions.len() <= 1 {
            ParquetReadOptions::default()
        } else {
            ParquetReadOptions::default().schema(&table_schema)
        };
        frames.push(
            ctx.read_parquet(paths, options)
                .await
                .context("opening the capture segments")?,
        );
    }
    let mut by_origin: std::collections::BTreeMap<(String, String), Vec<String>> =
        std::collections::BTreeMap::new();
    for s in segments.iter().filter(|s| !with_origin(s)) {
        let origin = (
            s.meta(keys::HOSTNAME).unwrap_or("unknown").to_string(),
            s.meta(keys::BOOT_ID).unwrap_or("unknown").to_string(),
        );
        by_origin.entry(origin).or_default().push(path(s));
    }
    for ((host, boot_id), paths) in by_origin {
        let frame = ctx
            .read_parquet(paths, ParquetReadOptions::default().schema(&table_schema))
            .await
            .context("opening the capture segments")?;
        let origin_type = fantrace_schema::arrow::origin_type();
        let frame = frame
            .with_column("host", cast(lit(host), origin_type.clone()))?
            .with_column("boot_id", cast(lit(boot_id), origin_type))?;
        // with_column keeps the position of a column it replaces; say so to the union.
        let columns: Vec<_> = table_schema
            .fields()
            .iter()
            .map(|f| {
                datafusion::prelude::col(f.name())
                    .cast_to(f.data_type(), frame.schema())
                    .map(|e| e.alias(f.name()))
            })
            .collect::<Result<_, _>>()?;
        frames.push(frame.select(columns)?);
    }
    let mut frames = frames.into_iter();
    let first = frames.next().context("no segment to read")?;
    frames
        .try_fold(first, |acc, f| acc.union(f))
        .context("putting segments of several schema versions together")
}

/// Puts the footers the capture check already decoded into DataFusion's metadata cache, where
/// planning and every scan look first. Without this each segment's footer and page index were
/// read and decoded again (a tenth of a short query's time). A path DataFusion spells
/// differently (through a symlink, say) only misses the cache.
fn share_footers(ctx: &SessionContext, segments: &[Segment]) {
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    for segment in segments {
        let Some(footer) = &segment.footer else {
            continue;
        };
        let location = match &segment.object {
            Some(object) => object.key.clone(),
            None => match local_location(&segment.path) {
                Some(location) => location,
                None => continue,
            },
        };
        let meta = object_meta(location.clone(), footer.size, footer.modified);
        let cached = CachedParquetMetaData::new(Arc::clone(&footer.metadata));
        cache.put(
            &location,
            CachedFileMetadataEntry::new(meta, Arc::new(cached)),
        );
    }
}

/// The stored columns as DataFusion reads them: text and bytes as view types, which decode
/// from Parquet dictionaries without copying each value.
fn scan_schema() -> Schema {
    let schema = fantrace_schema::arrow::events_schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8 => DataType::Utf8View,
                DataType::Binary => DataType::BinaryView,
                t => t.clone(),
            };
            Field::new(f.name(), t, f.is_nullable())
        })
        .collect();
    Schema::new(fields)
}

/// `events`: one row per fanotify_mark call, every stored column but `syscall`, then the
/// derived ones (computed only when a query uses them).
static EVENTS_VIEW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let stored = fantrace_schema::arrow::COLUMNS
        .iter()
        .map(|c| c.name.to_string())
        .filter(|n| n != "syscall");
    let derived = fantrace_schema::arrow::DERIVED
        .iter()
        .map(|d| format!("{} AS {}", d.sql, d.name));
    let columns: Vec<String> = stored.chain(derived).collect();
    format!(
        "CREATE VIEW events AS SELECT {} FROM calls WHERE syscall = 'fanotify_mark'",
        columns.join(", ")
    )
});

/// The columns of `inits`: one row per fanotify_init call, its arguments named and decoded.
pub const INITS_COLUMNS: &str = "time, duration_ns, pid, tid, comm, ppid, uid, gid, cgroup_id, \
    mnt_ns, pid_ns, exe, container_id, flags, fan_init_flag_names(flags) AS flag_names, \
    fan_init_class(flags) AS class, arrow_cast(mask, 'UInt32') AS event_f_flags, ret AS fd, \
    errno_name(ret) AS error, abi, host, boot_id, group_id";

static INITS_VIEW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "CREATE VIEW inits AS SELECT {INITS_COLUMNS} FROM calls WHERE syscall = 'fanotify_init'"
    )
});

/// `exits`: one row per exit of a process that created a fanotify group (segments of schema
/// version 5 and later record them).
pub const EXITS_COLUMNS: &str = "time, pid, tid, comm, ppid, uid, gid, cgroup_id, mnt_ns, \
    pid_ns, exe, container_id, ret AS status, fan_exit_status(ret) AS how, host, boot_id";

static EXITS_VIEW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("CREATE VIEW exits AS SELECT {EXITS_COLUMNS} FROM calls WHERE syscall = 'process_exit'")
});
