//! The probe's maps. Sizes here are defaults; the recorder resizes `EVENTS` at load time.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use fantrace_schema::record::{LossCause, PendingCall};

/// Completed calls, drained by the recorder.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Calls between syscall entry and exit, by thread id. Not preallocated: each entry holds a
/// full PATH_MAX buffer, and only threads inside `fanotify_mark` at the same moment need one.
#[map(name = "PENDING")]
pub static PENDING: HashMap<u32, PendingCall> =
    HashMap::with_max_entries(65536, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

// In-kernel filters (key -> FILTER_INCLUDE / FILTER_EXCLUDE), filled by the recorder before it
// attaches; a filtered call costs no ring-buffer space.
#[map(name = "PID_FILTER")]
pub static PID_FILTER: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
#[map(name = "UID_FILTER")]
pub static UID_FILTER: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
#[map(name = "COMM_FILTER")]
pub static COMM_FILTER: HashMap<[u8; 16], u8> = HashMap::with_max_entries(1024, 0);
#[map(name = "CGROUP_FILTER")]
pub static CGROUP_FILTER: HashMap<u64, u8> = HashMap::with_max_entries(1024, 0);

/// Per-CPU scratch where the entry record is built: it is too large for the 512-byte stack.
#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<PendingCall> = PerCpuArray::with_max_entries(1, 0);

/// Calls the probe could not deliver, per CPU, indexed by `LossCause`.
#[map(name = "LOST")]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LossCause::COUNT, 0);

#[inline(always)]
pub fn count_lost(cause: LossCause) {
    if let Some(slot) = LOST.get_ptr_mut(cause as u32) {
        // Per-CPU slot and tracepoint programs do not nest on one CPU: a plain add is exact.
        unsafe { *slot += 1 };
    }
}
