//! Batch: ring-buffer items become Arrow rows. Items pass through the kernel-state layer
//! (`state`), which adds what the kernel said about each call and rows of its own; rows come
//! out once per drained chunk (`settle`), when their paths are resolved.
use arrow::array::RecordBatch;
use fantrace_schema::arrow::{EventBuilder, ItemError, Origin};
use fantrace_schema::record::{CALL_RECORD_SIZE, CallRecord, ITEM_MARKS, SYSCALL_EXIT};

use crate::enrich::Enricher;
use crate::state::{KernelState, Row};

/// Rows per batch handed to the writer; also the builders' preallocation. Small enough that a
/// batch is still in cache when the writer encodes it and the queue holds little memory.
pub const BATCH_ROWS: usize = 8_192;

pub struct Batcher {
    builder: EventBuilder,
    boot_to_wall_ns: i64,
    enricher: Enricher,
    /// This machine, as every row names it.
    origin: Origin,
    pub state: KernelState,
}

/// One ring-buffer item: its header, and the path bytes (calls) or mark entries (state items)
/// after it.
pub fn split_item(item: &[u8]) -> Result<(CallRecord, &[u8]), ItemError> {
    if item.len() < CALL_RECORD_SIZE {
        return Err(ItemError::Short(item.len()));
    }
    // SAFETY: CallRecord is repr(C) plain data of CALL_RECORD_SIZE bytes; the read is unaligned.
    let ev: CallRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    let tail = &item[CALL_RECORD_SIZE..];
    if ev.syscall >= ITEM_MARKS {
        return Ok((ev, tail));
    }
    if tail.len() < ev.path_len as usize {
        return Err(ItemError::PathPastEnd {
            path_len: ev.path_len,
            have: tail.len(),
        });
    }
    Ok((ev, &tail[..ev.path_len as usize]))
}

impl Batcher {
    pub fn new(boot_to_wall_ns: i64, origin: Origin, state: KernelState) -> Batcher {
        Batcher {
            builder: EventBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32, origin.clone()),
            boot_to_wall_ns,
            enricher: Enricher::default(),
            origin,
            state,
        }
    }

    /// Takes one ring-buffer item; returns it decoded, and whether it is a call (for
    /// `--print` and the count of calls recorded).
    pub fn push<'a>(&mut self, item: &'a [u8]) -> Result<(CallRecord, &'a [u8], bool), ItemError> {
        let (ev, tail) = split_item(item)?;
        self.state.on_item(&ev, tail);
        Ok((ev, tail, ev.syscall < ITEM_MARKS))
    }

    /// Appends the rows the kernel-state layer has ready.
    pub fn settle(&mut self) {
        for row in self.state.settle() {
            match row {
                Row::Call { ev, path, facts } => {
                    let process = self.enricher.lookup(ev.pid);
                    self.builder
                        .append(&ev, &path, self.boot_to_wall_ns, process, &facts);
                    if ev.syscall == SYSCALL_EXIT {
                        // The pid may be reused by another program from now on.
                        self.enricher.forget(ev.pid);
                    }
                }
                Row::State { kind, row } => {
                    let process = self.enricher.lookup(row.pid);
                    self.builder
                        .append_state(kind, &row, self.boot_to_wall_ns, process);
                }
            }
        }
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
