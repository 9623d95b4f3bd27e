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
/// struct itself.
fn btf_path(which: KernelOffset) -> (&'static str, &'static str) {
    use KernelOffset as K;
    match which {
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
    }
}

/// The offsets in `KernelOffset` order; a field this kernel lacks is `u32::MAX` (the probe
/// then leaves its column 0) and is named in the returned list of missing fields. A missing
/// required field is an error.
pub fn kernel_offsets() -> anyhow::Result<([u32; KernelOffset::COUNT], Vec<String>)> {
    let data = std::fs::read(VMLINUX_BTF).with_context(|| {
        format!("reading {VMLINUX_BTF}: the kernel must be built with CONFIG_DEBUG_INFO_BTF")
    })?;
    let types = TypeInformation::new(&Bytes(data))
        .map_err(|e| anyhow::anyhow!("parsing {VMLINUX_BTF}: {e:?}"))?;
    let mut out = [u32::MAX; KernelOffset::COUNT];
    let mut missing = Vec::new();
    for which in KernelOffset::ALL {
        let (strukt, path) = btf_path(which);
        let value = types.id_of(strukt).and_then(|id| {
            if path.is_empty() {
                types.size_of(id).ok().and_then(|s| u32::try_from(s).ok())
            } else {
                match types.offset_of(id, path) {
                    Ok((_, Offset::ByteOffset(bytes))) => Some(bytes),
                    _ => None,
                }
            }
        });
        match value {
            Some(v) => out[which as usize] = v,
            None if which.required() => bail!(
                "{VMLINUX_BTF} has no {strukt}.{path}, which the probe needs to read \
                 fanotify_mark calls; this kernel is not supported (please report its version)"
            ),
            None => missing.push(format!("{strukt}.{path}")),
        }
    }
    Ok((out, missing))
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_kernel_has_every_field() {
        let (offsets, missing) = super::kernel_offsets().expect("vmlinux BTF is readable");
        assert!(missing.is_empty(), "missing: {missing:?}");
        assert!(offsets.iter().all(|&o| o != u32::MAX));
    }
}
