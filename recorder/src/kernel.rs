//! Can this kernel run the probe at all? Checked before anything is loaded, so an old kernel
//! gets one error naming what it lacks, not a verifier log.
//!
//! The probe needs, whatever the attach mode: BTF for the running kernel (field offsets and
//! typed task reads), BPF ring buffers (Linux 5.8), and task-local storage usable from tracing
//! programs with `bpf_get_current_task_btf` (both Linux 5.11). 5.11 is therefore the minimum;
//! distribution kernels that backport these features pass the same checks.
use anyhow::bail;
use aya::maps::MapType;
use aya::sys::is_map_supported;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The oldest upstream release with everything the probe uses.
pub const MINIMUM: &str = "5.11";

pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown (/proc/sys/kernel/osrelease: {e})"))
}

/// Checks each feature the probe needs, by asking the kernel rather than trusting the version
/// number, and fails once with every missing one named.
pub fn check_supported() -> anyhow::Result<()> {
    let lacking = lacking(
        std::path::Path::new(VMLINUX_BTF).exists(),
        is_map_supported(MapType::RingBuf).map_err(|e| e.to_string()),
        is_map_supported(MapType::TaskStorage).map_err(|e| e.to_string()),
    );
    if !lacking.is_empty() {
        bail!("{}", unsupported_message(&release(), &lacking));
    }
    Ok(())
}

/// What the kernel lacks, given what the probes found.
fn lacking(
    btf: bool,
    ring_buffer: Result<bool, String>,
    task_storage: Result<bool, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !btf {
        out.push(format!(
            "BTF type information ({VMLINUX_BTF} is missing: the kernel needs \
             CONFIG_DEBUG_INFO_BTF=y)"
        ));
    }
    for (found, what) in [
        (ring_buffer, "BPF ring buffers (Linux 5.8)"),
        (task_storage, "BPF task-local storage (Linux 5.11)"),
    ] {
        match found {
            Ok(true) => {}
            Ok(false) => out.push(what.to_string()),
            Err(e) => out.push(format!("{what}: probing failed: {e}")),
        }
    }
    out
}

fn unsupported_message(release: &str, lacking: &[String]) -> String {
    format!(
        "this kernel ({release}) cannot run the fantrace probe: it lacks {}. fantrace needs \
         Linux {MINIMUM} or newer built with BTF (most distribution kernels since 2021: Debian \
         12, Ubuntu 22.04, RHEL 9, Fedora 34 and later)",
        lacking.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_kernel_gets_one_sentence_naming_everything_it_lacks() {
        let missing = lacking(false, Ok(true), Ok(false));
        assert_eq!(missing.len(), 2, "{missing:?}");
        let text = unsupported_message("5.10.0-32-amd64", &missing);
        assert!(
            text.starts_with("this kernel (5.10.0-32-amd64) cannot run"),
            "{text}"
        );
        assert!(text.contains("CONFIG_DEBUG_INFO_BTF=y"), "{text}");
        assert!(text.contains("task-local storage (Linux 5.11)"), "{text}");
        assert!(!text.contains("ring buffers"), "{text}");
        assert!(text.contains("Linux 5.11 or newer"), "{text}");
    }

    #[test]
    fn this_kernel_is_supported() {
        assert!(lacking(true, Ok(true), Ok(true)).is_empty());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            check_supported().expect("the machine the tests run on can run the probe");
        }
    }
}
