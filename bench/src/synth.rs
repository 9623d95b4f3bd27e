//! A synthetic capture of realistic shape (many processes, paths, flags, some failures and
//! permission marks, time-ordered over a day) for the analyzer benchmarks: recording 10
//! million real calls would measure the recorder, not the analyzer. Rows go through the
//! schema crate's builder and the segment layout the recorder uses.
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use fantrace_schema::arrow::{
    EventBuilder, KernelFacts, MarkState, Origin, ProcessInfo, events_schema,
};
use fantrace_schema::integrity::{SealingWriter, seal_and_close};
use fantrace_schema::layout::{ROW_GROUP_ROWS, writer_properties};
use fantrace_schema::metadata as keys;
use fantrace_schema::object::ObjectKey;
use fantrace_schema::record::{CallRecord, PathStatus, SYSCALL_INIT, SYSCALL_MARK};
use fantrace_tests::lifecycle::rfc3339;
use parquet::arrow::ArrowWriter;

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Capture directory to create.
    #[arg(long)]
    pub output: PathBuf,
    /// Calls to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Rows per segment file.
    #[arg(long, default_value_t = 2_000_000)]
    pub segment_rows: u64,
    /// Hosts the calls come from: segments go to them in turn, each host one recording.
    #[arg(long, default_value_t = 1)]
    pub hosts: u64,
    /// How long the calls are spread over, from 2026-11-01 (s, m, h, d suffixes: `70d`).
    #[arg(long, default_value = "1d", value_parser = parse_duration_ns)]
    pub span: i64,
    /// Cut segments by time as the recorder's `--rotate-interval` does (`5m`): one segment per
    /// interval of the span, empty ones too (an idle recorder writes them), instead of every
    /// `--segment-rows` rows.
    #[arg(long, value_parser = parse_duration_ns)]
    pub rotate: Option<i64>,
    /// When the calls begin (RFC 3339 or a date, UTC).
    #[arg(long, default_value = "2026-11-01", value_parser = parse_start)]
    pub start: i64,
}

fn parse_start(text: &str) -> Result<i64, String> {
    let at = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) => day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.to_utc()),
    };
    at.and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| format!("{text:?} is not a date (2026-11-01) or an RFC 3339 time"))
}

/// A duration as `--span` and `--rotate` take it, in nanoseconds.
pub fn parse_duration_ns(text: &str) -> Result<i64, String> {
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 90s, 5m, 1h or 70d"
            ));
        }
    };
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(seconds * 1_000_000_000))
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 5m, 1h or 70d"))
}

/// One segment of the synthetic capture: which calls it holds and the time it covers.
struct Cut {
    first: u64,
    rows: u64,
    start_ns: i64,
    end_ns: i64,
}

/// Where the segments begin and end: every `rotate` of the span, or every `segment_rows`.
fn cuts(args: &SynthArgs, step: i64) -> Vec<Cut> {
    let t0 = args.start;
    let at = |n: u64| t0 + n as i64 * step;
    let mut out = Vec::new();
    match args.rotate {
        Some(rotate) => {
            // Call n is at n * step: the first call at or after a time t is ceil(t / step).
            let first_at = |t: i64| ((t + step - 1) / step).clamp(0, args.events as i64) as u64;
            let mut start = 0i64;
            while start < args.span {
                let end = (start + rotate).min(args.span);
                let (lo, hi) = (first_at(start), first_at(end));
                out.push(Cut {
                    first: lo,
                    rows: hi - lo,
                    start_ns: t0 + start,
                    end_ns: t0 + end,
                });
                start = end;
            }
        }
        None => {
            let mut first = 0;
            while first < args.events {
                let rows = args.segment_rows.max(1).min(args.events - first);
                out.push(Cut {
                    first,
                    rows,
                    start_ns: at(first),
                    end_ns: at(first + rows - 1),
                });
                first += rows;
            }
        }
    }
    out
}

/// 2026-11-01T00:00:00Z, where the calls begin unless `--start` says otherwise.
pub const T0: i64 = 1_793_491_200_000_000_000;
/// The default span: one day of calls.
pub const DAY_NS: i64 = 86_400_000_000_000;

const COMMS: &[&str] = &[
    "clamd",
    "falcon-sensor",
    "auditd",
    "systemd",
    "containerd",
    "dockerd",
    "nginx",
    "sshd",
    "python3",
    "java",
    "node",
    "bash",
    "cron",
    "rsyslogd",
    "fapolicyd",
    "osqueryd",
    "mdatp",
    "tracker-miner",
    "updatedb",
    "x",
];
const DIRS: &[&str] = &[
    "/etc",
    "/root",
    "/home/alice/.ssh",
    "/usr/bin",
    "/var/log",
    "/tmp",
    "/srv/www",
    "/opt/app",
    "/var/lib/docker",
    "/boot",
    "/home/bob/projects",
    "/usr/lib",
    "/proc",
    "/dev/shm",
];
const MASKS: &[u64] = &[
    0x20,
    0x8 | 0x20,
    0x1_0000,
    0x2,
    0x100 | 0x200,
    0x4_0000 | 0x20,
    0x10_0000,
];

/// Distinct processes in the capture; each keeps one name for its life.
const PROCESSES: u64 = 3000;

pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let processes: Vec<ProcessInfo> = COMMS
        .iter()
        .map(|c| ProcessInfo {
            exe: Some(format!("/usr/bin/{c}")),
            container_id: None,
        })
        .collect();
    let step = (args.span / args.events.max(1) as i64).max(1);
    let cuts = cuts(args, step);
    let segments = cuts.len();
    let hosts = args.hosts.max(1);
    // Each host's chain: its recording id, next segment number and last segment's digest.
    let mut chains: Vec<(String, u64, String)> = (0..hosts)
        .map(|h| (format!("synthetic-recording-{h}"), 0, String::new()))
        .collect();
    for (seq, cut) in cuts.into_iter().enumerate() {
        let host_ix = seq % hosts as usize;
        let origin = Origin {
            host: if hosts == 1 {
                "synthetic".to_string()
            } else {
                format!("synthetic-{host_ix:04}")
            },
            boot_id: format!("00000000-0000-4000-8000-{host_ix:012}"),
        };
        let Cut {
            first: written,
            rows,
            start_ns,
            end_ns,
        } = cut;
        let (recording_id, chain_seq, prev) = &mut chains[host_ix];
        // Named as the recorder names a segment: by the time it was opened, then its place in
        // its recording.
        let path = args.output.join(format!(
            "fantrace-{}-{:06}.parquet",
            chrono::DateTime::from_timestamp_nanos(start_ns).format("%Y%m%dT%H%M%S%.6fZ"),
            chain_seq
        ));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let props = writer_properties("fantrace-bench synth")?;
        let (sink, seal) = SealingWriter::new(file);
        let mut w = ArrowWriter::try_new(sink, events_schema(), Some(props))?;
        let mut b =
            EventBuilder::with_capacity(ROW_GROUP_ROWS, ROW_GROUP_ROWS * 32, origin.clone());
        for i in 0..rows {
            let n = written + i;
            let r = rand();
            // A few busy processes make most calls, as in a real capture.
            let p = (r % PROCESSES) * ((r >> 8) % PROCESSES) / PROCESSES;
            let pid = 1000 + p as u32 * 7;
            let proc_ix = (p * 2_654_435_761 % COMMS.len() as u64) as usize;
            let init = r % 97 == 0;
            let fail = (r >> 20) % 33 == 0;
            let dir = DIRS[((r >> 24) % DIRS.len() as u64) as usize];
            let file_name = format!("{dir}/f{}", (r >> 32) % 20_000);
            let mut comm = [0u8; 16];
            comm[..COMMS[proc_ix].len()].copy_from_slice(COMMS[proc_ix].as_bytes());
            let flags = if init {
                [0x0u32, 0x4, 0x8][((r >> 40) % 3) as usize] | 0x1
            } else {
                [0x1u32, 0x1 | 0x10, 0x1 | 0x100, 0x2, 0x80][((r >> 40) % 5) as usize]
            };
            let ev = CallRecord {
                enter_ns: (n as i64 * step) as u64,
                exit_ns: (n as i64 * step) as u64 + 1_500,
                mask: if init {
                    0
                } else {
                    MASKS[((r >> 44) % MASKS.len() as u64) as usize]
                },
                ret: if fail {
                    -[9i64, 2, 1, 22][((r >> 48) % 4) as usize]
                } else if init {
                    3
                } else {
                    0
                },
                cgroup_id: 1 + (r >> 52) % 8,
                pid,
                tid: pid + ((r >> 56) % 3) as u32,
                uid: if (r >> 58) % 4 == 0 { 1000 } else { 0 },
                gid: 0,
                ppid: 1,
                mnt_ns: 4_026_531_841,
                pid_ns: 4_026_531_836,
                abi: 0,
                fanotify_fd: if init { -1 } else { 3 + ((r >> 60) % 4) as i32 },
                flags,
                dirfd: -100,
                path_len: if init { 0 } else { file_name.len() as u16 },
                path_status: if init {
                    PathStatus::Null
                } else {
                    PathStatus::Ok
                } as u8,
                syscall: if init { SYSCALL_INIT } else { SYSCALL_MARK },
                comm,
                ..CallRecord::default()
            };
            let path_bytes: &[u8] = if init { b"" } else { file_name.as_bytes() };
            let facts = synthetic_facts(&ev, &file_name);
            b.append(&ev, path_bytes, args.start, &processes[proc_ix], &facts);
            if b.len() >= ROW_GROUP_ROWS {
                w.write(&b.finish()?)?;
                w.flush()?;
            }
        }
        if !b.is_empty() {
            w.write(&b.finish()?)?;
        }
        let meta: Vec<(String, String)> = [
            (
                keys::SCHEMA_VERSION,
                keys::CURRENT_SCHEMA_VERSION.to_string(),
            ),
            (keys::HOSTNAME, origin.host.clone()),
            (keys::BOOT_ID, origin.boot_id.clone()),
            (keys::KERNEL_RELEASE, "synthetic".to_string()),
            (keys::EVENTS_WRITTEN, rows.to_string()),
            (keys::EVENTS_LOST, "0".to_string()),
            (keys::SEGMENT_START, rfc3339(start_ns)),
            (keys::SEGMENT_END, rfc3339(end_ns)),
            (keys::RECORDING_ID, recording_id.clone()),
            (keys::SEGMENT_SEQ, chain_seq.to_string()),
            (keys::PREV_SEGMENT_SHA256, prev.clone()),
            (keys::ATTACH_MODE, "synthetic".to_string()),
            (keys::IA32_COVERED, "yes".to_string()),
            (
                keys::STOP_REASON,
                if seq + 1 == segments {
                    "synthetic".to_string()
                } else {
                    "rotated: size".to_string()
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(
            (rows > 0)
                .then(|| {
                    let first = args.start + written as i64 * step;
                    let last = args.start + (written + rows - 1) as i64 * step;
                    [
                        (keys::TIME_MIN.to_string(), rfc3339(first)),
                        (keys::TIME_MAX.to_string(), rfc3339(last)),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .collect();
        let sealed = seal_and_close(w, &seal, meta, |_| Vec::new())
            .with_context(|| format!("closing {}", path.display()))?;
        // Indexed as the recorder indexes what it finishes.
        fantrace_schema::index::add(&path)?;
        *chain_seq += 1;
        *prev = sealed.file_sha256;
        if segments <= 1000 || seq % 1000 == 0 {
            eprintln!("wrote {}: {rows} rows", path.display());
        }
    }
    Ok(())
}

/// What a recorder would have learnt from the kernel about a synthetic call: one group per
/// process and fd, one inode per file name, the mark's masks after a successful add or remove.
fn synthetic_facts(ev: &CallRecord, file_name: &str) -> KernelFacts {
    use std::hash::{Hash as _, Hasher as _};
    let hash = |parts: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parts(&mut h);
        h.finish()
    };
    let fd = if ev.syscall == SYSCALL_INIT {
        ev.ret as i32
    } else {
        ev.fanotify_fd
    };
    let group_id = hash(&|h| (ev.pid, fd).hash(h)) >> 16;
    let mut facts = KernelFacts {
        group_id: (ev.ret >= 0).then_some(group_id),
        ..KernelFacts::default()
    };
    if ev.syscall != SYSCALL_MARK || ev.ret != 0 || ev.flags & 0x80 != 0 {
        return facts;
    }
    let dev = 254 << 20;
    let object = match ev.flags & 0x110 {
        0x10 => ObjectKey::Mount { id: 27 },
        0x100 => ObjectKey::Filesystem { dev },
        _ => ObjectKey::Inode {
            dev,
            ino: hash(&|h| file_name.hash(h)) & 0xff_ffff,
        },
    };
    facts.object = Some(object.to_string());
    facts.object_source = Some("exit");
    facts.fs_type = Some("ext4".to_string());
    // A mount or file-system mark is where the file system is mounted, as the recorder
    // resolves it; an inode mark the file itself.
    facts.resolved_path = Some(match object {
        ObjectKey::Inode { .. } => file_name.to_string(),
        _ => "/".to_string(),
    });
    facts.path_source = Some("handle");
    facts.mark = Some(MarkState {
        mask: if ev.flags & 0x1 != 0 { ev.mask } else { 0 },
        ignored_mask: 0,
        flags: 0,
    });
    facts
}
