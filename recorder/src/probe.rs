//! Load: check the kernel, load the embedded probe with its settings and filters, attach it
//! (`attach.rs` picks how), and hand out its ring buffer and loss counters.
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::Iter,
};
use fantrace_schema::record::{
    FILTER_EXCLUDE, FILTER_INCLUDE, FilterKind, KernelOffset, LossCause, SCAN_ENTRY_SIZE,
    ScanEntry, names,
};

use crate::attach::{AttachMode, Attachment, Ia32};

/// The probe object built by `build.rs`.
static PROBE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fantrace-probe"));

/// A loaded and attached probe. Dropping `programs` detaches it; the ring buffer (handed out
/// separately) and the counters stay readable so the last records can be drained after.
pub struct Probe {
    programs: Option<Ebpf>,
    lost: PerCpuArray<MapData, u64>,
    /// Whether the scan iterator runs on this kernel (see `state`).
    scans: bool,
}

/// The kernel's types, being read in the background since the recorder started: parsing the
/// BTF is the slowest step between start and recording, so it overlaps every other one.
pub struct KernelTypes {
    offsets: std::thread::JoinHandle<anyhow::Result<crate::btf::KernelOffsets>>,
    btf: std::thread::JoinHandle<Result<Btf, aya::BtfError>>,
}

impl KernelTypes {
    /// Starts reading the field offsets (from this boot's cache after the first start) and
    /// parsing the BTF attaching needs; aya's loader parses its own copy meanwhile.
    pub fn prepare() -> KernelTypes {
        KernelTypes {
            offsets: std::thread::spawn(crate::btf::kernel_offsets),
            btf: std::thread::spawn(Btf::from_sys_fs),
        }
    }
}

pub struct ProbeOptions {
    pub kernel_types: KernelTypes,
    pub ring_buffer_bytes: u32,
    pub filters: Filters,
    pub attach: AttachMode,
    pub ia32: Ia32,
}

/// In-kernel filters. For each dimension, a non-empty include list records only those keys;
/// an excluded key is never recorded.
#[derive(Default, Debug, Clone)]
pub struct Filters {
    pub pids: Vec<u32>,
    pub exclude_pids: Vec<u32>,
    pub uids: Vec<u32>,
    pub exclude_uids: Vec<u32>,
    pub comms: Vec<[u8; 16]>,
    pub exclude_comms: Vec<[u8; 16]>,
    pub cgroups: Vec<u64>,
    pub exclude_cgroups: Vec<u64>,
}

/// The scan applies the filters to the processes it finds holding a group, as the probe
/// applies them to callers (from /proc rather than the kernel's task).
impl crate::state::HolderFilter for Filters {
    fn admits(&self, pid: u32) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid: Option<u32> = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let mut comm_key = [0u8; 16];
        let name = comm.trim_end_matches('\n').as_bytes();
        comm_key[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
        let cgroup = || -> Option<u64> {
            use std::os::unix::fs::MetadataExt as _;
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
            Some(
                std::fs::metadata(format!("/sys/fs/cgroup{path}"))
                    .ok()?
                    .ino(),
            )
        };
        let keep = |include: &[u32], exclude: &[u32], value: Option<u32>| match value {
            Some(v) => !exclude.contains(&v) && (include.is_empty() || include.contains(&v)),
            None => include.is_empty(),
        };
        let cgroup_id = if self.cgroups.is_empty() && self.exclude_cgroups.is_empty() {
            None
        } else {
            cgroup()
        };
        keep(&self.pids, &self.exclude_pids, Some(pid))
            && keep(&self.uids, &self.exclude_uids, uid)
            && !self.exclude_comms.contains(&comm_key)
            && (self.comms.is_empty() || self.comms.contains(&comm_key))
            && match cgroup_id {
                Some(id) => {
                    !self.exclude_cgroups.contains(&id)
                        && (self.cgroups.is_empty() || self.cgroups.contains(&id))
                }
                None => self.cgroups.is_empty(),
            }
    }
}

/// The `FilterKind` bits of the kinds whose flag is set.
fn kind_bits(set: [(bool, FilterKind); 4]) -> u8 {
    set.iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, kind)| bits | *kind as u8)
}

impl Filters {
    fn include_only(&self) -> u8 {
        kind_bits([
            (!self.pids.is_empty(), FilterKind::Pid),
            (!self.uids.is_empty(), FilterKind::Uid),
            (!self.comms.is_empty(), FilterKind::Comm),
            (!self.cgroups.is_empty(), FilterKind::Cgroup),
        ])
    }

    /// The filters holding any key at all: the probe looks up no other filter map, so an
    /// unfiltered recorder costs the traced calls no map lookups.
    fn in_use(&self) -> u8 {
        self.include_only()
            | kind_bits([
                (!self.exclude_pids.is_empty(), FilterKind::Pid),
                (!self.exclude_uids.is_empty(), FilterKind::Uid),
                (!self.exclude_comms.is_empty(), FilterKind::Comm),
                (!self.exclude_cgroups.is_empty(), FilterKind::Cgroup),
            ])
    }
}

fn fill_filter<K: aya::Pod>(
    ebpf: &mut Ebpf,
    map_name: &str,
    include: &[K],
    exclude: &[K],
) -> anyhow::Result<()> {
    let map = ebpf
        .map_mut(map_name)
        .ok_or_else(|| anyhow!("the probe object has no map {map_name}"))?;
    let mut filter: HashMap<&mut MapData, K, u8> =
        HashMap::try_from(map).with_context(|| format!("{map_name} is not a hash map"))?;
    for (keys, mark) in [(include, FILTER_INCLUDE), (exclude, FILTER_EXCLUDE)] {
        for key in keys {
            filter
                .insert(key, mark, 0)
                .with_context(|| format!("adding an entry to the in-kernel filter {map_name}"))?;
        }
    }
    Ok(())
}

/// Calls the probe could not deliver, per cause, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossCounts(pub [u64; LossCause::COUNT as usize]);

impl LossCounts {
    /// Records (calls, exits) not in the capture; a lost state read is not one (fdinfo makes
    /// up for it).
    pub fn total(&self) -> u64 {
        LossCause::ALL
            .iter()
            .filter(|c| c.loses_a_record())
            .map(|&c| self.0[c as usize])
            .sum()
    }

    pub fn since(&self, earlier: &LossCounts) -> LossCounts {
        let mut out = *self;
        for (o, e) in out.0.iter_mut().zip(earlier.0) {
            *o = o.saturating_sub(e);
        }
        out
    }
}

impl Probe {
    pub fn load_and_attach(
        opts: ProbeOptions,
    ) -> anyhow::Result<(Probe, RingBuf<MapData>, Attachment)> {
        require_root()?;
        crate::kernel::check_supported()?;
        let ring = opts.ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            bail!("--ring-buffer {ring}: the size must be a power of two of at least 4096 bytes");
        }
        let own_tgid: u32 = std::process::id();
        // Each CPU wakes the recorder each time it has written another step into the ring;
        // between wake-ups the recorder polls. With every CPU just short of its next step, an
        // eighth of the ring at most sits unread without a wake-up.
        let cpus = aya::util::nr_cpus()
            .map_err(|(path, e)| anyhow!("reading the CPU count from {path}: {e}"))?;
        let wakeup_step: u64 = (u64::from(ring) / 8 / cpus.max(1) as u64).max(4096);
        let include_only: u8 = opts.filters.include_only();
        let filters_in_use: u8 = opts.filters.in_use();
        // Three parses of the kernel's BTF stand between start and recording (the offsets,
        // aya's loader, attaching); they run side by side, and the offsets come from this
        // boot's cache after the first start.
        let mut loader = EbpfLoader::new();
        let KernelTypes {
            offsets: offsets_job,
            btf: btf_job,
        } = opts.kernel_types;
        let offsets = offsets_job
            .join()
            .map_err(|_| anyhow!("resolving kernel offsets panicked"))??;
        if !offsets.missing.is_empty() {
            tracing::debug!("this kernel's BTF lacks {}", offsets.missing.join(", "));
        }
        let btf = btf_job
            .join()
            .map_err(|_| anyhow!("parsing the kernel's BTF panicked"))?
            .with_context(|| {
                format!(
                    "reading the kernel's BTF from {}: the kernel must be built with \
                     CONFIG_DEBUG_INFO_BTF",
                    crate::kernel::VMLINUX_BTF
                )
            })?;
        // The recorder's own group: the first scan learns from it which file operations make
        // a file a fanotify group. Closed once learnt.
        let own_group = own_group().context(
            "creating the recorder's own fanotify group (fanotify_init), from which the probe \
             learns to recognise groups",
        )?;
        let own_group_fd = own_group.as_raw_fd() as u32;
        let mut ebpf = loader
            // PENDING is task storage, which aya 0.14 creates but cannot wrap; only the probe
            // touches it.
            .allow_unsupported_maps()
            .override_global(names::RECORDER_TGID_GLOBAL, &own_tgid, true)
            .override_global(names::OWN_GROUP_FD_GLOBAL, &own_group_fd, true)
            .override_global(names::WAKEUP_STEP_GLOBAL, &wakeup_step, true)
            .override_global(names::INCLUDE_ONLY_GLOBAL, &include_only, true)
            .override_global(names::FILTERS_IN_USE_GLOBAL, &filters_in_use, true)
            .override_global(names::KERNEL_OFFSETS_GLOBAL, &offsets.values[..], true)
            .map_max_entries(names::EVENTS_MAP, ring)
            .load(PROBE_OBJECT)
            .context("loading the eBPF probe's maps into the kernel failed")?;
        // Filters go in before the programs attach, so no unwanted call is ever recorded.
        let f = &opts.filters;
        fill_filter(&mut ebpf, names::PID_FILTER_MAP, &f.pids, &f.exclude_pids)?;
        fill_filter(&mut ebpf, names::UID_FILTER_MAP, &f.uids, &f.exclude_uids)?;
        fill_filter(
            &mut ebpf,
            names::COMM_FILTER_MAP,
            &f.comms,
            &f.exclude_comms,
        )?;
        fill_filter(
            &mut ebpf,
            names::CGROUP_FILTER_MAP,
            &f.cgroups,
            &f.exclude_cgroups,
        )?;
        // The scan learns fanotify's file operations before any call is recorded, so that
        // every call's fd can be told a group or not from the first.
        let lacking_state = offsets.lacking(KernelOffset::KERNEL_STATE);
        let scans = if lacking_state.is_empty() {
            match load_scan(&mut ebpf, &btf) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        "the scan of fanotify fds cannot run on this kernel ({e:#}): groups \
                         made before the recording, and fds passed between processes, will \
                         not be seen"
                    );
                    false
                }
            }
        } else {
            tracing::warn!(
                "this kernel's BTF lacks {}: the kernel's groups and marks cannot be read, \
                 calls are recorded as given",
                lacking_state.join(", ")
            );
            false
        };
        drop(own_group);
        let mut attachment =
            crate::attach::attach(&mut ebpf, &btf, &offsets, opts.attach, opts.ia32)?;
        if attachment.mode == "fentry" {
            attachment.hooks = crate::attach::attach_kernel_hooks(&mut ebpf, &btf);
        }
        attachment.scans = scans;
        // The syscall programs are in: from here every new group's owner goes into the map
        // by itself, so holders found now plus those complete it.
        // Without the scan, the processes holding a group at start are found in /proc, so
        // that their exits are recorded; with it, each scan adds those it finds.
        if !scans {
            let holders = crate::owners::seed(&mut ebpf, own_tgid)?;
            tracing::debug!("{holders} process(es) held a fanotify group at start");
        }
        attachment
            .points
            .push(crate::attach::attach_owner_exit(&mut ebpf, &btf)?);
        let events = take_map(&mut ebpf, names::EVENTS_MAP)?;
        let events = RingBuf::try_from(events).context("EVENTS is not a ring buffer")?;
        let lost = take_map(&mut ebpf, names::LOST_MAP)?;
        let lost = PerCpuArray::try_from(lost).context("LOST is not a per-CPU array")?;
        Ok((
            Probe {
                programs: Some(ebpf),
                lost,
                scans,
            },
            events,
            attachment,
        ))
    }

    /// Every fanotify fd on the machine right now, from the scan iterator; nothing once
    /// detached or where the scan cannot run.
    pub fn scan(&mut self) -> anyhow::Result<Vec<ScanEntry>> {
        match (&mut self.programs, self.scans) {
            (Some(ebpf), true) => run_scan(ebpf),
            _ => Ok(Vec::new()),
        }
    }

    /// Processes found holding a group: their exits are recorded from now on.
    pub fn add_group_owners(&mut self, pids: &[u32]) {
        let Some(ebpf) = self.programs.as_mut() else {
            return;
        };
        if pids.is_empty() {
            return;
        }
        let Some(map) = ebpf.map_mut(names::GROUP_OWNERS_MAP) else {
            return;
        };
        let Ok(mut owners) = HashMap::<_, u32, u8>::try_from(map) else {
            return;
        };
        for pid in pids {
            // A full map is counted by the probe for the processes it adds itself; these are
            // the scan's, whose exits then end their holdings at the next scan instead.
            let _ = owners.insert(pid, 1, 0);
        }
    }

    /// Detaches every program: no call made after this is recorded.
    pub fn detach(&mut self) {
        self.programs = None;
    }

    pub fn loss_counts(&self) -> anyhow::Result<LossCounts> {
        let mut out = LossCounts::default();
        for cause in LossCause::ALL {
            let per_cpu = self
                .lost
                .get(&(cause as u32), 0)
                .with_context(|| format!("reading the probe's {} counter", cause.name()))?;
            out.0[cause as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

/// The recorder's own fanotify group (`FAN_CLASS_NOTIF`, no marks).
fn own_group() -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd returned is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fanotify_init,
            libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC,
            libc::O_RDONLY,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads the scan iterator and runs it once, in which it learns `fanotify_fops` from the
/// recorder's own group.
fn load_scan(ebpf: &mut Ebpf, btf: &Btf) -> anyhow::Result<()> {
    scan_program(ebpf)?
        .load(names::GROUP_SCAN_TARGET, btf)
        .context("loading the scan iterator")?;
    run_scan(ebpf)?;
    let fops: Array<_, u64> = Array::try_from(
        ebpf.map(names::FANOTIFY_FOPS_MAP)
            .ok_or_else(|| anyhow!("the probe object has no map {}", names::FANOTIFY_FOPS_MAP))?,
    )?;
    if fops.get(&0, 0)? == 0 {
        bail!("the first scan did not find the recorder's own fanotify group");
    }
    Ok(())
}

fn scan_program(ebpf: &mut Ebpf) -> anyhow::Result<&mut Iter> {
    ebpf.program_mut(names::GROUP_SCAN_ITERATOR)
        .ok_or_else(|| {
            anyhow!(
                "the probe object has no program {}",
                names::GROUP_SCAN_ITERATOR
            )
        })?
        .try_into()
        .context("the scan program is not an iterator")
}

/// Runs the scan iterator and reads what it printed.
fn run_scan(ebpf: &mut Ebpf) -> anyhow::Result<Vec<ScanEntry>> {
    let program = scan_program(ebpf)?;
    let link = program.attach().context("starting the scan iterator")?;
    let mut file = program
        .take_link(link)
        .context("taking the scan iterator's link")?
        .into_file()
        .context("opening the scan iterator")?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .context("reading the scan iterator")?;
    Ok(bytes
        .chunks_exact(SCAN_ENTRY_SIZE)
        .map(|chunk| {
            // SAFETY: ScanEntry is plain data of SCAN_ENTRY_SIZE bytes; the read is unaligned.
            unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<ScanEntry>()) }
        })
        .collect())
}

/// Checked first, before anything else is looked at or created.
pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "fantrace-recorder must run as root: it loads an eBPF program and attaches it to \
             the fanotify syscalls (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN). Run it with sudo; the \
             analyzer needs no privileges"
        );
    }
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the probe object has no map {name}"))
}
