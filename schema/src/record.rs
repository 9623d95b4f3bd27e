//! The `#[repr(C)]` records that cross the BPF ring buffer.
//!
//! A ring-buffer item is a [`CallRecord`] immediately followed by `path_len` bytes of the
//! pathname (no terminating NUL). Only the bytes actually read are copied, so a short path costs
//! a short record. One record type serves both syscalls, `fanotify_mark(2)` and its companion
//! `fanotify_init(2)` (whose fd the marks name), and the exit of a process that created a
//! fanotify group (which ends the group's marks), told apart by [`CallRecord::syscall`].

/// Size of the probe's pathname buffer: a full `PATH_MAX`, including the terminating NUL.
pub const PATH_BUF: usize = 4096;

/// Names of the maps and programs in the probe object, shared so that a rename cannot split the
/// two sides.
pub mod names {
    pub const EVENTS_MAP: &str = "EVENTS";
    pub const LOST_MAP: &str = "LOST";
    // Syscall tracepoint programs (`--attach tracepoint --ia32 off`).
    pub const ENTER_PROGRAM: &str = "fanotify_mark_enter";
    pub const EXIT_PROGRAM: &str = "fanotify_mark_exit";
    pub const INIT_ENTER_PROGRAM: &str = "fanotify_init_enter";
    pub const INIT_EXIT_PROGRAM: &str = "fanotify_init_exit";
    /// Raw `sys_enter`/`sys_exit` programs (BTF tracepoints), `--attach tracepoint`: they see
    /// calls of both ABIs, where the syscall tracepoints skip ia32 ones.
    pub const RAW_ENTER_PROGRAM: &str = "raw_sys_enter";
    pub const RAW_EXIT_PROGRAM: &str = "raw_sys_exit";
    pub const RAW_ENTER_TRACEPOINT: &str = "sys_enter";
    pub const RAW_EXIT_TRACEPOINT: &str = "sys_exit";
    // fentry/fexit programs (`--attach fentry`), one pair per syscall entry point; the
    // function each attaches to is resolved from the running kernel's BTF.
    pub const MARK_X64_FENTRY: &str = "mark_x64_fentry";
    pub const MARK_X64_FEXIT: &str = "mark_x64_fexit";
    pub const MARK_IA32_FENTRY: &str = "mark_ia32_fentry";
    pub const MARK_IA32_FEXIT: &str = "mark_ia32_fexit";
    pub const INIT_X64_FENTRY: &str = "init_x64_fentry";
    pub const INIT_X64_FEXIT: &str = "init_x64_fexit";
    pub const INIT_IA32_FENTRY: &str = "init_ia32_fentry";
    pub const INIT_IA32_FEXIT: &str = "init_ia32_fexit";
    /// The `sched_process_exit` BTF tracepoint program, attached in every mode: it records
    /// the exit of processes in [`GROUP_OWNERS_MAP`].
    pub const OWNER_EXIT_PROGRAM: &str = "group_owner_exit";
    pub const OWNER_EXIT_TRACEPOINT: &str = "sched_process_exit";
    /// Processes (tgid -> 1) whose exit is recorded: every one that created a fanotify group
    /// while recording, and those holding a group's fd when the recorder started.
    pub const GROUP_OWNERS_MAP: &str = "GROUP_OWNERS";
    /// Global holding the recorder's own tgid, whose calls are never recorded.
    pub const RECORDER_TGID_GLOBAL: &str = "RECORDER_TGID";
    /// Global holding the number of unread ring-buffer bytes past which the probe wakes the
    /// recorder; below it the recorder polls on its own timer.
    pub const WAKEUP_STEP_GLOBAL: &str = "WAKEUP_STEP";
    /// In-kernel filters, key -> [`super::FILTER_INCLUDE`] or [`super::FILTER_EXCLUDE`].
    pub const PID_FILTER_MAP: &str = "PID_FILTER";
    pub const UID_FILTER_MAP: &str = "UID_FILTER";
    pub const COMM_FILTER_MAP: &str = "COMM_FILTER";
    pub const CGROUP_FILTER_MAP: &str = "CGROUP_FILTER";
    /// Global: a [`super::FilterKind`] bit set; for each set bit only keys marked include in
    /// that filter's map are recorded.
    pub const INCLUDE_ONLY_GLOBAL: &str = "INCLUDE_ONLY";
    /// Global: a [`super::FilterKind`] bit set of the filter maps holding any key; the probe
    /// looks up no other.
    pub const FILTERS_IN_USE_GLOBAL: &str = "FILTERS_IN_USE";
    /// Global `[u32; KernelOffset::COUNT]`: field offsets in kernel structures, resolved from
    /// the running kernel's BTF by the recorder at load time.
    pub const KERNEL_OFFSETS_GLOBAL: &str = "KERNEL_OFFSETS";
    pub const TRACEPOINT_CATEGORY: &str = "syscalls";
    pub const ENTER_TRACEPOINT: &str = "sys_enter_fanotify_mark";
    pub const EXIT_TRACEPOINT: &str = "sys_exit_fanotify_mark";
    pub const INIT_ENTER_TRACEPOINT: &str = "sys_enter_fanotify_init";
    pub const INIT_EXIT_TRACEPOINT: &str = "sys_exit_fanotify_init";
}

/// Filter map value: record calls with this key (the others are dropped when the filter's
/// include-only bit is set).
pub const FILTER_INCLUDE: u8 = 1;
/// Filter map value: never record calls with this key.
pub const FILTER_EXCLUDE: u8 = 2;

/// The filter dimensions; each is a bit of the `INCLUDE_ONLY` global.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    Pid = 1,
    Uid = 2,
    Comm = 4,
    Cgroup = 8,
}

/// What the probe could tell about the `pathname` argument. NULL, empty, unreadable and
/// truncated paths must never look alike.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathStatus {
    /// The string was read completely (it may be empty).
    Ok = 0,
    /// The pointer was NULL.
    Null = 1,
    /// The user pointer could not be read.
    Fault = 2,
    /// Longer than [`PATH_BUF`] - 1 bytes; the prefix is kept.
    Truncated = 3,
}

impl PathStatus {
    pub const ALL: [PathStatus; 4] = [Self::Ok, Self::Null, Self::Fault, Self::Truncated];

    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Ok),
            1 => Some(Self::Null),
            2 => Some(Self::Fault),
            3 => Some(Self::Truncated),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Null => "null",
            Self::Fault => "fault",
            Self::Truncated => "truncated",
        }
    }
}

/// Kernel structure fields the probe reads, as indexes into the `KERNEL_OFFSETS` global. The
/// recorder resolves each from the running kernel's BTF (`recorder/src/btf.rs` names the
/// structures and fields); `u32::MAX` marks a field the kernel does not have.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelOffset {
    TaskPid = 0,
    TaskTgid = 1,
    TaskComm = 2,
    TaskCred = 3,
    CredUid = 4,
    CredGid = 5,
    /// `task->cgroups->dfl_cgrp->kn->id`: the cgroup v2 id.
    TaskCgroups = 6,
    CssSetDflCgrp = 7,
    CgroupKn = 8,
    KernfsNodeId = 9,
    TaskRealParent = 10,
    TaskNsproxy = 11,
    TaskThreadPid = 12,
    NsproxyMntNs = 13,
    MntNsInum = 14,
    PidLevel = 15,
    PidNumbers = 16,
    UpidNs = 17,
    /// The size of `struct upid` (the stride of `pid.numbers`).
    UpidSize = 18,
    PidNsInum = 19,
    /// `task_struct.thread_info.status`: holds [`TS_COMPAT`] during an ia32 syscall.
    TaskThreadInfoStatus = 20,
    // `struct pt_regs` (x86-64): the registers a syscall's arguments arrive in. Native calls
    // use di, si, dx, r10, r8; ia32 calls bx, cx, dx, si, di, bp; `orig_ax` is the syscall
    // number at exit.
    PtRegsDi = 21,
    PtRegsSi = 22,
    PtRegsDx = 23,
    PtRegsR10 = 24,
    PtRegsR8 = 25,
    PtRegsBx = 26,
    PtRegsCx = 27,
    PtRegsBp = 28,
    PtRegsOrigAx = 29,
    /// `task->signal->live`: the number of live threads of the process, 0 once its last
    /// thread is exiting (decremented before `sched_process_exit` fires).
    TaskSignal = 30,
    SignalLive = 31,
    /// `task_struct.exit_code`: the wait status the process exits with.
    TaskExitCode = 32,
}

impl KernelOffset {
    pub const COUNT: usize = 33;
    pub const ALL: [KernelOffset; Self::COUNT] = [
        Self::TaskPid,
        Self::TaskTgid,
        Self::TaskComm,
        Self::TaskCred,
        Self::CredUid,
        Self::CredGid,
        Self::TaskCgroups,
        Self::CssSetDflCgrp,
        Self::CgroupKn,
        Self::KernfsNodeId,
        Self::TaskRealParent,
        Self::TaskNsproxy,
        Self::TaskThreadPid,
        Self::NsproxyMntNs,
        Self::MntNsInum,
        Self::PidLevel,
        Self::PidNumbers,
        Self::UpidNs,
        Self::UpidSize,
        Self::PidNsInum,
        Self::TaskThreadInfoStatus,
        Self::PtRegsDi,
        Self::PtRegsSi,
        Self::PtRegsDx,
        Self::PtRegsR10,
        Self::PtRegsR8,
        Self::PtRegsBx,
        Self::PtRegsCx,
        Self::PtRegsBp,
        Self::PtRegsOrigAx,
        Self::TaskSignal,
        Self::SignalLive,
        Self::TaskExitCode,
    ];

    /// The fields without which no call can be recorded correctly (the caller's ids, name and
    /// cgroup); a missing optional one (parent, namespaces) only leaves its columns 0. The
    /// register and `thread_info` fields are needed by the attach modes that read arguments
    /// from saved registers; the recorder checks them when it picks a mode.
    pub const fn required(self) -> bool {
        matches!(
            self,
            Self::TaskPid
                | Self::TaskTgid
                | Self::TaskComm
                | Self::TaskCred
                | Self::CredUid
                | Self::CredGid
                | Self::TaskCgroups
                | Self::CssSetDflCgrp
                | Self::CgroupKn
                | Self::KernfsNodeId
        )
    }
}

/// Why the probe could not deliver a call; the index into the per-CPU `LOST` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossCause {
    /// The ring buffer had no room for the record.
    RingFull = 0,
    /// The kernel could not allocate the thread's in-flight record at syscall entry.
    PendingFull = 1,
    /// A process created a fanotify group but the map of group owners was full: its exit,
    /// one record, will not be delivered.
    OwnersFull = 2,
}

impl LossCause {
    pub const COUNT: u32 = 3;
    pub const ALL: [LossCause; 3] = [Self::RingFull, Self::PendingFull, Self::OwnersFull];

    pub const fn name(self) -> &'static str {
        match self {
            Self::RingFull => "ring_full",
            Self::PendingFull => "pending_full",
            Self::OwnersFull => "owners_full",
        }
    }
}

/// `CallRecord::syscall` of a `fanotify_mark(2)` call.
pub const SYSCALL_MARK: u8 = 0;
/// `CallRecord::syscall` of a `fanotify_init(2)` call: `flags` holds its `flags` argument,
/// `mask` its `event_f_flags`, `ret` the new fd; `fanotify_fd` is -1 and there is no path.
pub const SYSCALL_INIT: u8 = 1;
/// `CallRecord::syscall` of the exit of a process that created a fanotify group (the
/// `sched_process_exit` tracepoint, when its last thread exits): `ret` holds the exit status
/// as `wait(2)` reports it, `fanotify_fd` is -1, `abi` is [`NO_ABI`] and there is no path.
pub const SYSCALL_EXIT: u8 = 2;
/// `CallRecord::abi` of a record that is not a syscall (a process exit).
pub const NO_ABI: u8 = 0xff;
/// Capacity of the group-owner map: processes that created a fanotify group and are alive.
pub const GROUP_OWNERS_MAX: u32 = 16384;

/// The system-call ABI a call came in through: which syscall table, which registers hold the
/// arguments, how wide pointers are. A 64-bit process can make 32-bit (ia32) calls too
/// (`int $0x80`), and the syscall tracepoints do not show those.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    /// The native x86-64 syscall ABI (`syscall` instruction).
    X86_64 = 0,
    /// The 32-bit x86 ABI (`int $0x80`, `sysenter`): 32-bit pointers, and `fanotify_mark`'s
    /// 64-bit mask split into two 32-bit halves.
    Ia32 = 1,
}

impl Abi {
    pub const ALL: [Abi; 2] = [Self::X86_64, Self::Ia32];

    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::X86_64),
            1 => Some(Self::Ia32),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Ia32 => "ia32",
        }
    }
}

/// Syscall numbers, per ABI (arch/x86/entry/syscalls/syscall_{64,32}.tbl).
pub mod syscall_nr {
    pub const X86_64_FANOTIFY_INIT: i64 = 300;
    pub const X86_64_FANOTIFY_MARK: i64 = 301;
    pub const IA32_FANOTIFY_INIT: i64 = 338;
    pub const IA32_FANOTIFY_MARK: i64 = 339;
}

/// `thread_info.status` bit set while a task is inside an ia32 syscall (x86 `TS_COMPAT`);
/// cleared on the way back to user space, so it holds at both `sys_enter` and `sys_exit`.
pub const TS_COMPAT: u32 = 0x0002;

/// One completed `fanotify_mark(2)` (or `fanotify_init(2)`) call, as the probe submits it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CallRecord {
    /// `CLOCK_BOOTTIME` at syscall entry, in nanoseconds.
    pub enter_ns: u64,
    /// `CLOCK_BOOTTIME` at syscall exit, in nanoseconds.
    pub exit_ns: u64,
    pub mask: u64,
    /// The syscall's return value: 0 or -errno.
    pub ret: i64,
    pub cgroup_id: u64,
    /// Thread-group id (the process id user space sees), from the initial pid namespace.
    pub pid: u32,
    /// Thread id, from the initial pid namespace.
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Parent's tgid (real_parent), from the initial pid namespace; 0 if unreadable.
    pub ppid: u32,
    /// Inode number of the caller's mount namespace; 0 if unreadable.
    pub mnt_ns: u32,
    /// Inode number of the caller's pid namespace; 0 if unreadable.
    pub pid_ns: u32,
    /// An [`Abi`] value.
    pub abi: u8,
    pub _pad: [u8; 3],
    pub fanotify_fd: i32,
    pub flags: u32,
    pub dirfd: i32,
    /// Number of pathname bytes following this header in the ring-buffer item.
    pub path_len: u16,
    /// A [`PathStatus`] value.
    pub path_status: u8,
    /// [`SYSCALL_MARK`], [`SYSCALL_INIT`] or [`SYSCALL_EXIT`].
    pub syscall: u8,
    pub comm: [u8; 16],
}

/// Bytes of the fixed part of a ring-buffer item.
pub const CALL_RECORD_SIZE: usize = core::mem::size_of::<CallRecord>();

/// A call between entry and exit, kept by the probe per thread: the header and the full path
/// buffer the string is read into.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingCall {
    pub event: CallRecord,
    pub path: [u8; PATH_BUF],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), contain only integers and byte arrays, and have no padding the
    // compiler could leave uninitialised (the explicit `_pad` keeps `CallRecord` dense).
    unsafe impl aya::Pod for super::CallRecord {}
    unsafe impl aya::Pod for super::PendingCall {}
}

// The probe writes these with fixed offsets; a layout change must be a deliberate schema change.
const _: () = assert!(CALL_RECORD_SIZE == 104);
const _: () = assert!(CALL_RECORD_SIZE.is_multiple_of(8));
