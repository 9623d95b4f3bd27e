//! Syscall tracepoints are found by id through tracefs, which a fresh machine does not mount.
use std::path::Path;

use anyhow::bail;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs on [`TRACEFS`] unless it (or the old debugfs location) is there already.
pub fn ensure_mounted() -> anyhow::Result<()> {
    let populated = |p: &str| {
        Path::new(p)
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    };
    if populated(TRACEFS) || populated("/sys/kernel/debug/tracing") {
        return Ok(());
    }
    tracing::info!("tracefs is not mounted; mounting it on {TRACEFS}");
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a literal");
    let (src, target, fstype) = (c("tracefs"), c(TRACEFS), c("tracefs"));
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "tracefs is not mounted and mounting it on {TRACEFS} failed: {err}; mount it with \
             `mount -t tracefs nodev {TRACEFS}`"
        );
    }
    Ok(())
}
