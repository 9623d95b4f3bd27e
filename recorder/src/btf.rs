//! Field offsets of the kernel structures the probe reads (parent, namespaces), resolved from
//! the running kernel's BTF (`/sys/kernel/btf/vmlinux`) at load time rather than compiled in
//! for one kernel.
use anyhow::Context as _;
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

/// The offsets in `KernelOffset` order; a field this kernel lacks is `u32::MAX` (the probe
/// then leaves its column 0) and is named in the returned list of missing fields.
pub fn kernel_offsets() -> anyhow::Result<([u32; KernelOffset::COUNT], Vec<String>)> {
    let data = std::fs::read(VMLINUX_BTF).with_context(|| {
        format!("reading {VMLINUX_BTF}: the kernel must be built with CONFIG_DEBUG_INFO_BTF")
    })?;
    let types = TypeInformation::new(&Bytes(data))
        .map_err(|e| anyhow::anyhow!("parsing {VMLINUX_BTF}: {e:?}"))?;
    let mut out = [u32::MAX; KernelOffset::COUNT];
    let mut missing = Vec::new();
    for which in KernelOffset::ALL {
        let (strukt, path) = which.btf_path();
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
