//! A scan of very many segments that keeps what it holds bounded: each partition reads its
//! files a chunk at a time, through a scan of that chunk alone, dropped once read.
//!
//! DataFusion's Parquet scan registers some 25 metrics per file it opens, labelled with the
//! file's name, in one set kept for the whole query (apache/datafusion#23644): a full count of
//! 100,000 segments held 2.2 GiB at its end, most of it metrics. Here each chunk's metrics go
//! with its scan. The filters pushed into this scan are handed to each chunk's, so row groups
//! and pages are still pruned by statistics.
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::{ConfigOptions, TableParquetOptions};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt as _, TryStreamExt as _};

use super::table::Pruning;

/// Files a chunk's scan opens before it is dropped: its metrics are a few MiB at most.
pub const CHUNK_FILES: usize = 256;

#[derive(Debug, Clone)]
pub struct ChunkedScan {
    /// Each partition's files, in order.
    groups: Arc<Vec<Vec<PartitionedFile>>>,
    /// What every chunk's scan is made of.
    spec: Arc<ScanSpec>,
    /// Filters pushed into this scan, handed to each chunk's.
    filters: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
    pruning: Arc<Pruning>,
}

impl ChunkedScan {
    pub fn new(groups: Vec<FileGroup>, spec: ScanSpec, pruning: Arc<Pruning>) -> Result<Self> {
        // The plan properties are those of one scan over every file, with one partition per
        // group; that scan is built only to ask.
        let whole = DataSourceExec::new(spec.data_source(groups.clone(), None)?);
        Ok(ChunkedScan {
            groups: Arc::new(groups.into_iter().map(FileGroup::into_inner).collect()),
            spec: Arc::new(spec),
            filters: Vec::new(),
            properties: Arc::clone(whole.properties()),
            pruning,
        })
    }

    /// A scan of `chunk` with this scan's schema, projection, limit and filters.
    fn chunk_scan(
        &self,
        chunk: Vec<PartitionedFile>,
        reader: Arc<dyn ParquetFileReaderFactory>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let data_source = self
            .spec
            .data_source(vec![FileGroup::new(chunk)], Some(reader))?;
        let data_source = if self.filters.is_empty() {
            data_source
        } else {
            data_source
                .try_pushdown_filters(self.filters.clone(), config)?
                .updated_node
                .unwrap_or(data_source)
        };
        Ok(Arc::new(DataSourceExec::new(data_source)))
    }
}

/// What a Parquet scan of some of a capture's segments is made of.
#[derive(Debug)]
pub struct ScanSpec {
    pub table_schema: SchemaRef,
    pub options: TableParquetOptions,
    pub projection: Option<Vec<usize>>,
    pub limit: Option<usize>,
}

impl ScanSpec {
    /// The engine's Parquet scan of `groups`, set up as `ParquetFormat` sets one up (options,
    /// footer-size hint), reading through `reader` when given.
    pub fn data_source(
        &self,
        groups: Vec<FileGroup>,
        reader: Option<Arc<dyn ParquetFileReaderFactory>>,
    ) -> Result<Arc<dyn DataSource>> {
        let mut source = ParquetSource::new(Arc::clone(&self.table_schema))
            .with_table_parquet_options(self.options.clone());
        if let Some(hint) = self.options.global.metadata_size_hint {
            source = source.with_metadata_size_hint(hint);
        }
        if let Some(reader) = reader {
            source = source.with_parquet_file_reader_factory(reader);
        }
        Ok(Arc::new(
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(self.projection.clone())?
                .with_limit(self.limit)
                .build(),
        ))
    }
}

/// The engine's footer-caching reader of local files, counting the files it opens (for the
/// progress bar).
#[derive(Debug)]
pub struct CountingReaders {
    inner: CachedParquetFileReaderFactory,
    pruning: Arc<Pruning>,
}

impl CountingReaders {
    pub fn new(
        runtime: &datafusion::execution::runtime_env::RuntimeEnv,
        pruning: Arc<Pruning>,
    ) -> Result<Self> {
        let store = runtime.object_store(ObjectStoreUrl::local_filesystem())?;
        Ok(CountingReaders {
            inner: CachedParquetFileReaderFactory::new(
                store,
                runtime.cache_manager.get_file_metadata_cache(),
            ),
            pruning,
        })
    }
}

impl ParquetFileReaderFactory for CountingReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &datafusion::physical_plan::metrics::ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn datafusion::parquet::arrow::async_reader::AsyncFileReader + Send>> {
        self.pruning
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )
    }
}

impl DisplayAs for ChunkedScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let files: usize = self.groups.iter().map(Vec::len).sum();
        write!(
            f,
            "ChunkedScan: {files} segment(s) in {} partition(s), {CHUNK_FILES} at a time, \
             filters=[{}]",
            self.groups.len(),
            self.filters
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl ExecutionPlan for ChunkedScan {
    fn name(&self) -> &str {
        "ChunkedScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for filter in &self.filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let filters: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| f.filter)
            .collect();
        // Which filters the chunks' scans take (and so whether the parent still applies
        // them) is what one of them answers.
        let probe = self.spec.data_source(Vec::new(), None)?;
        let answer = probe.try_pushdown_filters(filters.clone(), config)?;
        let mut updated = self.clone();
        updated.filters.extend(filters);
        Ok(FilterPushdownPropagation {
            filters: answer.filters,
            updated_node: Some(Arc::new(updated)),
        })
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self.groups.get(partition).cloned().unwrap_or_default();
        let reader: Arc<dyn ParquetFileReaderFactory> = Arc::new(CountingReaders::new(
            &context.runtime_env(),
            Arc::clone(&self.pruning),
        )?);
        let chunks: Vec<Vec<PartitionedFile>> =
            files.chunks(CHUNK_FILES).map(<[_]>::to_vec).collect();
        let this = self.clone();
        let schema = self.schema();
        let stream = futures::stream::iter(chunks)
            .map(move |chunk| {
                let config = context.session_config().options();
                let scan = this.chunk_scan(chunk, Arc::clone(&reader), config)?;
                scan.execute(0, Arc::clone(&context))
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
