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
    /// Pathname bytes as hex; `None` for a NULL or unreadable pointer.
    pub path_hex: Option<String>,
    /// What the probe must report: ok, null, fault or truncated.
    pub path_status: String,
    pub ppid: u32,
    pub uid: u32,
    /// Inode numbers of the caller's mount and (active) pid namespaces.
    pub mnt_ns: u64,
    pub pid_ns: u64,
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

/// Longest path the probe keeps whole (its buffer holds PATH_MAX bytes with the NUL).
pub const PROBE_PATH_MAX: usize = 4095;

/// `fanotify_mark(2)` through the raw syscall, so NULL and non-UTF-8 paths reach the kernel
/// exactly as given. Returns 0 or -errno.
pub fn fanotify_mark(fd: i32, flags: u32, mask: u64, dirfd: i32, path: Option<&[u8]>) -> i64 {
    let cpath = path.map(|p| {
        let mut v = p.to_vec();
        v.push(0);
        v
    });
    let ptr = cpath.as_ref().map(|v| v.as_ptr() as usize).unwrap_or(0);
    fanotify_mark_ptr(fd, flags, mask, dirfd, ptr)
}

/// `fanotify_mark(2)` with a raw pathname pointer, which may be invalid on purpose.
pub fn fanotify_mark_ptr(fd: i32, flags: u32, mask: u64, dirfd: i32, ptr: usize) -> i64 {
    // SAFETY: the kernel validates the pointer; an invalid one yields EFAULT, nothing else.
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

/// The inode number of the calling process's namespace of `kind` ("mnt", "pid"), 0 if unknown.
pub fn namespace_inode(kind: &str) -> u64 {
    std::fs::read_link(format!("/proc/thread-self/ns/{kind}"))
        .ok()
        .and_then(|link| {
            let text = link.to_string_lossy().into_owned();
            text.strip_prefix(&format!("{kind}:["))?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .unwrap_or(0)
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
    let path_status = match path {
        None => "null",
        Some(p) if p.len() > PROBE_PATH_MAX => "truncated",
        Some(_) => "ok",
    };
    record(
        label,
        fd,
        flags,
        mask,
        dirfd,
        path.map(hex),
        path_status,
        ret,
        before_ns,
        after_ns,
    )
}

/// A call whose pathname pointer cannot be read: the probe must say `fault`.
pub fn call_unreadable_path(label: &str, fd: i32, flags: u32, mask: u64, dirfd: i32) -> Call {
    let before_ns = realtime_ns();
    // Page 0 is never mapped.
    let ret = fanotify_mark_ptr(fd, flags, mask, dirfd, 0x10);
    let after_ns = realtime_ns();
    record(
        label, fd, flags, mask, dirfd, None, "fault", ret, before_ns, after_ns,
    )
}

#[allow(clippy::too_many_arguments)]
fn record(
    label: &str,
    fd: i32,
    flags: u32,
    mask: u64,
    dirfd: i32,
    path_hex: Option<String>,
    path_status: &str,
    ret: i64,
    before_ns: i64,
    after_ns: i64,
) -> Call {
    // SAFETY: getppid/getuid have no preconditions.
    let (ppid, uid) = unsafe { (libc::getppid() as u32, libc::getuid()) };
    Call {
        label: label.to_string(),
        pid: std::process::id(),
        tid: current_tid(),
        comm: current_comm(),
        fanotify_fd: fd,
        flags,
        mask,
        dirfd,
        path_hex,
        path_status: path_status.to_string(),
        ppid,
        uid,
        mnt_ns: namespace_inode("mnt"),
        pid_ns: namespace_inode("pid"),
        ret,
        before_ns,
        after_ns,
    }
}

/// A 32-bit (ia32) syscall made with `int 0x80` from this 64-bit process, with NULL or bad
/// arguments so it changes nothing. Its number means another syscall in the ia32 table than
/// in the native one, which is what the probe must not confuse. Returns 0 or -errno.
#[cfg(target_arch = "x86_64")]
pub fn ia32_syscall(nr: u32, arg0: u32) -> i64 {
    let ret: u64;
    // SAFETY: int 0x80 enters the kernel's ia32 syscall path and clobbers only rax (the result)
    // and the flags; the arguments are integers and NULL pointers. LLVM reserves rbx, which
    // carries the first argument, so it is swapped in and out around the call.
    unsafe {
        std::arch::asm!(
            "xchg {a0}, rbx",
            "int 0x80",
            "xchg {a0}, rbx",
            a0 = inout(reg) u64::from(arg0) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") 0u64,
            in("rdx") 0u64,
            in("rsi") 0u64,
            in("rdi") 0u64,
        );
    }
    // The ia32 return value is a 32-bit int.
    i64::from(ret as u32 as i32)
}
