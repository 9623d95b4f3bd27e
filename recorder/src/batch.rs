//! Batch: ring-buffer items become Arrow rows, handed on in time order.
use arrow::array::RecordBatch;
use arrow::compute::{sort_to_indices, take_record_batch};
use fantrace_schema::arrow::{EventBuilder, ItemError, parse_item};

/// Rows per batch handed to the writer; also the builders' preallocation.
pub const BATCH_ROWS: usize = 65_536;

pub struct Batcher {
    builder: EventBuilder,
    boot_to_wall_ns: i64,
}

impl Batcher {
    pub fn new(boot_to_wall_ns: i64) -> Batcher {
        Batcher {
            builder: EventBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32),
            boot_to_wall_ns,
        }
    }

    pub fn push(&mut self, item: &[u8]) -> Result<(), ItemError> {
        let (ev, path) = parse_item(item)?;
        self.builder.append(&ev, path, self.boot_to_wall_ns);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.builder.len()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= BATCH_ROWS
    }

    /// The rows so far sorted by entry time (records arrive in exit order, per CPU).
    pub fn take_sorted(&mut self) -> anyhow::Result<Option<RecordBatch>> {
        if self.builder.is_empty() {
            return Ok(None);
        }
        let batch = self.builder.finish()?;
        let order = sort_to_indices(batch.column(0), None, None)?;
        Ok(Some(take_record_batch(&batch, &order)?))
    }
}
