//! Batch: ring-buffer items become Arrow rows.
use arrow::array::RecordBatch;
use fantrace_schema::arrow::{EventBuilder, ItemError, Origin, parse_item};
use fantrace_schema::record::{CallRecord, SYSCALL_EXIT};

use crate::enrich::Enricher;

/// Rows per batch handed to the writer; also the builders' preallocation. Small enough that a
/// batch is still in cache when the writer encodes it and the queue holds little memory.
pub const BATCH_ROWS: usize = 8_192;

pub struct Batcher {
    builder: EventBuilder,
    boot_to_wall_ns: i64,
    enricher: Enricher,
    /// This machine, as every row names it.
    origin: Origin,
}

impl Batcher {
    pub fn new(boot_to_wall_ns: i64, origin: Origin) -> Batcher {
        Batcher {
            builder: EventBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32, origin.clone()),
            boot_to_wall_ns,
            enricher: Enricher::default(),
            origin,
        }
    }

    /// Appends one ring-buffer item; returns it decoded for `--print`.
    pub fn push<'a>(&mut self, item: &'a [u8]) -> Result<(CallRecord, &'a [u8]), ItemError> {
        let (ev, path) = parse_item(item)?;
        let process = self.enricher.lookup(ev.pid);
        self.builder
            .append(&ev, path, self.boot_to_wall_ns, process);
        if ev.syscall == SYSCALL_EXIT {
            // The pid may be reused by another program from now on.
            self.enricher.forget(ev.pid);
        }
        Ok((ev, path))
    }

    pub fn boot_to_wall_ns(&self) -> i64 {
        self.boot_to_wall_ns
    }

    pub fn len(&self) -> usize {
        self.builder.len()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= BATCH_ROWS
    }

    /// The rows so far, in arrival order (the writer sorts each row group by time).
    pub fn take(&mut self) -> anyhow::Result<Option<RecordBatch>> {
        if self.builder.is_empty() {
            return Ok(None);
        }
        // A fresh builder starts at full capacity; a finished one would grow again from empty,
        // reallocating and copying every column several times per batch.
        let mut full = std::mem::replace(
            &mut self.builder,
            EventBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32, self.origin.clone()),
        );
        Ok(Some(full.finish()?))
    }
}
