//! The `stats` table: one row per segment, from its metadata. Segments known by their index
//! line have only the indexed keys in memory, so the table reads their footers when a query
//! uses it, not when the session opens.
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use fantrace_schema::metadata as keys;
use fantrace_schema::record::LossCause;

use crate::capture::Segment;

#[derive(Debug)]
pub struct StatsTable {
    schema: SchemaRef,
    segments: Vec<Segment>,
}

impl StatsTable {
    pub fn new(segments: &[Segment]) -> StatsTable {
        let schema = batch(&[])
            .map(|b| b.schema())
            .expect("the stats columns of no segment build");
        StatsTable {
            schema,
            segments: segments.to_vec(),
        }
    }
}

#[async_trait]
impl TableProvider for StatsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let segments = crate::capture::complete(&self.segments)
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let rows = batch(&segments)?;
        MemTable::try_new(Arc::clone(&self.schema), vec![vec![rows]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// One row per segment: where it came from, its time span and what it holds or lost.
pub fn batch(segments: &[Segment]) -> datafusion::common::Result<RecordBatch> {
    let text = |key: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter(
            segments.iter().map(|s| s.meta(key).map(str::to_string)),
        ))
    };
    let number = |key: &str| -> ArrayRef {
        Arc::new(UInt64Array::from_iter(
            segments.iter().map(|s| s.meta_u64(key)),
        ))
    };
    let mut fields = vec![
        Field::new("segment", DataType::Utf8, false),
        Field::new("hostname", DataType::Utf8, true),
        Field::new("kernel_release", DataType::Utf8, true),
        Field::new("boot_id", DataType::Utf8, true),
        Field::new("segment_start", DataType::Utf8, true),
        Field::new("segment_end", DataType::Utf8, true),
        Field::new("events_written", DataType::UInt64, true),
        Field::new("events_lost", DataType::UInt64, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            segments
                .iter()
                .map(|s| s.path.to_string_lossy().into_owned()),
        )),
        text(keys::HOSTNAME),
        text(keys::KERNEL_RELEASE),
        text(keys::BOOT_ID),
        text(keys::SEGMENT_START),
        text(keys::SEGMENT_END),
        number(keys::EVENTS_WRITTEN),
        number(keys::EVENTS_LOST),
    ];
    for cause in LossCause::ALL {
        fields.push(Field::new(
            format!("lost_{}", cause.name()),
            DataType::UInt64,
            true,
        ));
        columns.push(number(&format!(
            "{}{}",
            keys::EVENTS_LOST_PREFIX,
            cause.name()
        )));
    }
    fields.push(Field::new("lost_disk_full", DataType::UInt64, true));
    columns.push(number(keys::EVENTS_LOST_DISK_FULL));
    fields.push(Field::new("stop_reason", DataType::Utf8, true));
    columns.push(text(keys::STOP_REASON));
    fields.push(Field::new("recorder_version", DataType::Utf8, true));
    columns.push(text(keys::RECORDER_VERSION));
    fields.push(Field::new("segment_seq", DataType::UInt64, true));
    columns.push(number(keys::SEGMENT_SEQ));
    for (name, key) in [
        ("upload_backlog_segments", keys::UPLOAD_BACKLOG_SEGMENTS),
        ("upload_backlog_bytes", keys::UPLOAD_BACKLOG_BYTES),
    ] {
        fields.push(Field::new(name, DataType::UInt64, true));
        columns.push(number(key));
    }
    for (name, key) in [
        ("time_min", keys::TIME_MIN),
        ("time_max", keys::TIME_MAX),
        ("recording_id", keys::RECORDING_ID),
        ("data_sha256", keys::DATA_SHA256),
        ("attach_mode", keys::ATTACH_MODE),
        ("attach_reason", keys::ATTACH_REASON),
        ("attach_points", keys::ATTACH_POINTS),
        ("ia32_covered", keys::IA32_COVERED),
    ] {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(text(key));
    }
    fields.push(Field::new("schema_version", DataType::UInt64, true));
    columns.push(number(keys::SCHEMA_VERSION));
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}
