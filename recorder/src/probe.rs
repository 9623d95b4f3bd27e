//! Load: check the kernel, load the embedded probe with its settings and filters, attach it
//! (`attach.rs` picks how), and hand out its ring buffer and loss counters.
use anyhow::{Context as _, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
};
use fantrace_schema::record::{FILTER_EXCLUDE, FILTER_INCLUDE, FilterKind, LossCause, names};

use crate::attach::{AttachMode, Attachment, Ia32};

/// The probe object built by `build.rs`.
static PROBE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fantrace-probe"));

/// A loaded and attached probe. Dropping `programs` detaches it; the ring buffer (handed out
/// separately) and the counters stay readable so the last records can be drained after.
pub struct Probe {
    programs: Option<Ebpf>,
    lost: PerCpuArray<MapData, u64>,
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
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
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
        let mut ebpf = loader
            // PENDING is task storage, which aya 0.14 creates but cannot wrap; only the probe
            // touches it.
            .allow_unsupported_maps()
            .override_global(names::RECORDER_TGID_GLOBAL, &own_tgid, true)
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
        let mut attachment =
            crate::attach::attach(&mut ebpf, &btf, &offsets, opts.attach, opts.ia32)?;
        // The syscall programs are in: from here every new group's owner goes into the map
        // by itself, so holders found now plus those complete it.
        let holders = crate::owners::seed(&mut ebpf, own_tgid)?;
        tracing::debug!("{holders} process(es) held a fanotify group at start");
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
            },
            events,
            attachment,
        ))
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
