//! What every attach mode shares: at entry, the filters, the caller's context and the
//! arguments into the thread's pending record (with the pathname read from user memory); at
//! exit, the return value and the submission to the ring buffer. The entry points in
//! `tracepoint.rs`, `raw_syscalls.rs` and `fentry.rs` only find the arguments.
use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_user, bpf_probe_read_user_str_bytes},
};
use fantrace_schema::record::{
    Abi, CALL_RECORD_SIZE, CallRecord, FILTER_EXCLUDE, FILTER_INCLUDE, FilterKind, LossCause,
    NO_ABI, PATH_BUF, PathStatus, PendingCall, SYSCALL_EXIT, SYSCALL_INIT, SYSCALL_MARK,
};

use crate::maps::{
    CGROUP_FILTER, COMM_FILTER, EVENTS, GROUP_OWNERS, PENDING, PID_FILTER, SUBMITTED, UID_FILTER,
    count_lost,
};
use crate::{context, files, snapshot};

/// The recorder's own tgid; its calls are not recorded. Set at load time.
#[unsafe(no_mangle)]
pub static RECORDER_TGID: u32 = 0;

/// The exit program wakes the recorder when its record takes the bytes its CPU has submitted
/// past a multiple of this. Set at load time.
#[unsafe(no_mangle)]
static WAKEUP_STEP: u64 = 0;

/// FilterKind bits: for each, record only keys marked FILTER_INCLUDE. Set at load time.
#[unsafe(no_mangle)]
static INCLUDE_ONLY: u8 = 0;

/// FilterKind bits of the filter maps holding any key. Set at load time.
#[unsafe(no_mangle)]
static FILTERS_IN_USE: u8 = 0;

/// `fanotify_mark(2)`'s arguments, however the entry point found them.
pub struct MarkArgs {
    pub fanotify_fd: i32,
    pub flags: u32,
    pub mask: u64,
    pub dirfd: i32,
    pub pathname: *const u8,
}

/// `fanotify_init(2)`'s arguments.
pub struct InitArgs {
    pub flags: u32,
    pub event_f_flags: u32,
}

/// The part of syscall entry both syscalls share: filters, then time and caller context into
/// the thread's pending record, with the entry time to set last. `None` when the caller is not
/// recorded (or, counted as lost, when the kernel could not allocate the record). The record
/// is live once `enter_ns` is non-zero, so each entry sets it as its last step: an entry that
/// bails out half-way leaves nothing for exit to send.
#[inline(always)]
fn begin(task: *const u8, abi: Abi) -> Option<(&'static mut PendingCall, u64)> {
    let enter_ns = unsafe { bpf_ktime_get_boot_ns() };
    // The caller's ids, name and cgroup are loads through the task pointer: a helper call
    // for each cost more than all the loads together.
    let (tid, tgid) = context::tid_tgid(task);
    if tgid == unsafe { core::ptr::read_volatile(&RECORDER_TGID) } {
        return None;
    }
    let (uid, gid) = context::uid_gid(task);
    let cgroup_id = context::cgroup_id(task);
    let comm = context::comm(task);
    if filtered_out(tgid, uid, &comm, cgroup_id) {
        return None;
    }
    let Some(pending) = PENDING.get_or_create(task) else {
        count_lost(LossCause::PendingFull);
        return None;
    };
    let ev = &mut pending.event;
    ev.enter_ns = 0;
    ev.exit_ns = 0;
    ev.ret = 0;
    ev.pid = tgid;
    ev.tid = tid;
    ev.uid = uid;
    ev.gid = gid;
    ev.cgroup_id = cgroup_id;
    ev.comm = comm;
    let ns = context::namespaces(task);
    ev.ppid = ns.ppid;
    ev.mnt_ns = ns.mnt_ns;
    ev.pid_ns = ns.pid_ns;
    ev.abi = abi as u8;
    ev.group = 0;
    ev.obj_ino = 0;
    ev.obj_dev = 0;
    ev.obj_mnt_id = 0;
    ev.obj_mode = 0;
    ev.obj_source = 0;
    Some((pending, enter_ns))
}

/// Entry of a `fanotify_mark(2)` call.
#[inline(always)]
pub fn enter_mark(task: *const u8, args: &MarkArgs, abi: Abi) {
    let Some((pending, enter_ns)) = begin(task, abi) else {
        return;
    };
    let ev = &mut pending.event;
    ev.syscall = SYSCALL_MARK;
    ev.fanotify_fd = args.fanotify_fd;
    ev.flags = args.flags;
    ev.mask = args.mask;
    ev.dirfd = args.dirfd;
    let path_ptr = args.pathname;
    let (len, status) = if path_ptr.is_null() {
        (0, PathStatus::Null)
    } else {
        match unsafe { bpf_probe_read_user_str_bytes(path_ptr, &mut pending.path) } {
            Ok(bytes) if bytes.len() == PATH_BUF - 1 => {
                // The buffer is full: a longer string was cut. Look at the byte the terminating
                // NUL replaced to tell a path of exactly PATH_BUF-1 bytes from a truncated one.
                let next = unsafe { bpf_probe_read_user(path_ptr.add(PATH_BUF - 1)) };
                match next {
                    Ok(0u8) => (bytes.len(), PathStatus::Ok),
                    _ => (bytes.len(), PathStatus::Truncated),
                }
            }
            Ok(bytes) => (bytes.len(), PathStatus::Ok),
            Err(_) => (0, PathStatus::Fault),
        }
    };
    let ev = &mut pending.event;
    ev.path_len = len as u16;
    ev.path_status = status as u8;
    // A NULL pathname marks the dirfd's own object, which the open file says at once. (A
    // hook on the kernel's resolution, where there is one, confirms it later in the call.)
    if status == PathStatus::Null && args.dirfd >= 0 {
        if let Some(facts) = files::object_of_fd(task, args.dirfd) {
            files::record_object(ev, &facts, files::FROM_DIRFD);
        }
    }
    ev.enter_ns = enter_ns;
}

/// Entry of a `fanotify_init(2)` call: `flags` and `mask` hold its two arguments, and there
/// is no path.
#[inline(always)]
pub fn enter_init(task: *const u8, args: &InitArgs, abi: Abi) {
    let Some((pending, enter_ns)) = begin(task, abi) else {
        return;
    };
    let ev = &mut pending.event;
    ev.syscall = SYSCALL_INIT;
    ev.fanotify_fd = -1;
    ev.dirfd = 0;
    ev.path_len = 0;
    ev.path_status = PathStatus::Null as u8;
    ev.flags = args.flags;
    ev.mask = u64::from(args.event_f_flags);
    ev.enter_ns = enter_ns;
}

/// Whether a filter drops the call: excluded by any filter, or missing from a filter that
/// only includes. Values are read as plain u8: the verifier rejects the code LLVM emits for
/// comparing Option<u8> (it reads a register left unset on the None path).
#[inline(always)]
fn filtered_out(tgid: u32, uid: u32, comm: &[u8; 16], cgroup_id: u64) -> bool {
    let in_use = unsafe { core::ptr::read_volatile(&FILTERS_IN_USE) };
    let include_only = unsafe { core::ptr::read_volatile(&INCLUDE_ONLY) };
    let drops = |kind: FilterKind, mark: Option<&u8>| -> bool {
        let mark: u8 = match mark {
            Some(v) => *v,
            None => 0,
        };
        mark == FILTER_EXCLUDE || (include_only & (kind as u8) != 0 && mark != FILTER_INCLUDE)
    };
    let used = |kind: FilterKind| in_use & (kind as u8) != 0;
    (used(FilterKind::Pid) && drops(FilterKind::Pid, unsafe { PID_FILTER.get(tgid) }))
        || (used(FilterKind::Uid) && drops(FilterKind::Uid, unsafe { UID_FILTER.get(uid) }))
        || (used(FilterKind::Comm) && drops(FilterKind::Comm, unsafe { COMM_FILTER.get(comm) }))
        || (used(FilterKind::Cgroup)
            && drops(FilterKind::Cgroup, unsafe { CGROUP_FILTER.get(cgroup_id) }))
}

/// Exit of either syscall: the return value and the group the call was made on go into the
/// thread's live record, which is submitted with only the path bytes read. A successful mark
/// call first puts the group's marks, as the kernel now holds them, on the ring.
#[inline(always)]
pub fn exit(task: *const u8, ret: i64) {
    let exit_ns = unsafe { bpf_ktime_get_boot_ns() };
    // No live record: the call began before the probe was attached, belongs to the recorder
    // or a filtered process, or its entry was already counted as lost.
    let Some(pending) = PENDING.get_existing(task) else {
        return;
    };
    if pending.event.enter_ns == 0 {
        return;
    }
    pending.event.exit_ns = exit_ns;
    pending.event.ret = ret;
    if pending.event.syscall == SYSCALL_INIT {
        if ret >= 0 {
            pending.event.group = files::group_at(task, ret as i32, true);
            // The process now owns a group: its exit may end the group, so it is recorded.
            if GROUP_OWNERS.insert(&pending.event.pid, &1, 0).is_err() {
                count_lost(LossCause::OwnersFull);
            }
        }
    } else {
        let group = files::group_at(task, pending.event.fanotify_fd, ret == 0);
        pending.event.group = group;
        if ret == 0 && group != 0 {
            snapshot::submit_marks(&pending.event, group);
        }
    }
    // Mask the length so the verifier can prove the copy stays inside the map value.
    let path_len = (pending.event.path_len as usize) & (PATH_BUF - 1);
    let size = CALL_RECORD_SIZE + path_len;
    let bytes =
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(&*pending).cast::<u8>(), size) };
    submit(bytes, true);
    pending.event.enter_ns = 0;
}

/// A record of `kind` about the current task, with no call behind it: the time, the task's
/// ids, name, credentials, cgroup and namespaces.
#[inline(always)]
pub fn task_record(task: *const u8, kind: u8) -> CallRecord {
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let (tid, tgid) = context::tid_tgid(task);
    let (uid, gid) = context::uid_gid(task);
    let ns = context::namespaces(task);
    CallRecord {
        enter_ns: now,
        exit_ns: now,
        cgroup_id: context::cgroup_id(task),
        pid: tgid,
        tid,
        uid,
        gid,
        ppid: ns.ppid,
        mnt_ns: ns.mnt_ns,
        pid_ns: ns.pid_ns,
        abi: NO_ABI,
        fanotify_fd: -1,
        path_status: PathStatus::Null as u8,
        syscall: kind,
        comm: context::comm(task),
        ..CallRecord::default()
    }
}

/// The exit of a group owner's last thread (the caller checked): one record, no path.
#[inline(always)]
pub fn owner_exit(task: *const u8, tgid: u32) {
    let mut record = task_record(task, SYSCALL_EXIT);
    if filtered_out(tgid, record.uid, &record.comm, record.cgroup_id) {
        return;
    }
    record.ret = i64::from(context::exit_code(task));
    submit(as_bytes(&record), true);
}

/// A record's bytes.
#[inline(always)]
pub fn as_bytes(record: &CallRecord) -> &[u8] {
    unsafe {
        core::slice::from_raw_parts(core::ptr::from_ref(record).cast::<u8>(), CALL_RECORD_SIZE)
    }
}

/// Puts one item on the ring buffer, or counts it lost: as a lost record when it is a call or
/// an exit (`record`), as a lost state read otherwise.
#[inline(always)]
pub fn submit(bytes: &[u8], record: bool) {
    let size = bytes.len();
    // Only the record that crosses a step wakes the recorder. Waking for every record past a
    // threshold (until the recorder caught up) raised an interrupt per call in a storm: a third
    // of the calling CPU's time in a VM, where each one is a VM exit. A per-CPU count costs a
    // few loads where asking the ring how much is unread costs a helper call.
    let step = unsafe { core::ptr::read_volatile(&WAKEUP_STEP) }.max(1);
    let wake = match SUBMITTED.get_ptr_mut(0) {
        Some(submitted) => {
            let before = unsafe { *submitted };
            let after = before + size as u64;
            unsafe { *submitted = after };
            if before / step != after / step {
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            }
        }
        None => BPF_RB_FORCE_WAKEUP,
    };
    if EVENTS.output::<[u8]>(bytes, wake as u64).is_err() {
        count_lost(if record {
            LossCause::RingFull
        } else {
            LossCause::StateRingFull
        });
    }
}
