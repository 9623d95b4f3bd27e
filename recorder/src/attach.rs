//! Attach: hook the loaded probe to the syscalls in the cheapest way this kernel allows.
//!
//! - **fentry** (BPF trampolines on `__x64_sys_fanotify_mark` and its kin): the traced call
//!   pays a fraction of a tracepoint's cost and every other syscall pays nothing. Needs a
//!   kernel built with ftrace (most distribution kernels since 5.5) and the functions in BTF.
//! - **tracepoint**: works without trampolines, but while attached every syscall of every task
//!   takes the kernel's traced slow path. By default the raw `sys_enter`/`sys_exit` tracepoints,
//!   which see both ABIs and cost the traced call least, at a program run for every syscall;
//!   with `--ia32 off` the per-syscall `syscalls:sys_{enter,exit}_fanotify_*` tracepoints, which
//!   cost other syscalls less but never see ia32 calls.
//!
//! `auto` tries fentry and falls back to tracepoints, saying why. Whatever is attached is
//! described in an [`Attachment`], which goes into the log and every segment's metadata.
use anyhow::{Context as _, anyhow, bail};
use aya::programs::{BtfTracePoint, FEntry, FExit, TracePoint};
use aya::{Btf, BtfError, Ebpf};
use fantrace_schema::record::{KernelOffset, names};

use crate::btf::KernelOffsets;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// fentry/fexit where the kernel has BPF trampolines, syscall tracepoints otherwise.
    Auto,
    /// fentry/fexit on the syscall functions; fail if the kernel cannot.
    Fentry,
    /// Tracepoints: the raw syscall ones (both ABIs), or with `--ia32 off` the per-syscall ones.
    Tracepoint,
}

/// Whether ia32 calls are recorded in tracepoint mode, where that means a program run for
/// every syscall on the machine (fentry mode covers them at no such cost, whatever this says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ia32 {
    /// Record ia32 calls in every mode.
    On,
    /// In tracepoint mode, use the per-syscall tracepoints: cheaper for other syscalls, but
    /// 32-bit calls go unrecorded, and every segment says so.
    Off,
}

/// How the probe is attached.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// `fentry` or `tracepoint`.
    pub mode: &'static str,
    /// What was asked for and, after a fallback, what failed.
    pub reason: String,
    /// The kernel functions or tracepoints attached to.
    pub points: Vec<String>,
    pub ia32: Ia32Coverage,
    /// The functions inside fanotify hooked (fentry mode): path resolution, group release,
    /// the kernel's own mark removals.
    pub hooks: Vec<String>,
    /// Whether the scan of fanotify fds runs (groups before the recording, fds passed on).
    pub scans: bool,
}

impl Attachment {
    /// The `fantrace.kernel_state_sources` value: where this recording's facts about the
    /// kernel's groups and marks come from.
    pub fn kernel_state_sources(&self, reconcile: std::time::Duration) -> String {
        let mut parts = vec!["marks read by the probe after each successful call".to_string()];
        if self.hooks.is_empty() {
            parts.push(format!(
                "the dirfd's object read at entry; no hooks ({} mode)",
                self.mode
            ));
        } else {
            parts.push(format!("hooks: {}", self.hooks.join(", ")));
        }
        if self.scans {
            parts.push(format!(
                "every fanotify fd scanned and its fdinfo read at start and every {} s",
                reconcile.as_secs_f64()
            ));
        } else {
            parts.push("no scan: groups before the recording are not seen".to_string());
        }
        parts.join("; ")
    }
}

/// Whether 32-bit calls reach the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ia32Coverage {
    Covered,
    /// The kernel has no ia32 syscall entry points, so there are no such calls to miss.
    NoSuchAbi(String),
    /// ia32 calls happen unrecorded, for this reason.
    Gap(String),
}

impl Ia32Coverage {
    /// The `fantrace.ia32_covered` value: `yes`, `yes (...)` or `no: <why>`; readers look at
    /// the first word.
    pub fn metadata_value(&self) -> String {
        match self {
            Self::Covered => "yes".into(),
            Self::NoSuchAbi(why) => format!("yes (no 32-bit syscalls on this kernel: {why})"),
            Self::Gap(why) => format!("no: {why}"),
        }
    }
}

/// A syscall function a pair of fentry/fexit programs attaches to.
struct Hook {
    entry: &'static str,
    exit: &'static str,
    function: &'static str,
}

/// Native entry points: both must exist for fentry mode. The kernel names its syscall
/// functions per architecture (`__x64_sys_*` on x86-64); the probe reads their `pt_regs`
/// argument with the x86-64 convention.
const NATIVE: [Hook; 2] = [
    Hook {
        entry: names::INIT_X64_FENTRY,
        exit: names::INIT_X64_FEXIT,
        function: "__x64_sys_fanotify_init",
    },
    Hook {
        entry: names::MARK_X64_FENTRY,
        exit: names::MARK_X64_FEXIT,
        function: "__x64_sys_fanotify_mark",
    },
];

/// ia32 entry points: present when the kernel has ia32 emulation. `fanotify_mark` goes through
/// a compat wrapper (its 64-bit mask arrives in two registers); `fanotify_init` does not.
const IA32: [Hook; 2] = [
    Hook {
        entry: names::INIT_IA32_FENTRY,
        exit: names::INIT_IA32_FEXIT,
        function: "__ia32_sys_fanotify_init",
    },
    Hook {
        entry: names::MARK_IA32_FENTRY,
        exit: names::MARK_IA32_FEXIT,
        function: "__ia32_compat_sys_fanotify_mark",
    },
];

/// Saved-register fields the native and ia32 argument reads use.
const NATIVE_REGS: [KernelOffset; 5] = [
    KernelOffset::PtRegsDi,
    KernelOffset::PtRegsSi,
    KernelOffset::PtRegsDx,
    KernelOffset::PtRegsR10,
    KernelOffset::PtRegsR8,
];
const IA32_REGS: [KernelOffset; 6] = [
    KernelOffset::PtRegsBx,
    KernelOffset::PtRegsCx,
    KernelOffset::PtRegsDx,
    KernelOffset::PtRegsSi,
    KernelOffset::PtRegsDi,
    KernelOffset::PtRegsBp,
];

/// What the raw syscall tracepoints need besides the ia32 registers: the syscall number at
/// exit and the task's ia32 flag.
const RAW_FIELDS: [KernelOffset; 2] = [
    KernelOffset::PtRegsOrigAx,
    KernelOffset::TaskThreadInfoStatus,
];

fn has_function(btf: &Btf, name: &str) -> Result<bool, BtfError> {
    match btf.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func) {
        Ok(_) => Ok(true),
        Err(BtfError::UnknownBtfTypeName { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn attach(
    ebpf: &mut Ebpf,
    btf: &Btf,
    offsets: &KernelOffsets,
    mode: AttachMode,
    ia32: Ia32,
) -> anyhow::Result<Attachment> {
    match mode {
        AttachMode::Fentry => attach_fentry(ebpf, btf, offsets)
            .map(|a| with_reason(a, "asked for with --attach fentry".into()))
            .context(
                "attaching fentry/fexit programs failed; use --attach tracepoint (or auto) on \
                 kernels without BPF trampolines",
            ),
        AttachMode::Tracepoint => attach_tracepoints(ebpf, btf, offsets, ia32)
            .map(|a| with_reason(a, "asked for with --attach tracepoint".into())),
        AttachMode::Auto => match attach_fentry(ebpf, btf, offsets) {
            Ok(a) => Ok(with_reason(
                a,
                "auto: this kernel has BPF trampolines for the syscall functions".into(),
            )),
            Err(e) => {
                let why = short_cause(&e);
                tracing::info!("fentry is not available ({why}); using tracepoints");
                detach_fentry(ebpf);
                attach_tracepoints(ebpf, btf, offsets, ia32).map(|a| {
                    with_reason(
                        a,
                        format!("auto: fentry unavailable on this kernel ({why})"),
                    )
                })
            }
        },
    }
}

/// An attach failure in one line: what was being done and what the kernel answered, without
/// the empty verifier log aya appends when the kernel refused before verifying.
fn short_cause(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        if let Some(aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        }) = cause.downcast_ref()
        {
            let log = verifier_log.to_string();
            let last = log.lines().rev().find(|l| !l.trim().is_empty());
            parts.push(match last {
                Some(line) => format!("the kernel refused it: {io_error}; verifier: {line}"),
                None => format!("the kernel refused it: {io_error}"),
            });
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}

fn with_reason(mut a: Attachment, reason: String) -> Attachment {
    a.reason = reason;
    a
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("the probe object has no program {name}"))?;
    program
        .try_into()
        .with_context(|| format!("program {name} is not of the expected type"))
}

/// Attaches the fentry/fexit pair of every hook whose function this kernel has, exits
/// before entries so no recorded entry goes without its exit.
fn attach_fentry(
    ebpf: &mut Ebpf,
    btf: &Btf,
    offsets: &KernelOffsets,
) -> anyhow::Result<Attachment> {
    let lacking = offsets.lacking(&NATIVE_REGS);
    if !lacking.is_empty() {
        bail!(
            "this kernel's BTF has no {} (the probe reads x86-64 syscall registers)",
            lacking.join(", ")
        );
    }
    for hook in &NATIVE {
        if !has_function(btf, hook.function)? {
            bail!("the kernel's BTF has no function {}", hook.function);
        }
    }
    let mut hooks: Vec<&Hook> = NATIVE.iter().collect();
    let ia32_lacking: Vec<String> = IA32
        .iter()
        .map(|h| Ok((h, has_function(btf, h.function)?)))
        .collect::<Result<Vec<_>, BtfError>>()?
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(h, _)| h.function.to_string())
        .chain(offsets.lacking(&IA32_REGS))
        .collect();
    // A kernel without the ia32 entry points has no ia32 syscalls to miss.
    let ia32 = if ia32_lacking.is_empty() {
        hooks.extend(IA32.iter());
        Ia32Coverage::Covered
    } else {
        let why = format!("its BTF has no {}", ia32_lacking.join(", "));
        tracing::info!("no ia32 syscall entry points in this kernel: {why}");
        Ia32Coverage::NoSuchAbi(why)
    };
    for hook in &hooks {
        let exit: &mut FExit = program(ebpf, hook.exit)?;
        exit.load(hook.function, btf)
            .with_context(|| format!("loading {} for {}", hook.exit, hook.function))?;
        exit.attach()
            .with_context(|| format!("attaching fexit to {}", hook.function))?;
    }
    for hook in &hooks {
        let entry: &mut FEntry = program(ebpf, hook.entry)?;
        entry
            .load(hook.function, btf)
            .with_context(|| format!("loading {} for {}", hook.entry, hook.function))?;
        entry
            .attach()
            .with_context(|| format!("attaching fentry to {}", hook.function))?;
    }
    Ok(Attachment {
        mode: "fentry",
        reason: String::new(),
        points: hooks.iter().map(|h| h.function.to_string()).collect(),
        ia32,
        hooks: Vec::new(),
        scans: false,
    })
}

/// Unloads whatever fentry/fexit programs a failed attempt left loaded or attached.
fn detach_fentry(ebpf: &mut Ebpf) {
    for hook in NATIVE.iter().chain(IA32.iter()) {
        if let Ok(p) = program::<FExit>(ebpf, hook.exit) {
            let _ = p.unload();
        }
        if let Ok(p) = program::<FEntry>(ebpf, hook.entry) {
            let _ = p.unload();
        }
    }
}

/// The raw syscall tracepoints, which see both ABIs; with `--ia32 off`, or on a kernel where
/// they cannot attach, the per-syscall tracepoints, which see native calls only.
fn attach_tracepoints(
    ebpf: &mut Ebpf,
    btf: &Btf,
    offsets: &KernelOffsets,
    ia32: Ia32,
) -> anyhow::Result<Attachment> {
    let gap = match ia32 {
        Ia32::Off => "--ia32 off in tracepoint mode: the per-syscall tracepoints do not report \
                      32-bit calls"
            .to_string(),
        Ia32::On => match attach_raw_syscalls(ebpf, btf, offsets) {
            Ok(()) => {
                return Ok(Attachment {
                    mode: "tracepoint",
                    reason: String::new(),
                    points: [names::RAW_ENTER_TRACEPOINT, names::RAW_EXIT_TRACEPOINT]
                        .iter()
                        .map(|tp| format!("raw_syscalls:{tp}"))
                        .collect(),
                    ia32: Ia32Coverage::Covered,
                    hooks: Vec::new(),
                    scans: false,
                });
            }
            Err(e) => {
                let why = format!("{e:#}");
                tracing::warn!(
                    "the raw syscall tracepoints could not be attached ({why}); using the \
                     per-syscall ones, which do not report 32-bit (ia32) calls"
                );
                for program_name in [names::RAW_ENTER_PROGRAM, names::RAW_EXIT_PROGRAM] {
                    if let Ok(p) = program::<BtfTracePoint>(ebpf, program_name) {
                        let _ = p.unload();
                    }
                }
                format!("raw syscall tracepoints unavailable ({why})")
            }
        },
    };
    crate::tracefs::ensure_mounted()?;
    let mut points = Vec::new();
    // fanotify_init first: a group created while the marks attach is then never missed.
    for (program_name, tracepoint) in [
        (names::INIT_EXIT_PROGRAM, names::INIT_EXIT_TRACEPOINT),
        (names::INIT_ENTER_PROGRAM, names::INIT_ENTER_TRACEPOINT),
        (names::EXIT_PROGRAM, names::EXIT_TRACEPOINT),
        (names::ENTER_PROGRAM, names::ENTER_TRACEPOINT),
    ] {
        let tp: &mut TracePoint = program(ebpf, program_name)?;
        tp.load()
            .with_context(|| format!("the kernel verifier rejected {program_name}"))?;
        tp.attach(names::TRACEPOINT_CATEGORY, tracepoint)
            .with_context(|| {
                format!(
                    "attaching to tracepoint {}/{tracepoint} failed; is {}/events/{}/{tracepoint} \
                     present?",
                    names::TRACEPOINT_CATEGORY,
                    crate::tracefs::TRACEFS,
                    names::TRACEPOINT_CATEGORY
                )
            })?;
        points.push(format!("{}:{tracepoint}", names::TRACEPOINT_CATEGORY));
    }
    Ok(Attachment {
        mode: "tracepoint",
        reason: String::new(),
        points,
        ia32: Ia32Coverage::Gap(gap),
        hooks: Vec::new(),
        scans: false,
    })
}

fn attach_raw_syscalls(ebpf: &mut Ebpf, btf: &Btf, offsets: &KernelOffsets) -> anyhow::Result<()> {
    let lacking: Vec<String> = offsets
        .lacking(&NATIVE_REGS)
        .into_iter()
        .chain(offsets.lacking(&IA32_REGS))
        .chain(offsets.lacking(&RAW_FIELDS))
        .collect();
    if !lacking.is_empty() {
        bail!("this kernel's BTF has no {}", lacking.join(", "));
    }
    for (program_name, tracepoint) in [
        (names::RAW_EXIT_PROGRAM, names::RAW_EXIT_TRACEPOINT),
        (names::RAW_ENTER_PROGRAM, names::RAW_ENTER_TRACEPOINT),
    ] {
        let tp: &mut BtfTracePoint = program(ebpf, program_name)?;
        tp.load(tracepoint, btf)
            .with_context(|| format!("loading {program_name}"))?;
        tp.attach()
            .with_context(|| format!("attaching to raw tracepoint {tracepoint}"))?;
    }
    Ok(())
}

/// fentry programs inside fanotify, where this kernel has the functions: the object a mark
/// call resolved, a group's release, the kernel's own mark removals. Each that cannot attach is
/// left out (the scan and fdinfo then stand in for it, a second later) and the log says why.
/// Returns the functions hooked.
pub fn attach_kernel_hooks(ebpf: &mut Ebpf, btf: &Btf) -> Vec<String> {
    let mut attached = Vec::new();
    for (program_name, function) in [
        (names::PATH_NOTIFY_FENTRY, names::PATH_NOTIFY_FUNCTION),
        (names::GROUP_RELEASE_FENTRY, names::GROUP_RELEASE_FUNCTION),
        (names::MARK_DESTROY_FENTRY, names::MARK_DESTROY_FUNCTION),
    ] {
        let result = (|| -> anyhow::Result<()> {
            if !has_function(btf, function)? {
                bail!("the kernel's BTF has no function {function}");
            }
            let p: &mut FEntry = program(ebpf, program_name)?;
            p.load(function, btf)
                .with_context(|| format!("loading {program_name}"))?;
            p.attach()
                .with_context(|| format!("attaching fentry to {function}"))?;
            Ok(())
        })();
        match result {
            Ok(()) => attached.push(function.to_string()),
            Err(e) => tracing::warn!(
                "{function} is not hooked ({}); the scan and fdinfo stand in for it",
                short_cause(&e)
            ),
        }
    }
    attached
}

/// The exit of group owners, in every mode: a BTF tracepoint, which the kernels fentry and
/// tracepoint modes run on both have. Returns the attach point's name.
pub fn attach_owner_exit(ebpf: &mut Ebpf, btf: &Btf) -> anyhow::Result<String> {
    let tracepoint = names::OWNER_EXIT_TRACEPOINT;
    let tp: &mut BtfTracePoint = program(ebpf, names::OWNER_EXIT_PROGRAM)?;
    tp.load(tracepoint, btf)
        .with_context(|| format!("loading {}", names::OWNER_EXIT_PROGRAM))?;
    tp.attach()
        .with_context(|| format!("attaching to raw tracepoint {tracepoint}"))?;
    Ok(format!("sched:{tracepoint}"))
}
