//! Reads of the calling task's kernel structures: parent, mount and pid namespace. The field
//! offsets come from the running kernel's BTF, resolved by the recorder at load time, so the
//! probe is not tied to one kernel's layout.
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use fantrace_schema::record::KernelOffset;

/// Offsets indexed by `KernelOffset`; `u32::MAX` marks a field the kernel does not have.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: [u32; KernelOffset::COUNT] = [u32::MAX; KernelOffset::COUNT];

/// Deepest pid namespace nesting the kernel allows (MAX_PID_NS_LEVEL is 32).
const MAX_PID_LEVEL: u32 = 31;

#[inline(always)]
fn offset(which: KernelOffset) -> Option<usize> {
    let v = unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS[which as usize]) };
    (v != u32::MAX).then_some(v as usize)
}

#[inline(always)]
fn read_at<T>(base: *const u8, which: KernelOffset) -> Option<T> {
    if base.is_null() {
        return None;
    }
    let off = offset(which)?;
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }.ok()
}

pub struct TaskContext {
    pub ppid: u32,
    pub mnt_ns: u32,
    pub pid_ns: u32,
}

#[inline(always)]
pub fn current() -> TaskContext {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent: *const u8 =
        read_at(task, KernelOffset::TaskRealParent).unwrap_or(core::ptr::null());
    let ppid = read_at::<u32>(parent, KernelOffset::TaskTgid).unwrap_or(0);
    let nsproxy: *const u8 = read_at(task, KernelOffset::TaskNsproxy).unwrap_or(core::ptr::null());
    let mnt: *const u8 = read_at(nsproxy, KernelOffset::NsproxyMntNs).unwrap_or(core::ptr::null());
    let mnt_ns = read_at::<u32>(mnt, KernelOffset::MntNsInum).unwrap_or(0);
    TaskContext {
        ppid,
        mnt_ns,
        pid_ns: active_pid_ns(task).unwrap_or(0),
    }
}

/// `task_active_pid_ns(task)->ns.inum`: the namespace of the task's pid at its own level.
#[inline(always)]
fn active_pid_ns(task: *const u8) -> Option<u32> {
    let pid: *const u8 = read_at(task, KernelOffset::TaskThreadPid)?;
    let level = read_at::<u32>(pid, KernelOffset::PidLevel)?.min(MAX_PID_LEVEL);
    let numbers = offset(KernelOffset::PidNumbers)?;
    let upid_size = offset(KernelOffset::UpidSize)?;
    let upid_ns = offset(KernelOffset::UpidNs)?;
    let slot = numbers + level as usize * upid_size + upid_ns;
    let ns: *const u8 =
        unsafe { bpf_probe_read_kernel(pid.wrapping_add(slot) as *const *const u8) }.ok()?;
    read_at::<u32>(ns, KernelOffset::PidNsInum)
}
