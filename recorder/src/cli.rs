//! The recorder's command line, and the checks on its values: a value that would record
//! nothing, or take the machine's memory or disk, is refused before anything starts.
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::{attach, writer};

/// Record fanotify_mark(2) calls system-wide into zstd-compressed Parquet (needs root).
#[derive(Parser, Debug)]
#[command(name = "fantrace-recorder", version)]
pub struct Cli {
    /// Capture directory. Created (mode 0700) if missing; its parent must exist.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM).
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Also print each call as it is recorded, strace-style, on standard output.
    #[arg(long)]
    pub print: bool,
    /// Stop after recording this many calls (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_events: Option<u64>,
    /// Size of the kernel ring buffer in bytes: a power of two from 4096 to 1 GiB. The default
    /// holds about 70,000 calls, 50 ms of one core calling flat out; the recorder maps it
    /// twice, so it counts double in its resident memory.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = parse_ring_buffer)]
    pub ring_buffer: u32,
    /// Start a new segment when the open one reaches this many bytes (at least 64 KiB).
    #[arg(long, default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(MIN_ROTATE_SIZE..))]
    pub rotate_size: u64,
    /// Start a new segment after this many seconds (at least 0.1), even when idle (an empty
    /// segment shows the recorder was running and saw nothing).
    #[arg(long, default_value = "60", value_parser = parse_interval)]
    pub rotate_interval: Duration,
    /// How often every fanotify group on the machine is compared with what the kernel says
    /// (its fdinfo): the longest a change the kernel makes on its own (an unlinked file's
    /// mark, a closed group in tracepoint mode) takes to reach the capture. At least 0.1.
    #[arg(long, default_value = "1", value_parser = parse_interval)]
    pub reconcile_interval: Duration,
    /// When the disk fills: stop with an error, or drop and count calls until space is back.
    #[arg(long, value_enum, default_value_t = writer::OnDiskFull::Stop)]
    pub on_disk_full: writer::OnDiskFull,
    /// Keep only the newest N finished segments, removing older ones (0: keep all). With
    /// --upload a segment is never removed before it is uploaded.
    #[arg(long, default_value_t = 0)]
    pub keep: usize,
    /// Ship every finished segment to this object store prefix (s3://bucket/prefix, gs://,
    /// az://), under host=<hostname>/date=<YYYY-MM-DD>/, and remove it locally once the store
    /// holds its exact bytes. Segments wait in --output while the store cannot be reached.
    /// Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY...).
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,
    /// The S3-compatible server for --upload s3:// (Garage, MinIO, Ceph); else
    /// AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL", requires = "upload")]
    pub endpoint: Option<String>,
    /// On stopping, how long to go on trying to ship waiting segments while none can be
    /// shipped; what is left is shipped by the next run with the same --output and --upload.
    #[arg(long, default_value = "30", value_parser = parse_seconds, requires = "upload")]
    pub upload_patience: Duration,
    /// Do not record: ship the segments waiting in --output to --upload, and exit (after an
    /// outage, or to upload a capture recorded without --upload). Needs no privileges.
    #[arg(long, requires = "upload")]
    pub upload_only: bool,
    /// Record only this process (repeatable); filtered in the kernel.
    #[arg(long = "pid", value_parser = parse_pid)]
    pub pids: Vec<u32>,
    /// Never record this process (repeatable).
    #[arg(long = "exclude-pid", value_parser = parse_pid)]
    pub exclude_pids: Vec<u32>,
    /// Record only calls by this user id (repeatable).
    #[arg(long = "uid")]
    pub uids: Vec<u32>,
    /// Never record calls by this user id (repeatable).
    #[arg(long = "exclude-uid")]
    pub exclude_uids: Vec<u32>,
    /// Record only threads with this name (comm, at most 15 bytes; repeatable).
    #[arg(long = "comm", value_parser = parse_comm)]
    pub comms: Vec<[u8; 16]>,
    /// Never record threads with this name (repeatable).
    #[arg(long = "exclude-comm", value_parser = parse_comm)]
    pub exclude_comms: Vec<[u8; 16]>,
    /// Record only processes in this cgroup v2: a path under /sys/fs/cgroup or a cgroup id
    /// (repeatable). A process in a child cgroup is not included.
    #[arg(long = "cgroup", value_parser = parse_cgroup)]
    pub cgroups: Vec<u64>,
    /// Never record processes in this cgroup (repeatable).
    #[arg(long = "exclude-cgroup", value_parser = parse_cgroup)]
    pub exclude_cgroups: Vec<u64>,
    /// How to hook the syscalls: fentry/fexit (BPF trampolines: no cost to other syscalls),
    /// syscall tracepoints (every kernel, but every syscall on the machine pays), or auto
    /// (fentry where the kernel has it).
    #[arg(long, value_enum, default_value_t = attach::AttachMode::Auto)]
    pub attach: attach::AttachMode,
    /// Record 32-bit (ia32) calls. fentry mode does so at no extra cost; in tracepoint mode it
    /// takes the raw syscall tracepoints, a program run for every syscall on the machine, where
    /// `off` uses the per-syscall tracepoints instead (cheaper for other syscalls, blind to
    /// 32-bit calls).
    #[arg(long, value_enum, default_value_t = attach::Ia32::On)]
    pub ia32: attach::Ia32,
}

fn parse_comm(s: &str) -> Result<[u8; 16], String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "{s:?}: a thread name is 1 to 15 bytes (the kernel's comm is cut to 15)"
        ));
    }
    let mut out = [0u8; 16];
    out[..s.len()].copy_from_slice(s.as_bytes());
    Ok(out)
}

/// Where cgroup v2 is mounted: `/sys/fs/cgroup` on most systems, `/sys/fs/cgroup/unified` on
/// hybrid ones.
fn cgroup2_root() -> PathBuf {
    std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            mounts.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                let (_, at, kind) = (f.next()?, f.next()?, f.next()?);
                (kind == "cgroup2").then(|| PathBuf::from(at))
            })
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

/// A cgroup v2, by path (as /proc/PID/cgroup gives it, or under the cgroup v2 mount) or by id
/// (the inode number of its directory); either must name a cgroup that exists.
fn parse_cgroup(s: &str) -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt as _;
    let root = cgroup2_root();
    if let Ok(id) = s.parse::<u64>() {
        if id == 0 {
            return Err("cgroup id 0 names no cgroup".into());
        }
        return find_cgroup_id(&root, id, 0)
            .map(|_| id)
            .ok_or_else(|| format!("no cgroup under {} has id {id}", root.display()));
    }
    let path = if Path::new(s).starts_with(&root) {
        PathBuf::from(s)
    } else {
        root.join(s.trim_start_matches('/'))
    };
    let real = std::fs::canonicalize(&path).map_err(|e| {
        format!(
            "cgroup {}: {e} (give a path under {} or an id)",
            path.display(),
            root.display()
        )
    })?;
    if !real.starts_with(&root) || !real.join("cgroup.procs").exists() {
        return Err(format!(
            "{} is not a cgroup (it resolves to {}, which is not a cgroup v2 directory under {})",
            path.display(),
            real.display(),
            root.display()
        ));
    }
    std::fs::metadata(&real)
        .map(|m| m.ino())
        .map_err(|e| format!("cgroup {}: {e}", real.display()))
}

/// Whether a cgroup directory under `dir` has inode `id` (the hierarchy is small: a search
/// costs milliseconds).
fn find_cgroup_id(dir: &Path, id: u64, depth: usize) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    if std::fs::metadata(dir).ok()?.ino() == id {
        return Some(dir.to_path_buf());
    }
    if depth > 32 {
        return None;
    }
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| find_cgroup_id(&e.path(), id, depth + 1))
}

fn parse_pid(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("pid 0 is no process (the idle task makes no syscalls)".into()),
        Ok(p) => Ok(p),
        Err(e) => Err(format!("{s:?} is not a process id: {e}")),
    }
}

/// The most the ring buffer may take: the kernel and the recorder each map it.
const MAX_RING_BUFFER: u32 = 1 << 30;

const MIN_ROTATE_SIZE: u64 = 64 * 1024;

fn parse_ring_buffer(s: &str) -> Result<u32, String> {
    let n: u64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a byte count: {e}"))?;
    if !n.is_power_of_two() || !(4096..=u64::from(MAX_RING_BUFFER)).contains(&n) {
        return Err(format!(
            "{n}: the ring buffer is a power of two from 4096 to {MAX_RING_BUFFER} bytes (1 GiB)"
        ));
    }
    Ok(n as u32)
}

/// Rotation more often than this writes more files than calls and fsyncs more than it records.
const MIN_ROTATE_INTERVAL: Duration = Duration::from_millis(100);

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    if d < MIN_ROTATE_INTERVAL {
        return Err(format!("{s}: segments last at least 0.1 s"));
    }
    Ok(d)
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_record_nothing_or_take_the_machine_are_refused() {
        assert!(parse_pid("0").is_err());
        assert_eq!(parse_pid("1"), Ok(1));
        assert!(parse_cgroup("0").is_err());
        assert!(parse_cgroup("../../../etc").is_err());
        let err = parse_cgroup("../../../../../../etc").unwrap_err();
        assert!(
            err.contains("not a cgroup") && err.contains("/etc"),
            "{err}"
        );
        assert!(parse_cgroup("/").is_ok(), "the root cgroup is one");
        assert!(parse_ring_buffer("2147483648").is_err());
        assert!(parse_ring_buffer("3000").is_err());
        assert_eq!(parse_ring_buffer("4096"), Ok(4096));
        assert!(parse_interval("1e-9").is_err());
        assert!(parse_interval("0.2").is_ok());
    }
}
