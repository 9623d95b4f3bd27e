//! Field offsets of the kernel structures the probe reads (the caller's ids, name, cgroup,
//! parent and namespaces), resolved from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`) at load time rather than compiled in for one kernel.
use anyhow::{Context as _, bail};
use btfparse::{Error, ErrorKind, Offset, Readable, TypeInformation};
use fantrace_schema::record::KernelOffset;

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

struct Bytes(Vec<u8>);

impl Readable for Bytes {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset)
            .map_err(|_| Error::new(ErrorKind::InvalidOffset, "offset past usize"))?;
        let end = start
            .checked_add(buffer.len())
            .filter(|&e| e <= self.0.len())
            .ok_or_else(|| Error::new(ErrorKind::EOF, "read past the end of the BTF data"))?;
        buffer.copy_from_slice(&self.0[start..end]);
        Ok(())
    }
}

/// `(struct, field path)` of each offset as BTF names it; for `UpidSize` the size of the
/// struct itself. Fields renamed across kernel releases have their other names in
/// [`alternatives`]; the connector adjustments are worked out in [`connector_adjust`].
fn btf_path(which: KernelOffset) -> (&'static str, &'static str) {
    use KernelOffset as K;
    match which {
        K::TaskFiles => ("task_struct", "files"),
        K::FilesFdt => ("files_struct", "fdt"),
        K::FdtMaxFds => ("fdtable", "max_fds"),
        K::FdtFd => ("fdtable", "fd"),
        K::FilePath => ("file", "f_path"),
        K::PathMnt => ("path", "mnt"),
        K::PathDentry => ("path", "dentry"),
        K::FilePrivateData => ("file", "private_data"),
        K::FileOp => ("file", "f_op"),
        K::DentryInode => ("dentry", "d_inode"),
        K::InodeIno => ("inode", "i_ino"),
        K::InodeSb => ("inode", "i_sb"),
        K::InodeMode => ("inode", "i_mode"),
        K::SbDev => ("super_block", "s_dev"),
        K::MountMnt => ("mount", "mnt"),
        K::MountId => ("mount", "mnt_id"),
        K::GroupMarksList => ("fsnotify_group", "marks_list"),
        K::MarkGList => ("fsnotify_mark", "g_list"),
        K::MarkMask => ("fsnotify_mark", "mask"),
        K::MarkIgnoreMask => ("fsnotify_mark", "ignore_mask"),
        K::MarkFlags => ("fsnotify_mark", "flags"),
        K::MarkConnector => ("fsnotify_mark", "connector"),
        K::ConnType => ("fsnotify_mark_connector", "type"),
        K::ConnObj => ("fsnotify_mark_connector", "obj"),
        K::ConnInodeAdjust => ("fsnotify_mark_connector", "obj (inode)"),
        K::ConnMountAdjust => ("fsnotify_mark_connector", "obj (mount)"),
        K::ConnSbAdjust => ("fsnotify_mark_connector", "obj (super_block)"),
        K::TaskPid => ("task_struct", "pid"),
        K::TaskTgid => ("task_struct", "tgid"),
        K::TaskComm => ("task_struct", "comm"),
        K::TaskCred => ("task_struct", "cred"),
        K::CredUid => ("cred", "uid.val"),
        K::CredGid => ("cred", "gid.val"),
        K::TaskCgroups => ("task_struct", "cgroups"),
        K::CssSetDflCgrp => ("css_set", "dfl_cgrp"),
        K::CgroupKn => ("cgroup", "kn"),
        K::KernfsNodeId => ("kernfs_node", "id"),
        K::TaskRealParent => ("task_struct", "real_parent"),
        K::TaskNsproxy => ("task_struct", "nsproxy"),
        K::TaskThreadPid => ("task_struct", "thread_pid"),
        K::NsproxyMntNs => ("nsproxy", "mnt_ns"),
        K::MntNsInum => ("mnt_namespace", "ns.inum"),
        K::PidLevel => ("pid", "level"),
        K::PidNumbers => ("pid", "numbers"),
        K::UpidNs => ("upid", "ns"),
        K::UpidSize => ("upid", ""),
        K::PidNsInum => ("pid_namespace", "ns.inum"),
        K::TaskThreadInfoStatus => ("task_struct", "thread_info.status"),
        K::PtRegsDi => ("pt_regs", "di"),
        K::PtRegsSi => ("pt_regs", "si"),
        K::PtRegsDx => ("pt_regs", "dx"),
        K::PtRegsR10 => ("pt_regs", "r10"),
        K::PtRegsR8 => ("pt_regs", "r8"),
        K::PtRegsBx => ("pt_regs", "bx"),
        K::PtRegsCx => ("pt_regs", "cx"),
        K::PtRegsBp => ("pt_regs", "bp"),
        K::PtRegsOrigAx => ("pt_regs", "orig_ax"),
        K::TaskSignal => ("task_struct", "signal"),
        K::SignalLive => ("signal_struct", "live.counter"),
        K::TaskExitCode => ("task_struct", "exit_code"),
    }
}

/// Other names a field has had: `ignore_mask` was `ignored_mask` before Linux 6.0.
fn alternatives(which: KernelOffset) -> &'static [&'static str] {
    match which {
        KernelOffset::MarkIgnoreMask => &["ignored_mask"],
        _ => &[],
    }
}

/// How far a mark connector's `obj` is from the start of the object it belongs to, for each
/// kind of object. Since Linux 6.9 `obj` points at the object itself (a mount's at its
/// `vfsmount`, which sits at `mount.mnt`); before, it pointed at the object's connector slot
/// (`fsnotify_connp_t *`: `inode.i_fsnotify_marks`, `mount.mnt_fsnotify_marks`,
/// `super_block.s_fsnotify_marks`). The member's type in BTF tells which.
fn connector_adjust(types: &TypeInformation) -> Option<[u32; 3]> {
    let conn = types.id_of("fsnotify_mark_connector")?;
    let (obj_type, _) = types.offset_of(conn, "obj").ok()?;
    let pointee = types.pointee_tid(obj_type).ok()?;
    let offset = |strukt: &str, path: &str| -> Option<u32> {
        match types.offset_of(types.id_of(strukt)?, path) {
            Ok((_, Offset::ByteOffset(bytes))) => Some(bytes),
            _ => None,
        }
    };
    if pointee == 0 {
        Some([0, offset("mount", "mnt")?, 0])
    } else {
        Some([
            offset("inode", "i_fsnotify_marks")?,
            offset("mount", "mnt_fsnotify_marks")?,
            offset("super_block", "s_fsnotify_marks")?,
        ])
    }
}

/// Field offsets in `KernelOffset` order, resolved from the running kernel's BTF.
pub struct KernelOffsets {
    pub values: [u32; KernelOffset::COUNT],
    /// `struct.field` of each optional field this kernel lacks (its value is `u32::MAX`).
    pub missing: Vec<String>,
}

impl KernelOffsets {
    pub fn has(&self, which: KernelOffset) -> bool {
        self.values[which as usize] != u32::MAX
    }

    /// `struct.field` names of the fields in `needed` this kernel lacks.
    pub fn lacking(&self, needed: &[KernelOffset]) -> Vec<String> {
        needed
            .iter()
            .filter(|&&k| !self.has(k))
            .map(|&k| {
                let (s, f) = btf_path(k);
                format!("{s}.{f}")
            })
            .collect()
    }
}

/// Offsets resolved once per boot are kept here (root's, on tmpfs, gone at the next boot):
/// parsing the kernel's BTF is the slowest step of a start, and a recorder restarted by its
/// supervisor should be recording again at once.
const CACHE_DIR: &str = "/run/fantrace";
/// The cache's first line; a recorder that reads more offsets than the one that wrote the
/// cache finds a shorter list and parses the BTF again.
const CACHE_VERSION: &str = "v2";

/// [`parse_kernel_offsets`], or what it found earlier in this boot.
pub fn kernel_offsets() -> anyhow::Result<KernelOffsets> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cache = (!boot_id.is_empty()
        && boot_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    .then(|| std::path::Path::new(CACHE_DIR).join(format!("kernel-offsets-{boot_id}")));
    if let Some(found) = cache.as_deref().and_then(read_cached) {
        return Ok(found);
    }
    let offsets = parse_kernel_offsets()?;
    if let Some(path) = cache {
        // A cache that cannot be written only costs the next start its speed.
        if let Err(e) = write_cached(&path, &offsets) {
            tracing::debug!("not caching kernel offsets in {}: {e}", path.display());
        }
    }
    Ok(offsets)
}

/// The version line, the values, then the missing fields, one line each.
fn read_cached(path: &std::path::Path) -> Option<KernelOffsets> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    (lines.next()? == CACHE_VERSION).then_some(())?;
    let parsed: Vec<u32> = lines
        .next()?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let values: [u32; KernelOffset::COUNT] = parsed.try_into().ok()?;
    let missing = lines.next().unwrap_or("");
    let missing = missing
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    Some(KernelOffsets { values, missing })
}

fn write_cached(path: &std::path::Path, offsets: &KernelOffsets) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = path.parent().unwrap_or(std::path::Path::new(CACHE_DIR));
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let values: Vec<String> = offsets.values.iter().map(u32::to_string).collect();
    let text = format!(
        "{CACHE_VERSION}\n{}\n{}\n",
        values.join(","),
        offsets.missing.join(",")
    );
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The offsets in `KernelOffset` order; a field this kernel lacks is `u32::MAX` (the probe
/// then leaves its column 0, or the attach mode that needs it is not used) and is named in
/// the list of missing fields. A missing required field is an error.
pub fn parse_kernel_offsets() -> anyhow::Result<KernelOffsets> {
    let data = std::fs::read(VMLINUX_BTF).with_context(|| {
        format!("reading {VMLINUX_BTF}: the kernel must be built with CONFIG_DEBUG_INFO_BTF")
    })?;
    let types = TypeInformation::new(&Bytes(data))
        .map_err(|e| anyhow::anyhow!("parsing {VMLINUX_BTF}: {e:?}"))?;
    let mut out = [u32::MAX; KernelOffset::COUNT];
    let mut missing = Vec::new();
    let adjust = connector_adjust(&types);
    for which in KernelOffset::ALL {
        let (strukt, path) = btf_path(which);
        let field_offset = |path: &str| {
            types.id_of(strukt).and_then(|id| {
                if path.is_empty() {
                    types.size_of(id).ok().and_then(|s| u32::try_from(s).ok())
                } else {
                    match types.offset_of(id, path) {
                        Ok((_, Offset::ByteOffset(bytes))) => Some(bytes),
                        _ => None,
                    }
                }
            })
        };
        let value = match which {
            KernelOffset::ConnInodeAdjust => adjust.map(|a| a[0]),
            KernelOffset::ConnMountAdjust => adjust.map(|a| a[1]),
            KernelOffset::ConnSbAdjust => adjust.map(|a| a[2]),
            _ => field_offset(path).or_else(|| {
                alternatives(which)
                    .iter()
                    .find_map(|other| field_offset(other))
            }),
        };
        match value {
            Some(v) => out[which as usize] = v,
            None if which.required() => bail!(
                "{VMLINUX_BTF} has no {strukt}.{path}, which the probe needs to read \
                 fanotify_mark calls; this kernel is not supported (please report its version)"
            ),
            None => missing.push(format!("{strukt}.{path}")),
        }
    }
    Ok(KernelOffsets {
        values: out,
        missing,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cached_offsets_read_back_as_parsed() {
        let offsets = super::parse_kernel_offsets().expect("vmlinux BTF is readable");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("kernel-offsets-x");
        super::write_cached(&path, &offsets).unwrap();
        let back = super::read_cached(&path).expect("readable");
        assert_eq!(back.values, offsets.values);
        assert_eq!(back.missing, offsets.missing);
        std::fs::write(&path, "v2\n1,2\n").unwrap();
        assert!(
            super::read_cached(&path).is_none(),
            "a short list is not used"
        );
    }

    #[test]
    fn this_kernel_has_every_field() {
        let offsets = super::parse_kernel_offsets().expect("vmlinux BTF is readable");
        assert!(offsets.missing.is_empty(), "missing: {:?}", offsets.missing);
        assert!(offsets.values.iter().all(|&o| o != u32::MAX));
    }

    #[test]
    fn saved_registers_sit_where_the_x86_64_abi_puts_them() {
        use fantrace_schema::record::KernelOffset as K;
        // struct pt_regs is also the layout ptrace hands out (user_regs_struct).
        let offsets = super::parse_kernel_offsets().expect("vmlinux BTF is readable");
        for (field, at) in [
            (K::PtRegsBp, 32),
            (K::PtRegsBx, 40),
            (K::PtRegsR10, 56),
            (K::PtRegsR8, 72),
            (K::PtRegsCx, 88),
            (K::PtRegsDx, 96),
            (K::PtRegsSi, 104),
            (K::PtRegsDi, 112),
            (K::PtRegsOrigAx, 120),
        ] {
            assert_eq!(offsets.values[field as usize], at, "{field:?}");
        }
    }
}
