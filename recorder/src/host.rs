//! Facts about the recording host that make a capture self-describing.

pub struct HostInfo {
    pub hostname: String,
    pub kernel_release: String,
    pub boot_id: String,
}

impl HostInfo {
    pub fn read() -> HostInfo {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|e| format!("unknown ({p}: {e})"))
        };
        HostInfo {
            hostname: read("/proc/sys/kernel/hostname"),
            kernel_release: read("/proc/sys/kernel/osrelease"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}
