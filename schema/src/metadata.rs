//! Keys of the key-value metadata every capture segment carries, and the schema version.

/// Version of the event layout in the files. Bump on any incompatible column change; the
/// analyzer refuses files newer than it knows. Version 2 stopped storing the decoded columns
/// (mark_action, mark_type, flag_names, mask_names); version 1 files still open, their copies
/// are ignored in favour of the same values decoded from flags and mask. Version 3 stores
/// `syscall` as a dictionary (see `arrow::Column::stored_type`). Version 4 adds `abi` (the
/// recorder sees ia32 calls too) and the attach-mode keys.
pub const CURRENT_SCHEMA_VERSION: u32 = 4;

pub const SCHEMA_VERSION: &str = "fantrace.schema_version";
pub const RECORDER_VERSION: &str = "fantrace.recorder_version";
pub const HOSTNAME: &str = "fantrace.hostname";
pub const KERNEL_RELEASE: &str = "fantrace.kernel_release";
pub const BOOT_ID: &str = "fantrace.boot_id";
/// Nanoseconds added to CLOCK_BOOTTIME to get Unix time (UTC).
pub const CLOCK_OFFSET_NS: &str = "fantrace.clock_offset_ns";
pub const SEGMENT_START: &str = "fantrace.segment_start";
pub const SEGMENT_END: &str = "fantrace.segment_end";
pub const EVENTS_WRITTEN: &str = "fantrace.events_written";
/// Calls the probe could not deliver while this segment was open, all causes.
pub const EVENTS_LOST: &str = "fantrace.events_lost";
/// Prefix of the per-cause loss keys: `fantrace.events_lost.ring_full`, ...
pub const EVENTS_LOST_PREFIX: &str = "fantrace.events_lost.";
/// Calls the recorder dropped because the disk was full (`--on-disk-full=drop`); included in
/// `fantrace.events_lost`.
pub const EVENTS_LOST_DISK_FULL: &str = "fantrace.events_lost.disk_full";
pub const COMMAND_LINE: &str = "fantrace.command_line";
/// How the probe was attached: `fentry` or `tracepoint`.
pub const ATTACH_MODE: &str = "fantrace.attach_mode";
/// Why that mode: what was asked for and, when it fell back, what failed.
pub const ATTACH_REASON: &str = "fantrace.attach_reason";
/// The kernel functions or tracepoints the probe is attached to, comma-separated.
pub const ATTACH_POINTS: &str = "fantrace.attach_points";
/// Whether 32-bit (ia32) calls are recorded: `yes`, or `no: <why>`.
pub const IA32_COVERED: &str = "fantrace.ia32_covered";
pub const STOP_REASON: &str = "fantrace.stop_reason";
