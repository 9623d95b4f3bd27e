//! The scan: a BPF iterator over every open file of every process (`task_file`), printing one
//! [`ScanEntry`] for each that is a fanotify group. The recorder reads it at start and then
//! every second; it finds groups made before the recording, fds inherited, duplicated or
//! received, and groups whose last fd went away, in a few hundred microseconds for a machine's
//! thousands of files (walking `/proc/*/fd` costs a readlink each).
//!
//! A fanotify group's file is told by its operations, `fanotify_fops`. The first scan learns
//! the address from the recorder's own group (`OWN_GROUP_FD`, opened before the probe loads)
//! and prints nothing; every later one prints the groups.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_seq_write;
use fantrace_schema::record::{KernelOffset as K, SCAN_ENTRY_SIZE, ScanEntry};

use crate::call::RECORDER_TGID;
use crate::context::{self, kread_field};
use crate::maps::FANOTIFY_FOPS;

/// The recorder's own fanotify group fd. Set at load time.
#[unsafe(no_mangle)]
static OWN_GROUP_FD: u32 = u32::MAX;

/// `struct bpf_iter_meta`.
#[repr(C)]
pub struct IterMeta {
    seq: *mut c_void,
    session_id: u64,
    seq_num: u64,
}

/// `struct bpf_iter__task_file`, the iterator's context.
#[repr(C)]
pub struct TaskFileContext {
    meta: *const IterMeta,
    task: *const u8,
    fd: u32,
    file: *const u8,
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn group_scan(ctx: *const TaskFileContext) -> i32 {
    let ctx = unsafe { &*ctx };
    let (task, file) = (ctx.task, ctx.file);
    if task.is_null() || file.is_null() {
        return 0;
    }
    // The iterator's file is a BTF-typed pointer: a plain load, no helper call, which for the
    // tens of thousands of files of a busy host is most of the scan's cost.
    let op: u64 = context::load::<u64>(file, K::FileOp).unwrap_or(0);
    let tgid = context::tid_tgid(task).1;
    let Some(known) = FANOTIFY_FOPS.get_ptr_mut(0) else {
        return 0;
    };
    let fops = unsafe { *known };
    if fops == 0 {
        let own_tgid = unsafe { core::ptr::read_volatile(&RECORDER_TGID) };
        let own_fd = unsafe { core::ptr::read_volatile(&OWN_GROUP_FD) };
        if tgid == own_tgid && ctx.fd == own_fd {
            unsafe { *known = op };
        }
        return 0;
    }
    if op != fops {
        return 0;
    }
    let entry = ScanEntry {
        group: kread_field(file as u64, K::FilePrivateData).unwrap_or(0),
        tgid,
        fd: ctx.fd,
    };
    let seq = unsafe { (*ctx.meta).seq };
    unsafe {
        bpf_seq_write(
            seq.cast(),
            core::ptr::from_ref(&entry).cast::<c_void>(),
            SCAN_ENTRY_SIZE as u32,
        )
    };
    0
}
