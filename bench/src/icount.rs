//! Instructions per call, counted in Debian 12's 6.1 kernel booted under QEMU with
//! `-icount shift=0`: the guest's clock advances one nanosecond per instruction, so the calling
//! loop's own CPU time is the number of instructions it executed (its syscalls, and the BPF
//! programs they ran, included; the tracer's threads not). Unlike nanoseconds on a shared VM,
//! these figures repeat from run to run and compare across machines.
//!
//! The host side ([`Bench::instructions`]) boots the guest; inside, `fantrace-bench
//! icount-inside` measures every configuration in turn and writes one JSON file.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::caller::Mode;
use crate::capture_cost::{BPFTRACE_COUNT, Bench};
use crate::report::Row;
use crate::tracer::Tracer;

/// bpftrace counting through a BPF trampoline on the syscall function (`kfunc` is bpftrace's
/// name for fentry).
const BPFTRACE_KFUNC_COUNT: &str = "BEGIN { printf(\"ready\\n\"); } \
    kfunc:__x64_sys_fanotify_mark { @calls = count(); }";

/// bpftrace counting through the raw syscall tracepoint, the one tracepoint mode attaches to
/// (bpftrace reaches it as the `raw_syscalls` trace event), filtered to `fanotify_mark`.
const BPFTRACE_RAW_COUNT: &str = "BEGIN { printf(\"ready\\n\"); } \
    tracepoint:raw_syscalls:sys_enter /args->id == 301/ { @calls = count(); }";

/// What runs while the loops are counted.
enum Tracing {
    Nothing,
    Recorder(&'static [&'static str]),
    Bpftrace(&'static str),
}

const CONFIGS: [(&str, Tracing); 8] = [
    ("bare", Tracing::Nothing),
    (
        "fantrace fentry",
        Tracing::Recorder(&["--attach", "fentry"]),
    ),
    (
        "fantrace tracepoint",
        Tracing::Recorder(&["--attach", "tracepoint"]),
    ),
    (
        "fantrace tracepoint --ia32 off",
        Tracing::Recorder(&["--attach", "tracepoint", "--ia32", "off"]),
    ),
    ("bpftrace kfunc", Tracing::Bpftrace(BPFTRACE_KFUNC_COUNT)),
    ("bpftrace tracepoint", Tracing::Bpftrace(BPFTRACE_COUNT)),
    (
        "bpftrace raw_syscalls",
        Tracing::Bpftrace(BPFTRACE_RAW_COUNT),
    ),
    ("bare again", Tracing::Nothing),
];

/// Instructions per call of the loops under one configuration.
#[derive(Debug, Serialize, Deserialize)]
pub struct Counted {
    pub config: String,
    pub getppid: f64,
    pub fanotify_mark: f64,
    /// A successful call: a mark added, then removed, in turn (the probe reads the group's
    /// marks after each).
    #[serde(default)]
    pub successful_mark: f64,
}

#[derive(clap::Args, Clone)]
pub struct InsideArgs {
    /// Where to write the counts (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Calls per loop.
    #[arg(long, default_value_t = 100_000)]
    pub calls: u64,
}

/// Inside the guest: every configuration, both loops, written to `--out`.
pub fn inside(args: &InsideArgs) -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()
        .context("locating the bench binary")?
        .parent()
        .context("the bench binary has no directory")?
        .to_path_buf();
    let work = args.out.parent().unwrap_or(Path::new("/tmp")).join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    // The shared directory is 9p, whose inodes change from one lookup to the next: a mark
    // added there cannot be found again to remove. The loops and captures use a tmpfs.
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "fantrace-icount"])
        .arg(&work)
        .status()
        .context("running mount")?;
    if !status.success() {
        bail!("mounting a tmpfs on {} failed ({status})", work.display());
    }
    mount_tracefs()?;
    let bench = Bench {
        bin_dir: bin_dir.clone(),
        work: work.clone(),
        repeat: 1,
        bpftrace: true,
        duckdb: false,
    };
    let mut out = Vec::new();
    for (i, (config, tracing)) in CONFIGS.iter().enumerate() {
        eprintln!("icount: {config}");
        let tracer = match tracing {
            Tracing::Nothing => None,
            Tracing::Recorder(extra) => Some(Tracer::recorder(
                &bin_dir,
                &work.join(format!("capture-{i}")),
                extra,
            )?),
            Tracing::Bpftrace(script) => Some(Tracer::bpftrace(script)?),
        };
        let getppid = bench.call(Mode::Other, Some(args.calls), None)?;
        let fanotify_mark = bench.call(Mode::Fail, Some(args.calls), None)?;
        let successful = bench.call(Mode::Mark, Some((args.calls / 10).max(1000)), None)?;
        if let Some(t) = tracer {
            t.stop()?;
        }
        out.push(Counted {
            config: config.to_string(),
            getppid: getppid.cpu_ns_per_call(),
            fanotify_mark: fanotify_mark.cpu_ns_per_call(),
            successful_mark: successful.cpu_ns_per_call(),
        });
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)
        .with_context(|| format!("writing {}", args.out.display()))
}

/// bpftrace finds tracepoints through tracefs, which the guest does not mount.
fn mount_tracefs() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events").exists() {
        return Ok(());
    }
    let status = Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status()
        .context("running mount")?;
    if !status.success() {
        bail!("mounting tracefs on /sys/kernel/tracing failed ({status})");
    }
    Ok(())
}

impl Bench {
    /// Boots the 6.1 guest under icount, counts, and turns the counts into rows.
    pub fn instructions(&self, calls: u64) -> anyhow::Result<Vec<Row>> {
        let kernel =
            fantrace_guest::GuestKernel::find(fantrace_guest::DEBIAN_6_1).map_err(|e| {
                anyhow::anyhow!("the 6.1 guest cannot run: {e} (./fantrace.sh bench installs it)")
            })?;
        let shared = self.work.join("icount");
        if shared.exists() {
            std::fs::remove_dir_all(&shared)
                .with_context(|| format!("removing {}", shared.display()))?;
        }
        std::fs::create_dir_all(&shared)
            .with_context(|| format!("creating {}", shared.display()))?;
        let out = shared.join("counts.json");
        let command = format!(
            "FANTRACE_BENCH_ATTACH_TIMEOUT=900 {} icount-inside --out {} --calls {calls}",
            self.bin_dir.join("fantrace-bench").display(),
            out.display()
        );
        let log = kernel
            .run(&command, &shared, true, Duration::from_secs(3600))
            .map_err(|e| anyhow::anyhow!(e))?;
        let counts: Vec<Counted> = std::fs::read(&out)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .with_context(|| format!("the guest wrote no counts; its output:\n{log}"))?;
        eprintln!(
            "  instructions per call in the guest (getppid, fast-failing fanotify_mark, \
             successful fanotify_mark):"
        );
        for c in &counts {
            eprintln!(
                "    {:<32} {:>7.0} {:>7.0} {:>7.0}",
                c.config, c.getppid, c.fanotify_mark, c.successful_mark
            );
        }
        rows(&counts)
    }
}

fn rows(counts: &[Counted]) -> anyhow::Result<Vec<Row>> {
    let get = |config: &str| {
        counts
            .iter()
            .find(|c| c.config == config)
            .with_context(|| format!("no count for {config}"))
    };
    let (bare1, bare2) = (get("bare")?, get("bare again")?);
    let bare = Counted {
        config: "bare".into(),
        getppid: (bare1.getppid + bare2.getppid) / 2.0,
        fanotify_mark: (bare1.fanotify_mark + bare2.fanotify_mark) / 2.0,
        successful_mark: (bare1.successful_mark + bare2.successful_mark) / 2.0,
    };
    let added = |c: &Counted, getppid: bool| {
        if getppid {
            c.getppid - bare.getppid
        } else {
            c.fanotify_mark - bare.fanotify_mark
        }
    };
    let mut rows = vec![Row::new(
        "instructions per call, bare, 6.1 guest (getppid / fast-failing fanotify_mark)",
        format!("{:.0} / {:.0}", bare.getppid, bare.fanotify_mark),
    )];
    let kfunc = get("bpftrace kfunc")?;
    // Counted instructions repeat to within a few between runs (timer interrupts land in
    // the loop now and then): a figure within that of zero is zero.
    const NOISE: f64 = 2.0;
    let fentry = get("fantrace fentry")?;
    let ours = added(fentry, true);
    rows.push(
        Row::new(
            "instructions added to every other syscall (getppid), fentry mode, 6.1 guest",
            format!("{ours:+.0}"),
        )
        .peer(
            format!("bpftrace counting via kfunc: {:+.0}", added(kfunc, true)),
            None,
        )
        .target("0", ours.abs() <= NOISE),
    );
    let ours = added(fentry, false);
    let peer = added(kfunc, false);
    rows.push(
        Row::new(
            "instructions added to fast-failing fanotify_mark, fentry mode, full capture, 6.1 guest",
            format!("{ours:+.0} ({:.0} vs {:.0})", fentry.fanotify_mark, bare.fanotify_mark),
        )
        .peer(format!("bpftrace counting via kfunc: {peer:+.0}"), Some(ours / peer))
        .target("≤ 600", ours <= 600.0),
    );
    for (config, what) in [
        ("fantrace fentry", "fentry mode"),
        ("fantrace tracepoint", "tracepoint mode"),
    ] {
        let c = get(config)?;
        rows.push(Row::new(
            format!(
                "instructions added to a successful fanotify_mark (a mark added or removed; the \
                 group's marks read after it), {what}, 6.1 guest"
            ),
            format!(
                "{:+.0} ({:.0} vs {:.0})",
                c.successful_mark - bare.successful_mark,
                c.successful_mark,
                bare.successful_mark
            ),
        ));
    }
    for (config, what, peer_config, peer_name) in [
        (
            "fantrace tracepoint",
            "tracepoint mode (raw syscall tracepoints, both ABIs)",
            "bpftrace raw_syscalls",
            "bpftrace counting via raw_syscalls:sys_enter",
        ),
        (
            "fantrace tracepoint --ia32 off",
            "tracepoint mode --ia32 off (syscall tracepoints)",
            "bpftrace tracepoint",
            "bpftrace counting via syscalls:sys_enter_fanotify_mark",
        ),
    ] {
        let (c, peer) = (get(config)?, get(peer_config)?);
        for (getppid, call) in [(true, "getppid"), (false, "fast-failing fanotify_mark")] {
            let ours = added(c, getppid);
            let theirs = added(peer, getppid);
            rows.push(
                Row::new(
                    format!("instructions added to {call}, {what}, 6.1 guest"),
                    format!("{ours:+.0}"),
                )
                .peer(format!("{peer_name}: {theirs:+.0}"), Some(ours / theirs))
                .target("≤ peer", ours <= theirs + NOISE),
            );
        }
    }
    Ok(rows)
}
