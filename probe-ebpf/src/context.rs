//! Reads of the calling task's kernel structures: its ids, name, credentials, cgroup, parent,
//! mount and pid namespace. The field offsets come from the running kernel's BTF,
//! resolved by the recorder at load time, so the probe is not tied to one kernel's layout.
//!
//! The reads are plain loads through the BTF task pointer rather than helper calls: the
//! offsets live in read-only data the loader freezes, so the verifier knows each one as a
//! constant, checks the load against the kernel's BTF and turns it into a fault-safe load.
//! Helper calls for these reads were more than half of the probe's time per call.
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task_btf};
use fantrace_schema::record::{KernelOffset, TS_COMPAT};

/// Offsets indexed by `KernelOffset`; `u32::MAX` marks a field the kernel does not have.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: [u32; KernelOffset::COUNT] = [u32::MAX; KernelOffset::COUNT];

/// Deepest pid namespace nesting the kernel allows (MAX_PID_NS_LEVEL is 32).
const MAX_PID_LEVEL: u32 = 31;

/// Bounds a byte offset into `struct pid` (about 100 bytes plus 32 16-byte `upid` slots).
const MAX_PID_SLOT: usize = 0x7ff;

#[inline(always)]
pub fn offset(which: KernelOffset) -> Option<usize> {
    let v = unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS[which as usize]) };
    (v != u32::MAX).then_some(v as usize)
}

/// A load at a field offset the verifier can see as a constant.
#[inline(always)]
pub fn load<T>(base: *const u8, which: KernelOffset) -> Option<T> {
    if base.is_null() {
        return None;
    }
    let off = offset(which)?;
    Some(unsafe { core::ptr::read_volatile(base.wrapping_add(off).cast::<T>()) })
}

/// A kernel value at `addr`, read with `bpf_probe_read_kernel`: for pointers the verifier does
/// not type (an array slot, or anything reached through one), where a plain load is refused.
#[inline(always)]
pub fn kread<T>(addr: u64) -> Option<T> {
    if addr == 0 {
        return None;
    }
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// The address of a field of the structure at `base`.
#[inline(always)]
pub fn field(base: u64, which: KernelOffset) -> Option<u64> {
    if base == 0 {
        return None;
    }
    Some(base.wrapping_add(offset(which)? as u64))
}

/// [`kread`] of a field of the structure at `base`.
#[inline(always)]
pub fn kread_field<T>(base: u64, which: KernelOffset) -> Option<T> {
    kread(field(base, which)?)
}

/// The current task, as the BTF-typed pointer the loads above need.
#[inline(always)]
pub fn task() -> *const u8 {
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// The thread id and the process id (tgid), as the initial pid namespace numbers them.
#[inline(always)]
pub fn tid_tgid(task: *const u8) -> (u32, u32) {
    (
        load::<u32>(task, KernelOffset::TaskPid).unwrap_or(0),
        load::<u32>(task, KernelOffset::TaskTgid).unwrap_or(0),
    )
}

/// The id of the task's cgroup v2, as `bpf_get_current_cgroup_id` reads it
/// (`task->cgroups->dfl_cgrp->kn->id`).
#[inline(always)]
pub fn cgroup_id(task: *const u8) -> u64 {
    let css_set: *const u8 = load(task, KernelOffset::TaskCgroups).unwrap_or(core::ptr::null());
    let cgroup: *const u8 = load(css_set, KernelOffset::CssSetDflCgrp).unwrap_or(core::ptr::null());
    let kn: *const u8 = load(cgroup, KernelOffset::CgroupKn).unwrap_or(core::ptr::null());
    load::<u64>(kn, KernelOffset::KernfsNodeId).unwrap_or(0)
}

/// The task's name, as `bpf_get_current_comm` gives it but without the helper's copy.
#[inline(always)]
pub fn comm(task: *const u8) -> [u8; 16] {
    let lo = load::<u64>(task, KernelOffset::TaskComm).unwrap_or(0);
    let hi = offset(KernelOffset::TaskComm)
        .map(|o| unsafe { core::ptr::read_volatile(task.wrapping_add(o + 8).cast::<u64>()) })
        .unwrap_or(0);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&lo.to_ne_bytes());
    out[8..].copy_from_slice(&hi.to_ne_bytes());
    out
}

/// The real uid and gid as the initial user namespace sees them, which is what
/// `bpf_get_current_uid_gid` returns too (kuids are initial-namespace ids).
#[inline(always)]
pub fn uid_gid(task: *const u8) -> (u32, u32) {
    let cred: *const u8 = load(task, KernelOffset::TaskCred).unwrap_or(core::ptr::null());
    (
        load::<u32>(cred, KernelOffset::CredUid).unwrap_or(u32::MAX),
        load::<u32>(cred, KernelOffset::CredGid).unwrap_or(u32::MAX),
    )
}

/// Whether the task is inside an ia32 syscall (the kernel's `in_ia32_syscall()`); false
/// when the kernel has no such field (no ia32 emulation).
#[inline(always)]
pub fn in_ia32_syscall(task: *const u8) -> bool {
    load::<u32>(task, KernelOffset::TaskThreadInfoStatus).is_some_and(|s| s & TS_COMPAT != 0)
}

/// Whether the task is its process's last thread to exit (`signal->live` already 0): the
/// moment its fd table, and with it its fanotify groups, goes. Where the kernel's BTF lacks
/// the counter, the thread-group leader's exit stands in.
#[inline(always)]
pub fn process_dead(task: *const u8, tid: u32, tgid: u32) -> bool {
    let signal: *const u8 = load(task, KernelOffset::TaskSignal).unwrap_or(core::ptr::null());
    match load::<i32>(signal, KernelOffset::SignalLive) {
        Some(live) => live == 0,
        None => tid == tgid,
    }
}

/// The wait status the task exits with; 0 if unreadable.
#[inline(always)]
pub fn exit_code(task: *const u8) -> i32 {
    load::<i32>(task, KernelOffset::TaskExitCode).unwrap_or(0)
}

pub struct TaskContext {
    pub ppid: u32,
    pub mnt_ns: u32,
    pub pid_ns: u32,
}

#[inline(always)]
pub fn namespaces(task: *const u8) -> TaskContext {
    let parent: *const u8 = load(task, KernelOffset::TaskRealParent).unwrap_or(core::ptr::null());
    let ppid = load::<u32>(parent, KernelOffset::TaskTgid).unwrap_or(0);
    let nsproxy: *const u8 = load(task, KernelOffset::TaskNsproxy).unwrap_or(core::ptr::null());
    let mnt: *const u8 = load(nsproxy, KernelOffset::NsproxyMntNs).unwrap_or(core::ptr::null());
    let mnt_ns = load::<u32>(mnt, KernelOffset::MntNsInum).unwrap_or(0);
    TaskContext {
        ppid,
        mnt_ns,
        pid_ns: active_pid_ns(task).unwrap_or(0),
    }
}

/// `task_active_pid_ns(task)->ns.inum`: the namespace of the task's pid at its own level.
#[inline(always)]
fn active_pid_ns(task: *const u8) -> Option<u32> {
    let pid: *const u8 = load(task, KernelOffset::TaskThreadPid)?;
    let level = load::<u32>(pid, KernelOffset::PidLevel)?.min(MAX_PID_LEVEL);
    let numbers = offset(KernelOffset::PidNumbers)?;
    let upid_ns = offset(KernelOffset::UpidNs)?;
    let inum = offset(KernelOffset::PidNsInum)?;
    if level == 0 {
        // The initial pid namespace (every process outside containers): constant offsets.
        let ns: *const u8 =
            unsafe { core::ptr::read_volatile(pid.wrapping_add(numbers + upid_ns).cast()) };
        if ns.is_null() {
            return None;
        }
        Some(unsafe { core::ptr::read_volatile(ns.wrapping_add(inum).cast()) })
    } else {
        // numbers[level] sits at a run-time offset, which only the helper may read, and what
        // it returns is a plain number to the verifier, so the namespace is read the same way.
        // Older verifiers (6.1) keep no bounds on a product of two registers, and refuse to add
        // an unbounded number to a pointer: the mask bounds it (a struct pid is far smaller).
        let upid_size = offset(KernelOffset::UpidSize)?;
        let slot = (numbers + level as usize * upid_size + upid_ns) & MAX_PID_SLOT;
        let ns =
            unsafe { bpf_probe_read_kernel(pid.wrapping_add(slot) as *const *const u8) }.ok()?;
        if ns.is_null() {
            return None;
        }
        unsafe { bpf_probe_read_kernel(ns.wrapping_add(inum) as *const u32) }.ok()
    }
}
