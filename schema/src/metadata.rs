//! Keys of the key-value metadata every capture segment carries, and the schema version.

/// Version of the event layout in the files. Bump on any incompatible column change; the
/// analyzer refuses files newer than it knows. Version 2 stopped storing the decoded columns
/// (mark_action, mark_type, flag_names, mask_names); version 1 files still open, their copies
/// are ignored in favour of the same values decoded from flags and mask. Version 3 stores
/// `syscall` as a dictionary (see `arrow::Column::stored_type`). Version 4 adds `abi` (the
/// recorder sees ia32 calls too), `host` and `boot_id` as columns, the attach-mode keys and
/// the integrity keys below. Version 5 adds `process_exit` rows (the exit of every process that
/// created a fanotify group): in older segments the end of a group's owner is not seen.
/// Version 6 adds the kernel's own view: `group_id`, the object each mark call resolved to and
/// the mark's state after it, and rows of the groups and marks the recorder found in the
/// kernel (`mark_state`, `group_held`, `group_released`, `group_end`).
pub const CURRENT_SCHEMA_VERSION: u32 = 6;
/// The first version whose recorder records group owners' exits.
pub const EXITS_SINCE_VERSION: u32 = 5;
/// The first version that records the kernel's groups and marks.
pub const KERNEL_STATE_SINCE_VERSION: u32 = 6;

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
/// Where the segment's facts about the kernel's groups and marks come from on this kernel:
/// the hooks attached, the probe's reads after each call, how often fdinfo was read.
pub const KERNEL_STATE_SOURCES: &str = "fantrace.kernel_state_sources";
/// Random id of one recorder run, or of one export: its segments form one chain.
pub const RECORDING_ID: &str = "fantrace.recording_id";
/// The segment's place in its recording, from 0.
pub const SEGMENT_SEQ: &str = "fantrace.segment_seq";
/// SHA-256 (hex) of the whole file of the previous segment of the recording; empty for the
/// first. See `integrity`.
pub const PREV_SEGMENT_SHA256: &str = "fantrace.prev_segment_sha256";
/// Bytes before the Parquet footer (the row groups), and their SHA-256.
pub const DATA_BYTES: &str = "fantrace.data_bytes";
pub const DATA_SHA256: &str = "fantrace.data_sha256";
/// SHA-256 over every other `fantrace.*` key and the row counts (`integrity::metadata_digest`).
pub const METADATA_SHA256: &str = "fantrace.metadata_sha256";
/// ed25519 signature (hex) of the metadata digest, and the public key (hex) that made it.
pub const SIGNATURE: &str = "fantrace.signature";
pub const SIGNING_KEY: &str = "fantrace.signing_key";
/// Earliest and latest `time` of the segment's rows (RFC 3339, ns); absent when it has none.
pub const TIME_MIN: &str = "fantrace.time_min";
pub const TIME_MAX: &str = "fantrace.time_max";
/// Where an exported segment's rows came from (JSON: the export command line, its window and
/// filters, and for every source segment its host, boot id, file name and SHA-256).
pub const PROVENANCE: &str = "fantrace.provenance";
/// Fields an export pseudonymized (comma-separated) and the fingerprint of the key.
pub const PSEUDONYMIZED: &str = "fantrace.pseudonymized";
pub const PSEUDONYM_KEY: &str = "fantrace.pseudonym_key";
/// Fields an export removed (comma-separated).
pub const REDACTED: &str = "fantrace.redacted";
/// With `--upload`: the finished segments (and their bytes) still waiting in the capture
/// directory for the object store when this one was sealed. A backlog that grows from segment
/// to segment is an outage or a refused credential.
pub const UPLOAD_BACKLOG_SEGMENTS: &str = "fantrace.upload_backlog_segments";
pub const UPLOAD_BACKLOG_BYTES: &str = "fantrace.upload_backlog_bytes";
