//! The probe's maps. Sizes here are defaults; the recorder resizes `EVENTS` at load time.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type},
    helpers::generated::bpf_task_storage_get,
    macros::{btf_map, map},
    maps::{HashMap, PerCpuArray, RingBuf},
};
use fantrace_schema::record::{
    CallRecord, GROUP_OWNERS_MAX, LossCause, MarkEntry, PendingCall, SNAPSHOT_MARKS,
};

/// Completed calls, drained by the recorder.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// The call a thread is inside, from syscall entry to exit: task-local storage, so entry
/// writes the arguments and path straight into the thread's own slot and exit finds it with
/// no hash lookup, insert or delete (with a hash map keyed by tid those cost more than the
/// rest of the probe together). The kernel frees a slot when its thread exits.
#[btf_map(name = "PENDING")]
pub static PENDING: TaskStorage<PendingCall> = TaskStorage::new();

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

/// Processes whose exit is recorded (tgid -> 1): filled at each successful `fanotify_init`
/// and by the recorder at start, emptied as they exit. A hash lookup is all any other exit
/// costs. Preallocated: kernels before 6.1 refuse tracing programs a map that allocates.
#[map(name = "GROUP_OWNERS")]
pub static GROUP_OWNERS: HashMap<u32, u8> = HashMap::with_max_entries(GROUP_OWNERS_MAX, 0);

/// Bytes each CPU has submitted to `EVENTS`: the exit program wakes the recorder each time
/// its CPU's count crosses another step.
#[map(name = "SUBMITTED")]
pub static SUBMITTED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// An item of the kernel's state (a group's marks, a mark the kernel destroyed) is built here,
/// per CPU, before it goes onto the ring: too large for the program's 512-byte stack.
#[repr(C)]
pub struct StateItem {
    pub head: CallRecord,
    pub entries: [MarkEntry; SNAPSHOT_MARKS],
}

#[map(name = "SNAPSHOT")]
pub static SNAPSHOT: PerCpuArray<StateItem> = PerCpuArray::with_max_entries(1, 0);

/// The kernel's `fanotify_fops`: a file with these operations is a fanotify group. The first
/// scan learns it from the recorder's own group (`scan.rs`).
#[map(name = "FANOTIFY_FOPS")]
pub static FANOTIFY_FOPS: aya_ebpf::maps::Array<u64> =
    aya_ebpf::maps::Array::with_max_entries(1, 0);

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

/// A `BPF_MAP_TYPE_TASK_STORAGE` map, declared the way BTF-defined maps are (aya-ebpf 0.2
/// ships inode and cgroup storage but not task storage). The fields are never read: their
/// types are the definition the loader reads from BTF.
#[repr(C)]
pub struct TaskStorage<V> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const V,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders patched by the loader and never dereferenced.
unsafe impl<V> Sync for TaskStorage<V> {}

impl<V> TaskStorage<V> {
    pub const fn new() -> Self {
        TaskStorage {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    /// `task` must be the BTF pointer `bpf_get_current_task_btf` returns.
    #[inline(always)]
    fn get(&self, task: *const u8, flags: u64) -> Option<&'static mut V> {
        // SAFETY: the helper takes the map and the BTF task pointer it was designed for; a
        // non-NULL result points at this task's value, valid until the program returns.
        unsafe {
            let p = bpf_task_storage_get(
                core::ptr::from_ref(self).cast_mut().cast::<c_void>(),
                task.cast_mut().cast(),
                core::ptr::null_mut(),
                flags,
            );
            p.cast::<V>().as_mut()
        }
    }

    /// The thread's value, created zeroed on first use; `None` when the kernel could not
    /// allocate it.
    #[inline(always)]
    pub fn get_or_create(&self, task: *const u8) -> Option<&'static mut V> {
        self.get(task, u64::from(BPF_LOCAL_STORAGE_GET_F_CREATE))
    }

    /// The thread's value, if it has one.
    #[inline(always)]
    pub fn get_existing(&self, task: *const u8) -> Option<&'static mut V> {
        self.get(task, 0)
    }
}
