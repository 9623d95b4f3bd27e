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
    /// fentry programs on functions inside the kernel's fanotify code (fentry mode only):
    /// the object a mark call resolved, a group's release, the kernel's own mark removals.
    pub const PATH_NOTIFY_FENTRY: &str = "path_notify_fentry";
    pub const PATH_NOTIFY_FUNCTION: &str = "security_path_notify";
    pub const GROUP_RELEASE_FENTRY: &str = "group_release_fentry";
    pub const GROUP_RELEASE_FUNCTION: &str = "fanotify_release";
    pub const MARK_DESTROY_FENTRY: &str = "mark_destroy_fentry";
    pub const MARK_DESTROY_FUNCTION: &str = "fsnotify_destroy_mark";
    /// The `task_file` BPF iterator that lists every fanotify group fd on the machine.
    pub const GROUP_SCAN_ITERATOR: &str = "group_scan";
    pub const GROUP_SCAN_TARGET: &str = "task_file";
    /// One-slot array holding the kernel's `fanotify_fops` address, which tells a fanotify
    /// group's file from any other; learnt by the first scan from the recorder's own group.
    pub const FANOTIFY_FOPS_MAP: &str = "FANOTIFY_FOPS";
    /// Global: the fd of the recorder's own fanotify group, which the first scan learns
    /// `fanotify_fops` from.
    pub const OWN_GROUP_FD_GLOBAL: &str = "OWN_GROUP_FD";
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
    // A task's open files: `task->files->fdt->fd[n]`, bounded by `fdt->max_fds`.
    TaskFiles = 33,
    FilesFdt = 34,
    FdtMaxFds = 35,
    FdtFd = 36,
    /// `file.f_path`, a `struct path` (`mnt`, `dentry`).
    FilePath = 37,
    PathMnt = 38,
    PathDentry = 39,
    /// `file.private_data`: a fanotify group's file points at its `struct fsnotify_group`.
    FilePrivateData = 40,
    FileOp = 41,
    DentryInode = 42,
    InodeIno = 43,
    InodeSb = 44,
    InodeMode = 45,
    SbDev = 46,
    /// `mount.mnt`: the `struct vfsmount` embedded in a `struct mount` (`real_mount()`).
    MountMnt = 47,
    MountId = 48,
    // A group's marks and what each one holds (`fs/notify/fdinfo.c` reads the same fields).
    GroupMarksList = 49,
    MarkGList = 50,
    MarkMask = 51,
    /// `ignore_mask` (Linux 6.0 and later) or `ignored_mask`.
    MarkIgnoreMask = 52,
    MarkFlags = 53,
    MarkConnector = 54,
    ConnType = 55,
    ConnObj = 56,
    /// Bytes to subtract from a connector's `obj` to reach the inode, mount or super block it
    /// belongs to: 0 where `obj` points at the object (Linux 6.9 and later; `mount.mnt` for a
    /// mount, whose `obj` is its vfsmount), the offset of the object's connector slot where it
    /// points at that slot (`i_fsnotify_marks`, `mnt_fsnotify_marks`, `s_fsnotify_marks`).
    ConnInodeAdjust = 57,
    ConnMountAdjust = 58,
    ConnSbAdjust = 59,
}

impl KernelOffset {
    pub const COUNT: usize = 60;
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
        Self::TaskFiles,
        Self::FilesFdt,
        Self::FdtMaxFds,
        Self::FdtFd,
        Self::FilePath,
        Self::PathMnt,
        Self::PathDentry,
        Self::FilePrivateData,
        Self::FileOp,
        Self::DentryInode,
        Self::InodeIno,
        Self::InodeSb,
        Self::InodeMode,
        Self::SbDev,
        Self::MountMnt,
        Self::MountId,
        Self::GroupMarksList,
        Self::MarkGList,
        Self::MarkMask,
        Self::MarkIgnoreMask,
        Self::MarkFlags,
        Self::MarkConnector,
        Self::ConnType,
        Self::ConnObj,
        Self::ConnInodeAdjust,
        Self::ConnMountAdjust,
        Self::ConnSbAdjust,
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

    /// The fields the kernel-state reads need (a call's group, the group's marks, the objects
    /// they are on): every one from [`KernelOffset::TaskFiles`] on. Without them the recorder
    /// cannot tell the kernel's marks and says so.
    pub const KERNEL_STATE: &[KernelOffset] =
        Self::ALL.as_slice().split_at(Self::TaskFiles as usize).1;
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
    /// A read of the kernel's state (a group's marks after a call, a group's release, a mark
    /// the kernel removed) found the ring buffer full. Not a call: the recorder reads the
    /// group's fdinfo instead, so what it missed reaches the capture as `mark_state` rows.
    StateRingFull = 3,
}

impl LossCause {
    pub const COUNT: u32 = 4;
    pub const ALL: [LossCause; 4] = [
        Self::RingFull,
        Self::PendingFull,
        Self::OwnersFull,
        Self::StateRingFull,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::RingFull => "ring_full",
            Self::PendingFull => "pending_full",
            Self::OwnersFull => "owners_full",
            Self::StateRingFull => "state_ring_full",
        }
    }

    /// Whether each loss of this cause is a record (a call or an exit) missing from the
    /// capture, which `events_lost` counts; a state read's loss is made good from fdinfo.
    pub const fn loses_a_record(self) -> bool {
        !matches!(self, Self::StateRingFull)
    }
}

/// `CallRecord::syscall` of a `fanotify_mark(2)` call.
pub const SYSCALL_MARK: u8 = 0;
/// `CallRecord::syscall` of a `fanotify_init(2)` call: `flags` holds its `flags` argument,
/// `mask` its `event_f_flags`, `ret` the new fd; `fanotify_fd` is -1 and there is no path.
pub const SYSCALL_INIT: u8 = 1;
/// `CallRecord::syscall` of the exit of a process that created or holds a fanotify group (the
/// `sched_process_exit` tracepoint, when its last thread exits): `ret` holds the exit status
/// as `wait(2)` reports it, `fanotify_fd` is -1, `abi` is [`NO_ABI`] and there is no path.
pub const SYSCALL_EXIT: u8 = 2;
/// `CallRecord::syscall` of the group's marks as the kernel holds them right after a
/// successful `fanotify_mark(2)` call, read by the probe before it submits the call: the
/// item that carries them goes onto the ring just ahead of the call's own, with the same
/// `tid` and `enter_ns`. `group` names the group, `ret` the number of [`MarkEntry`] that
/// follow the header, and `flags` is [`SNAPSHOT_COMPLETE`] when they are all of its marks.
pub const ITEM_MARKS: u8 = 3;
/// `CallRecord::syscall` of the release of a fanotify group's file, the moment the group ends
/// (fentry on `fanotify_release`): `group` names it, the caller fields the releasing task.
pub const ITEM_GROUP_RELEASE: u8 = 4;
/// `CallRecord::syscall` of a mark the kernel destroys on its own (fentry on
/// `fsnotify_destroy_mark`: its inode was unlinked or evicted, its mount or file system
/// unmounted): `group` names the group, one [`MarkEntry`] the mark as it was.
pub const ITEM_MARK_DESTROY: u8 = 5;
/// `CallRecord::flags` of an [`ITEM_MARKS`] item that lists every mark of the group.
pub const SNAPSHOT_COMPLETE: u32 = 1;
/// The most marks an [`ITEM_MARKS`] item lists. A group's newest marks come first in the
/// kernel's list, so a mark a call created is always in it; a larger group's older marks
/// are read by the recorder from `/proc/PID/fdinfo`.
pub const SNAPSHOT_MARKS: usize = 32;

/// `CallRecord::abi` of a record that is not a syscall (a process exit).
pub const NO_ABI: u8 = 0xff;

/// `CallRecord::obj_source`: how the probe learnt the object a mark call named.
pub mod obj_source {
    /// Not learnt (a flush, a failed lookup, or no hook on this kernel).
    pub const NONE: u8 = 0;
    /// `security_path_notify()`, which the kernel calls with the path it resolved (fentry).
    pub const HOOK: u8 = 1;
    /// The `dirfd`'s open file, read at syscall entry (a NULL pathname marks it).
    pub const ENTRY_DIRFD: u8 = 2;
}

/// `MarkEntry::obj_type`, as the kernel's `enum fsnotify_obj_type` numbers the objects a mark
/// can be on.
pub mod obj_type {
    pub const INODE: u8 = 0;
    pub const VFSMOUNT: u8 = 1;
    pub const SB: u8 = 2;
    pub const MNTNS: u8 = 3;
}

/// One mark as the kernel holds it, what `/proc/PID/fdinfo` prints a line for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkEntry {
    /// The inode number (inode marks), the mount id (mount marks), the namespace's inode
    /// number (mount-namespace marks); 0 for file-system marks.
    pub key: u64,
    /// The `s_dev` of the file system (inode and file-system marks), as the kernel encodes it
    /// (`MAJOR << 20 | MINOR`).
    pub dev: u32,
    pub mask: u32,
    pub ignore_mask: u32,
    /// The kernel's `FSNOTIFY_MARK_FLAG_*` bits (low 16).
    pub flags: u16,
    /// An [`obj_type`] value.
    pub obj_type: u8,
    pub _pad: u8,
}

/// Bytes of one [`MarkEntry`].
pub const MARK_ENTRY_SIZE: usize = core::mem::size_of::<MarkEntry>();

/// What the scan iterator prints for each fanotify group fd on the machine.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanEntry {
    /// The group's kernel address; the recorder turns it into a `group_id`.
    pub group: u64,
    pub tgid: u32,
    pub fd: u32,
}

/// Bytes of one [`ScanEntry`].
pub const SCAN_ENTRY_SIZE: usize = core::mem::size_of::<ScanEntry>();

/// The kernel's mark flag bits fdinfo reports as `mflags` (`fanotify_mark_user_flags()`),
/// with the `FAN_MARK_*` flag each one reads as. The values are `#define`s, which BTF does not
/// carry; they have not changed since fanotify gained them (5.19, 6.0).
pub const MARK_FLAG_USER_FLAGS: [(u16, u32); 3] = [
    (0x0100, 0x0000_0040), // IGNORED_SURV_MODIFY -> FAN_MARK_IGNORED_SURV_MODIFY
    (0x0200, 0x0000_0200), // NO_IREF -> FAN_MARK_EVICTABLE
    (0x0400, 0x0000_0400), // HAS_IGNORE_FLAGS -> FAN_MARK_IGNORE
];

/// `mflags` as fdinfo prints it, from the kernel's mark flags.
pub const fn user_mark_flags(kernel_flags: u16) -> u32 {
    let mut out = 0;
    let mut i = 0;
    while i < MARK_FLAG_USER_FLAGS.len() {
        if kernel_flags & MARK_FLAG_USER_FLAGS[i].0 != 0 {
            out |= MARK_FLAG_USER_FLAGS[i].1;
        }
        i += 1;
    }
    out
}
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
/// Items that are not calls ([`ITEM_MARKS`] and the others) share the header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CallRecord {
    /// `CLOCK_BOOTTIME` at syscall entry, in nanoseconds.
    pub enter_ns: u64,
    /// `CLOCK_BOOTTIME` at syscall exit, in nanoseconds.
    pub exit_ns: u64,
    pub mask: u64,
    /// The syscall's return value: 0 or -errno.
    pub ret: i64,
    pub cgroup_id: u64,
    /// The kernel address of the fanotify group the call was made on (`fanotify_fd`'s, or the
    /// new fd's for `fanotify_init`); 0 when the fd is not a fanotify group. Never written to
    /// a capture: the recorder turns it into a `group_id`.
    pub group: u64,
    /// The inode number of the object the call named, when [`CallRecord::obj_source`] says
    /// the probe learnt it.
    pub obj_ino: u64,
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
    /// The object's file system (`s_dev`, kernel encoding) and the id of the mount it was
    /// reached through.
    pub obj_dev: u32,
    pub obj_mnt_id: u32,
    pub fanotify_fd: i32,
    pub flags: u32,
    pub dirfd: i32,
    /// Number of pathname bytes following this header in the ring-buffer item.
    pub path_len: u16,
    /// The object's `i_mode` (its file type tells a directory).
    pub obj_mode: u16,
    /// An [`Abi`] value.
    pub abi: u8,
    /// A [`PathStatus`] value.
    pub path_status: u8,
    /// [`SYSCALL_MARK`], [`SYSCALL_INIT`], [`SYSCALL_EXIT`] or an item kind.
    pub syscall: u8,
    /// An [`obj_source`] value.
    pub obj_source: u8,
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
    // SAFETY: all are repr(C), contain only integers and byte arrays, and have no padding
    // the compiler could leave uninitialised (fields are ordered, or `_pad` named, to keep
    // them dense; the asserts below check the sizes).
    unsafe impl aya::Pod for super::CallRecord {}
    unsafe impl aya::Pod for super::PendingCall {}
    unsafe impl aya::Pod for super::MarkEntry {}
    unsafe impl aya::Pod for super::ScanEntry {}
}

// The probe writes these with fixed offsets; a layout change must be a deliberate schema change.
const _: () = assert!(CALL_RECORD_SIZE == 128);
const _: () = assert!(MARK_ENTRY_SIZE == 24);
const _: () = assert!(SCAN_ENTRY_SIZE == 16);
const _: () = assert!(CALL_RECORD_SIZE.is_multiple_of(8));
