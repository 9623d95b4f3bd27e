//! One `fanotify_mark(2)` call as the workload made it: what the capture must show.
use serde::{Deserialize, Serialize};

/// The arguments, result and context of one call, as seen by the caller.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Call {
    pub label: String,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub fanotify_fd: i32,
    pub flags: u32,
    pub mask: u64,
    pub dirfd: i32,
    /// Pathname bytes as hex; `None` for a NULL pointer.
    pub path_hex: Option<String>,
    /// 0 or -errno.
    pub ret: i64,
    /// CLOCK_REALTIME just before and after the call, ns.
    pub before_ns: i64,
    pub after_ns: i64,
}

pub const AT_FDCWD: i32 = -100;

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// `fanotify_mark(2)` through the raw syscall, so NULL and non-UTF-8 paths reach the kernel
/// exactly as given. Returns 0 or -errno.
pub fn fanotify_mark(fd: i32, flags: u32, mask: u64, dirfd: i32, path: Option<&[u8]>) -> i64 {
    let cpath = path.map(|p| {
        let mut v = p.to_vec();
        v.push(0);
        v
    });
    let ptr = cpath
        .as_ref()
        .map(|v| v.as_ptr() as *const libc::c_char)
        .unwrap_or(std::ptr::null());
    // SAFETY: ptr is NULL or a NUL-terminated buffer that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_fanotify_mark, fd, flags, mask, dirfd, ptr) };
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r
    }
}

/// `fanotify_init(2)`; returns the fd or -errno.
pub fn fanotify_init(flags: u32, event_f_flags: u32) -> i64 {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_fanotify_init, flags, event_f_flags) };
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r
    }
}

pub fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

pub fn current_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

/// Makes one call and returns its record.
pub fn call(label: &str, fd: i32, flags: u32, mask: u64, dirfd: i32, path: Option<&[u8]>) -> Call {
    let before_ns = realtime_ns();
    let ret = fanotify_mark(fd, flags, mask, dirfd, path);
    let after_ns = realtime_ns();
    Call {
        label: label.to_string(),
        pid: std::process::id(),
        tid: current_tid(),
        comm: current_comm(),
        fanotify_fd: fd,
        flags,
        mask,
        dirfd,
        path_hex: path.map(hex),
        ret,
        before_ns,
        after_ns,
    }
}
