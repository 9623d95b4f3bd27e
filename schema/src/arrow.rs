//! The Arrow schema of the `events` table and the builder that turns probe records into rows.
//! Every column is declared once, in [`COLUMNS`]; the schema, the builder and the documentation
//! all follow from that list.
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, DictionaryArray, Int32Builder, Int64Builder,
    RecordBatch, StringArray, StringBuilder, TimestampNanosecondBuilder, UInt8Array, UInt32Builder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::metadata;
use crate::record::{
    Abi, CallRecord, MarkEntry, PathStatus, SYSCALL_EXIT, SYSCALL_INIT, SYSCALL_MARK,
};

/// One column of the `events` table.
pub struct Column {
    pub name: &'static str,
    pub data_type: fn() -> DataType,
    pub nullable: bool,
    pub doc: &'static str,
}

/// `syscall` holds one of three names: stored as an Arrow dictionary, readers get small keys to
/// compare instead of a 13-byte string per row (the `events` view tests it on every row).
pub fn syscall_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
}

/// The `syscall` dictionary, indexed by [`RowKind`]: the two syscalls, the exits of group
/// holders, and the kernel's own state as the recorder saw it.
pub const SYSCALL_NAMES: [&str; 7] = [
    "fanotify_mark",
    "fanotify_init",
    "process_exit",
    "mark_state",
    "group_held",
    "group_released",
    "group_end",
];

/// What a row is: a call, a group holder's exit, or a fact about the kernel's state. The value
/// is the row's key in [`SYSCALL_NAMES`]; the first three equal `CallRecord::syscall`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Mark = 0,
    Init = 1,
    Exit = 2,
    /// A mark as the kernel held it at `time`, where no call row says so: what the recorder
    /// found at start, and every change the kernel made on its own or that a lost call made.
    /// `mark_mask` and `mark_ignored_mask` both 0: the mark is gone.
    MarkState = 3,
    /// `(pid, fanotify_fd)` holds the group from `time` on (found by a scan: at start, or an
    /// fd inherited, duplicated or received since).
    GroupHeld = 4,
    /// `(pid, fanotify_fd)` no longer holds the group (closed, replaced, or its process gone).
    GroupReleased = 5,
    /// The group is gone: its last fd was closed, and with it every mark.
    GroupEnd = 6,
}

impl RowKind {
    pub const fn name(self) -> &'static str {
        SYSCALL_NAMES[self as usize]
    }
}

/// `abi` holds one of two names, stored like `syscall`.
pub fn abi_type() -> DataType {
    syscall_type()
}

/// `host` and `boot_id` repeat one value per recording: a dictionary costs next to nothing in
/// Parquet, and a merged capture of many hosts keeps one small dictionary per column chunk.
pub fn origin_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The `abi` dictionary, indexed by `CallRecord::abi`.
const ABI_NAMES: [&str; 2] = [Abi::X86_64.name(), Abi::Ia32.name()];

fn timestamp_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

macro_rules! columns {
    ($( $name:literal : $ty:expr, $nullable:literal, $doc:literal; )*) => {
        /// The columns of the `events` table, in order.
        pub const COLUMNS: &[Column] = &[
            $( Column { name: $name, data_type: { fn t() -> DataType { $ty } t }, nullable: $nullable, doc: $doc }, )*
        ];
    };
}

columns! {
    "syscall": syscall_type(), false, "fanotify_mark; fanotify_init for the companion rows (then flags/mask hold its flags/event_f_flags and ret its fd); process_exit for the exit of a process that created a fanotify group (ret holds its wait status; segments before schema version 5 have none). The analyzer's events, inits and exits views split them.";
    "time": timestamp_utc(), false, "Wall-clock time of syscall entry (UTC), converted from CLOCK_BOOTTIME with the offset in the segment metadata.";
    "duration_ns": DataType::Int64, false, "Time spent inside the syscall, in nanoseconds.";
    "pid": DataType::UInt32, false, "Process id (thread-group id) in the initial pid namespace.";
    "tid": DataType::UInt32, false, "Thread id in the initial pid namespace.";
    "comm": DataType::Utf8, false, "Thread name (task comm) at syscall entry.";
    "ppid": DataType::UInt32, false, "Parent process id (real parent's tgid) in the initial pid namespace; 0 if unreadable.";
    "uid": DataType::UInt32, false, "Real user id of the caller.";
    "gid": DataType::UInt32, false, "Real group id of the caller.";
    "cgroup_id": DataType::UInt64, false, "Id of the caller's cgroup v2 (the inode number of its directory).";
    "mnt_ns": DataType::UInt32, false, "Inode number of the caller's mount namespace (as in /proc/PID/ns/mnt); 0 if unreadable.";
    "pid_ns": DataType::UInt32, false, "Inode number of the caller's pid namespace (as in /proc/PID/ns/pid); 0 if unreadable.";
    "exe": DataType::Utf8, true, "Executable path (/proc/PID/exe), read by the recorder once per process; NULL if the process was gone first.";
    "container_id": DataType::Utf8, true, "Container id taken from the cgroup path (docker, containerd, CRI-O, podman); NULL outside containers or if unknown.";
    "fanotify_fd": DataType::Int32, false, "Argument 1: the fanotify group's file descriptor.";
    "flags": DataType::UInt32, false, "Argument 2: FAN_MARK_* flags, including the mark-type field.";
    "mask": DataType::UInt64, false, "Argument 3: FAN_* event bits.";
    "dirfd": DataType::Int32, false, "Argument 4: directory fd the path is relative to (-100 is AT_FDCWD).";
    "pathname": DataType::Utf8, true, "Argument 5 as text; NULL when the pointer was NULL or unreadable. Non-UTF-8 bytes are shown lossily (U+FFFD).";
    "pathname_raw": DataType::Binary, true, "Argument 5 byte-exact, only when it is not valid UTF-8; NULL for every other row.";
    "pathname_status": DataType::Utf8, false, "ok, null (NULL pointer), fault (unreadable pointer) or truncated (longer than 4095 bytes; the prefix is kept).";
    "ret": DataType::Int64, false, "Return value: 0 or -errno.";
    "abi": abi_type(), true, "The syscall ABI the call came in through: x86_64 (native) or ia32 (a 32-bit call, int $0x80, also from a 64-bit process). NULL for process_exit rows, and in segments before schema version 4, whose recorder saw only native calls.";
    "host": origin_type(), false, "Host name of the machine that recorded the call (segments before schema version 4: taken from their metadata when read).";
    "boot_id": origin_type(), false, "Boot id of that machine (/proc/sys/kernel/random/boot_id): pids and times are meaningful per host and boot.";
    "group_id": DataType::UInt64, true, "The fanotify group the row is about, the same for every fd and process that holds it and stable for the boot (a keyed hash of the kernel's group, never its address). NULL when the call's fd was not a fanotify group, and in segments before schema version 6.";
    "object": DataType::Utf8, true, "The object the mark is on, as the kernel resolved it, in /proc/PID/fdinfo's terms: inode:SDEV:INO, mount:MNT_ID, filesystem:SDEV (hexadecimal) or mntns:INUM. NULL where no source could tell (object_source says which source did).";
    "object_source": DataType::Utf8, true, "How the object was learnt: hook (the kernel's security_path_notify, fentry mode), entry (the dirfd's open file, read at syscall entry), exit (the group's marks the probe read right after the call), fdinfo (the recorder's read of /proc/PID/fdinfo) or recorder (the recorder resolved the pathname after the call). On group rows, how the holding or end was learnt: hook (the kernel released the group, fentry mode), exit (the holder's exit), scan (a scan of every fanotify fd), close (a new group took the fd) or address reused (a new group at its address).";
    "fs_type": DataType::Utf8, true, "The object's file system type (from the mount table).";
    "resolved_path": DataType::Utf8, true, "The object's absolute path as the recorder's mount namespace sees it (path_source says how it was found); NULL when it could not be found. pathname is the argument as given.";
    "path_source": DataType::Utf8, true, "How resolved_path was found: handle (open_by_handle_at of the file handle fdinfo shows), mountinfo (the mount table, for mount and file-system marks; mountinfo of PID when only the caller's namespace has it), pathname (the absolute pathname as given, when nothing better was possible), cwd or dirfd (the relative pathname joined to the caller's directory).";
    "mark_mask": DataType::UInt64, true, "The mark's event mask in the kernel right after the call (or when seen, for mark_state rows); 0 with mark_ignored_mask 0 when the mark is gone.";
    "mark_ignored_mask": DataType::UInt64, true, "The mark's ignore mask in the kernel, like mark_mask.";
    "mark_flags": DataType::UInt32, true, "The mark's flags as fdinfo reports them (mflags: FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_EVICTABLE, FAN_MARK_IGNORE).";
}

/// A column of the `events` view that the analyzer computes from stored columns when a query
/// asks for it. Decoding in the recorder cost more per call than all stored columns together
/// (four more strings to build, intern and compress for every call), for values the flags
/// and mask already hold exactly.
pub struct DerivedColumn {
    pub name: &'static str,
    pub data_type: fn() -> DataType,
    /// The SQL expression over stored columns, using the analyzer's decoding functions.
    pub sql: &'static str,
    pub doc: &'static str,
}

/// The derived columns of the `events` view, after the stored ones.
pub const DERIVED: &[DerivedColumn] = &[
    DerivedColumn {
        name: "mark_action",
        data_type: || DataType::Utf8View,
        sql: "fan_mark_action(flags)",
        doc: "add, remove or flush (from flags); several or none when the flags are invalid, joined by '|'.",
    },
    DerivedColumn {
        name: "mark_type",
        data_type: || DataType::Utf8View,
        sql: "fan_mark_type(flags)",
        doc: "inode, mount, filesystem or mntns: the mark-type field of flags.",
    },
    DerivedColumn {
        name: "flag_names",
        data_type: names_list,
        sql: "fan_flag_list(flags)",
        doc: "Decoded FAN_MARK_* flags (without the mark type); unknown bits as hex.",
    },
    DerivedColumn {
        name: "mask_names",
        data_type: names_list,
        sql: "fan_mask_list(mask)",
        doc: "Decoded FAN_* mask bits; unknown bits as hex.",
    },
];

/// `List(Utf8)` of bit names.
pub fn names_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, false)))
}

/// What the recorder learned about the calling process from /proc, once per process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub exe: Option<String>,
    pub container_id: Option<String>,
}

impl Column {
    /// The column's type in segments of schema `version`, or `None` when segments of that
    /// version do not have it: `syscall` was plain text before version 3, `abi` arrived in
    /// version 4. The analyzer reads older segments with the current types (a missing column
    /// reads as NULL).
    pub fn stored_type(&self, version: u32) -> Option<DataType> {
        match (self.name, version) {
            ("syscall", ..3) => Some(DataType::Utf8),
            ("abi" | "host" | "boot_id", ..4) => None,
            (name, ..6) if KERNEL_STATE_COLUMNS.contains(&name) => None,
            _ => Some((self.data_type)()),
        }
    }
}

/// The columns schema version 6 added: the kernel's own view of groups and marks.
pub const KERNEL_STATE_COLUMNS: [&str; 9] = [
    "group_id",
    "object",
    "object_source",
    "fs_type",
    "resolved_path",
    "path_source",
    "mark_mask",
    "mark_ignored_mask",
    "mark_flags",
];

/// A mark's state in the kernel: what one fdinfo line says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkState {
    pub mask: u64,
    pub ignored_mask: u64,
    /// `mflags` as fdinfo prints it.
    pub flags: u32,
}

impl MarkState {
    /// A mark whose masks are both empty does not exist.
    pub fn is_gone(&self) -> bool {
        self.mask == 0 && self.ignored_mask == 0
    }
}

/// What the recorder learnt about a row's group and object from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFacts {
    pub group_id: Option<u64>,
    pub object: Option<String>,
    pub object_source: Option<&'static str>,
    pub fs_type: Option<String>,
    pub resolved_path: Option<String>,
    pub path_source: Option<&'static str>,
    pub mark: Option<MarkState>,
}

/// A row that is not a call: a fact about the kernel's groups and marks (see [`RowKind`]).
#[derive(Clone, Debug, Default)]
pub struct StateRow {
    /// `CLOCK_BOOTTIME` when the fact held, in nanoseconds.
    pub boot_ns: u64,
    /// The process the fact was seen through (a holder of the group), its fd for the group,
    /// and what /proc said about it.
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub fd: i32,
    /// `group_held`: the group's `fanotify_init` flags and `event_f_flags`, as fdinfo shows
    /// them.
    pub flags: u32,
    pub mask: u64,
    /// `group_held`: 1 when `flags` and `mask` are known (fdinfo was read, and with it the
    /// group's marks then), 0 when not.
    pub ret: i64,
    pub facts: KernelFacts,
}

/// The Arrow schema of the `events` table, with the schema version in its metadata.
pub fn events_schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(c.name, (c.data_type)(), c.nullable))
        .collect();
    let meta = [(
        metadata::SCHEMA_VERSION.to_string(),
        metadata::CURRENT_SCHEMA_VERSION.to_string(),
    )];
    Arc::new(Schema::new(fields).with_metadata(meta.into_iter().collect()))
}

/// Where the calls of a builder come from: every row gets these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    pub boot_id: String,
}

/// A column holding one value in every row, as the dictionary [`origin_type`] describes.
pub fn constant_origin_column(value: &str, rows: usize) -> Result<ArrayRef, ArrowError> {
    let keys = arrow::array::Int32Array::from(vec![0; rows]);
    let values = StringArray::from(vec![value]);
    Ok(Arc::new(DictionaryArray::try_new(keys, Arc::new(values))?))
}

/// Accumulates probe records as Arrow columns.
pub struct EventBuilder {
    time: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    comm: StringBuilder,
    ppid: UInt32Builder,
    uid: UInt32Builder,
    gid: UInt32Builder,
    cgroup_id: UInt64Builder,
    mnt_ns: UInt32Builder,
    pid_ns: UInt32Builder,
    exe: StringBuilder,
    container_id: StringBuilder,
    fanotify_fd: Int32Builder,
    flags: UInt32Builder,
    mask: UInt64Builder,
    dirfd: Int32Builder,
    pathname: StringBuilder,
    pathname_raw: BinaryBuilder,
    pathname_status: StringBuilder,
    ret: Int64Builder,
    /// Keys into [`SYSCALL_NAMES`].
    syscall: Vec<u8>,
    /// Keys into [`ABI_NAMES`]; `None` for a value the probe should never send.
    abi: Vec<Option<u8>>,
    group_id: UInt64Builder,
    object: StringBuilder,
    object_source: StringBuilder,
    fs_type: StringBuilder,
    resolved_path: StringBuilder,
    path_source: StringBuilder,
    mark_mask: UInt64Builder,
    mark_ignored_mask: UInt64Builder,
    mark_flags: UInt32Builder,
    origin: Origin,
    schema: SchemaRef,
}

impl EventBuilder {
    /// A builder with room for `rows` rows and `path_bytes` pathname bytes before it grows,
    /// for calls recorded on `origin`.
    pub fn with_capacity(rows: usize, path_bytes: usize, origin: Origin) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            duration_ns: Int64Builder::with_capacity(rows),
            pid: UInt32Builder::with_capacity(rows),
            tid: UInt32Builder::with_capacity(rows),
            comm: StringBuilder::with_capacity(rows, rows * 16),
            ppid: UInt32Builder::with_capacity(rows),
            uid: UInt32Builder::with_capacity(rows),
            gid: UInt32Builder::with_capacity(rows),
            cgroup_id: UInt64Builder::with_capacity(rows),
            mnt_ns: UInt32Builder::with_capacity(rows),
            pid_ns: UInt32Builder::with_capacity(rows),
            exe: StringBuilder::with_capacity(rows, rows * 16),
            container_id: StringBuilder::with_capacity(rows, 0),
            fanotify_fd: Int32Builder::with_capacity(rows),
            flags: UInt32Builder::with_capacity(rows),
            mask: UInt64Builder::with_capacity(rows),
            dirfd: Int32Builder::with_capacity(rows),
            pathname: StringBuilder::with_capacity(rows, path_bytes),
            pathname_raw: BinaryBuilder::with_capacity(rows, 0),
            pathname_status: StringBuilder::with_capacity(rows, rows * 2),
            ret: Int64Builder::with_capacity(rows),
            syscall: Vec::with_capacity(rows),
            abi: Vec::with_capacity(rows),
            group_id: UInt64Builder::with_capacity(rows),
            object: StringBuilder::with_capacity(rows, 0),
            object_source: StringBuilder::with_capacity(rows, 0),
            fs_type: StringBuilder::with_capacity(rows, 0),
            resolved_path: StringBuilder::with_capacity(rows, 0),
            path_source: StringBuilder::with_capacity(rows, 0),
            mark_mask: UInt64Builder::with_capacity(rows),
            mark_ignored_mask: UInt64Builder::with_capacity(rows),
            mark_flags: UInt32Builder::with_capacity(rows),
            origin,
            schema: events_schema(),
        }
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one call. `boot_to_wall_ns` is added to the probe's CLOCK_BOOTTIME stamps.
    pub fn append(
        &mut self,
        ev: &CallRecord,
        path: &[u8],
        boot_to_wall_ns: i64,
        process: &ProcessInfo,
        facts: &KernelFacts,
    ) {
        self.time
            .append_value((ev.enter_ns as i64).saturating_add(boot_to_wall_ns));
        self.duration_ns
            .append_value(ev.exit_ns.saturating_sub(ev.enter_ns) as i64);
        self.pid.append_value(ev.pid);
        self.tid.append_value(ev.tid);
        let comm_len = ev
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(ev.comm.len());
        let comm = &ev.comm[..comm_len];
        match std::str::from_utf8(comm) {
            Ok(text) => self.comm.append_value(text),
            Err(_) => self.comm.append_value(String::from_utf8_lossy(comm)),
        }
        self.ppid.append_value(ev.ppid);
        self.uid.append_value(ev.uid);
        self.gid.append_value(ev.gid);
        self.cgroup_id.append_value(ev.cgroup_id);
        self.mnt_ns.append_value(ev.mnt_ns);
        self.pid_ns.append_value(ev.pid_ns);
        self.exe.append_option(process.exe.as_deref());
        self.container_id
            .append_option(process.container_id.as_deref());
        self.fanotify_fd.append_value(ev.fanotify_fd);
        self.flags.append_value(ev.flags);
        self.mask.append_value(ev.mask);
        self.dirfd.append_value(ev.dirfd);
        let status = PathStatus::from_u8(ev.path_status);
        match status {
            Some(PathStatus::Ok | PathStatus::Truncated) => match std::str::from_utf8(path) {
                Ok(text) => {
                    self.pathname.append_value(text);
                    self.pathname_raw.append_null();
                }
                Err(_) => {
                    self.pathname.append_value(String::from_utf8_lossy(path));
                    self.pathname_raw.append_value(path);
                }
            },
            _ => {
                self.pathname.append_null();
                self.pathname_raw.append_null();
            }
        }
        self.pathname_status
            .append_value(status.map(PathStatus::name).unwrap_or("unknown"));
        self.ret.append_value(ev.ret);
        // An unknown kind from a newer probe reads as a mark rather than breaking the batch.
        self.syscall.push(match ev.syscall {
            SYSCALL_INIT | SYSCALL_EXIT => ev.syscall,
            _ => SYSCALL_MARK,
        });
        self.abi.push(Abi::from_u8(ev.abi).map(|a| a as u8));
        self.append_facts(facts);
    }

    /// Appends a row about the kernel's state (`kind` is not a call), at `boot_ns` converted
    /// with `boot_to_wall_ns`.
    pub fn append_state(
        &mut self,
        kind: RowKind,
        row: &StateRow,
        boot_to_wall_ns: i64,
        process: &ProcessInfo,
    ) {
        self.time
            .append_value((row.boot_ns as i64).saturating_add(boot_to_wall_ns));
        self.duration_ns.append_value(0);
        self.pid.append_value(row.pid);
        self.tid.append_value(row.tid);
        self.comm.append_value(&row.comm);
        self.ppid.append_value(row.ppid);
        self.uid.append_value(row.uid);
        self.gid.append_value(row.gid);
        self.cgroup_id.append_value(0);
        self.mnt_ns.append_value(0);
        self.pid_ns.append_value(0);
        self.exe.append_option(process.exe.as_deref());
        self.container_id
            .append_option(process.container_id.as_deref());
        self.fanotify_fd.append_value(row.fd);
        self.flags.append_value(row.flags);
        self.mask.append_value(row.mask);
        self.dirfd.append_value(0);
        self.pathname.append_null();
        self.pathname_raw.append_null();
        self.pathname_status.append_value(PathStatus::Null.name());
        self.ret.append_value(row.ret);
        self.syscall.push(kind as u8);
        self.abi.push(None);
        self.append_facts(&row.facts);
    }

    fn append_facts(&mut self, facts: &KernelFacts) {
        self.group_id.append_option(facts.group_id);
        self.object.append_option(facts.object.as_deref());
        self.object_source.append_option(facts.object_source);
        self.fs_type.append_option(facts.fs_type.as_deref());
        self.resolved_path
            .append_option(facts.resolved_path.as_deref());
        self.path_source.append_option(facts.path_source);
        self.mark_mask.append_option(facts.mark.map(|m| m.mask));
        self.mark_ignored_mask
            .append_option(facts.mark.map(|m| m.ignored_mask));
        self.mark_flags.append_option(facts.mark.map(|m| m.flags));
    }

    /// The rows appended so far, as one batch; the builder is left empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = self.len();
        const _: () = assert!(
            SYSCALL_MARK == RowKind::Mark as u8
                && SYSCALL_INIT == RowKind::Init as u8
                && SYSCALL_EXIT == RowKind::Exit as u8
        );
        let keys = UInt8Array::from(std::mem::take(&mut self.syscall));
        let syscall =
            DictionaryArray::try_new(keys, Arc::new(StringArray::from(SYSCALL_NAMES.to_vec())))?;
        const _: () = assert!(Abi::X86_64 as u8 == 0 && Abi::Ia32 as u8 == 1);
        let abi_keys = UInt8Array::from(std::mem::take(&mut self.abi));
        let abi =
            DictionaryArray::try_new(abi_keys, Arc::new(StringArray::from(ABI_NAMES.to_vec())))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(syscall),
            Arc::new(self.time.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.gid.finish()),
            Arc::new(self.cgroup_id.finish()),
            Arc::new(self.mnt_ns.finish()),
            Arc::new(self.pid_ns.finish()),
            Arc::new(self.exe.finish()),
            Arc::new(self.container_id.finish()),
            Arc::new(self.fanotify_fd.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.mask.finish()),
            Arc::new(self.dirfd.finish()),
            Arc::new(self.pathname.finish()),
            Arc::new(self.pathname_raw.finish()),
            Arc::new(self.pathname_status.finish()),
            Arc::new(self.ret.finish()),
            Arc::new(abi),
            constant_origin_column(&self.origin.host, rows)?,
            constant_origin_column(&self.origin.boot_id, rows)?,
            Arc::new(self.group_id.finish()),
            Arc::new(self.object.finish()),
            Arc::new(self.object_source.finish()),
            Arc::new(self.fs_type.finish()),
            Arc::new(self.resolved_path.finish()),
            Arc::new(self.path_source.finish()),
            Arc::new(self.mark_mask.finish()),
            Arc::new(self.mark_ignored_mask.finish()),
            Arc::new(self.mark_flags.finish()),
        ];
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// Splits one ring-buffer item into its header and pathname bytes.
pub fn parse_item(item: &[u8]) -> Result<(CallRecord, &[u8]), ItemError> {
    use crate::record::CALL_RECORD_SIZE;
    if item.len() < CALL_RECORD_SIZE {
        return Err(ItemError::Short(item.len()));
    }
    // SAFETY: CallRecord is repr(C) plain data of CALL_RECORD_SIZE bytes; the read is unaligned.
    let ev: CallRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    let path = &item[CALL_RECORD_SIZE..];
    if path.len() < ev.path_len as usize {
        return Err(ItemError::PathPastEnd {
            path_len: ev.path_len,
            have: path.len(),
        });
    }
    Ok((ev, &path[..ev.path_len as usize]))
}

/// The marks an [`crate::record::ITEM_MARKS`] or [`crate::record::ITEM_MARK_DESTROY`] item
/// carries after its header.
pub fn parse_mark_entries(item: &[u8]) -> Result<(CallRecord, Vec<MarkEntry>), ItemError> {
    use crate::record::{CALL_RECORD_SIZE, MARK_ENTRY_SIZE};
    if item.len() < CALL_RECORD_SIZE {
        return Err(ItemError::Short(item.len()));
    }
    // SAFETY: as in parse_item; every MarkEntry bit pattern is valid.
    let ev: CallRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    let entries = item[CALL_RECORD_SIZE..]
        .chunks_exact(MARK_ENTRY_SIZE)
        .map(|chunk| unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<MarkEntry>()) })
        .collect();
    Ok((ev, entries))
}

/// A ring-buffer item that does not hold a whole record: a probe/recorder mismatch.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("ring-buffer item of {0} bytes is shorter than a record header")]
    Short(usize),
    #[error("record says {path_len} path bytes follow but the item has {have}")]
    PathPastEnd { path_len: u16, have: usize },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CALL_RECORD_SIZE;
    use arrow::array::{Array, AsArray};

    fn event(path_len: u16, status: PathStatus) -> CallRecord {
        CallRecord {
            enter_ns: 1_000,
            exit_ns: 1_500,
            mask: 0x20,
            ret: -9,
            cgroup_id: 7,
            pid: 10,
            tid: 11,
            uid: 0,
            gid: 0,
            ppid: 1,
            mnt_ns: 4026531841,
            pid_ns: 4026531836,
            abi: 0,
            fanotify_fd: 3,
            flags: 1,
            dirfd: -100,
            path_len,
            path_status: status as u8,
            syscall: 0,
            comm: *b"demo\0\0\0\0\0\0\0\0\0\0\0\0",
            ..CallRecord::default()
        }
    }

    fn item(ev: &CallRecord, path: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; CALL_RECORD_SIZE];
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast(), *ev) };
        out.extend_from_slice(path);
        out
    }

    #[test]
    fn schema_matches_column_table() {
        let schema = events_schema();
        assert_eq!(schema.fields().len(), COLUMNS.len());
        let mut b = EventBuilder::with_capacity(1, 0, Origin::default());
        b.append(
            &event(0, PathStatus::Null),
            b"",
            0,
            &ProcessInfo::default(),
            &KernelFacts::default(),
        );
        assert_eq!(b.finish().unwrap().num_columns(), COLUMNS.len());
    }

    #[test]
    fn path_text_raw_and_null_are_distinct() {
        let mut b = EventBuilder::with_capacity(3, 16, Origin::default());
        for (path, status) in [
            (&b"/etc"[..], PathStatus::Ok),
            (&b"/tmp/\xff"[..], PathStatus::Ok),
            (&b""[..], PathStatus::Null),
        ] {
            let raw = item(&event(path.len() as u16, status), path);
            let (ev, p) = parse_item(&raw).unwrap();
            b.append(&ev, p, 5, &ProcessInfo::default(), &KernelFacts::default());
        }
        let batch = b.finish().unwrap();
        let text = batch.column_by_name("pathname").unwrap().as_string::<i32>();
        let raw = batch
            .column_by_name("pathname_raw")
            .unwrap()
            .as_binary::<i32>();
        assert_eq!(text.value(0), "/etc");
        assert!(raw.is_null(0));
        assert_eq!(text.value(1), "/tmp/\u{fffd}");
        assert_eq!(raw.value(1), b"/tmp/\xff");
        assert!(text.is_null(2) && raw.is_null(2));
        let time = batch
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        assert_eq!(time.value(0), 1_005);
    }

    #[test]
    fn truncated_item_is_an_error() {
        let raw = item(&event(10, PathStatus::Ok), b"abc");
        assert!(matches!(
            parse_item(&raw),
            Err(ItemError::PathPastEnd { .. })
        ));
        assert!(matches!(parse_item(&raw[..10]), Err(ItemError::Short(10))));
    }
}
