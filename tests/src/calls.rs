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
    /// The syscall ABI used: `x86_64`, or `ia32` for a 32-bit call (`int $0x80`).
    pub abi: String,
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
        abi: "x86_64".into(),
    }
}

/// A 32-bit (ia32) syscall made with `int 0x80` from this 64-bit process: the kernel takes
/// the number from the ia32 table and six 32-bit arguments from ebx, ecx, edx, esi, edi and
/// ebp, so pointers must lie below 4 GiB (see [`Low32Buffer`]). Returns 0, a value, or -errno.
#[cfg(target_arch = "x86_64")]
pub fn ia32_syscall(nr: u32, args: [u32; 6]) -> i64 {
    let ret: u64;
    // SAFETY: int 0x80 enters the kernel's ia32 syscall path and clobbers only rax (the
    // result) and the flags. LLVM reserves rbx and rbp, which carry the first and sixth
    // arguments, so they are swapped in and out around the call; nothing between the swaps
    // uses the stack or the frame pointer.
    unsafe {
        std::arch::asm!(
            "xchg {a0}, rbx",
            "xchg {a5}, rbp",
            "int 0x80",
            "xchg {a5}, rbp",
            "xchg {a0}, rbx",
            a0 = inout(reg) u64::from(args[0]) => _,
            a5 = inout(reg) u64::from(args[5]) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(args[1]),
            in("rdx") u64::from(args[2]),
            in("rsi") u64::from(args[3]),
            in("rdi") u64::from(args[4]),
        );
    }
    // The ia32 return value is a 32-bit int.
    i64::from(ret as u32 as i32)
}

/// ia32 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl).
pub const IA32_FANOTIFY_INIT: u32 = 338;
pub const IA32_FANOTIFY_MARK: u32 = 339;

/// A page mapped below 2 GiB (`MAP_32BIT`), so its address fits an ia32 pointer argument.
pub struct Low32Buffer {
    ptr: *mut u8,
    len: usize,
}

impl Low32Buffer {
    pub fn new(len: usize) -> std::io::Result<Low32Buffer> {
        // SAFETY: an anonymous private mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Low32Buffer {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Copies `bytes` and a terminating NUL into the buffer; returns its 32-bit address.
    pub fn put_c_string(&mut self, bytes: &[u8]) -> u32 {
        assert!(bytes.len() < self.len, "string longer than the buffer");
        // SAFETY: the mapping is `len` bytes, writable and ours; the copy fits (checked).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, bytes.len());
            *self.ptr.add(bytes.len()) = 0;
        }
        self.ptr as usize as u32
    }
}

impl Drop for Low32Buffer {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// `fanotify_mark(2)` through the ia32 ABI: the 64-bit mask goes in as two halves, low
/// first, and the path must sit in a [`Low32Buffer`].
#[cfg(target_arch = "x86_64")]
pub fn ia32_call(
    label: &str,
    fd: i32,
    flags: u32,
    mask: u64,
    dirfd: i32,
    path: &[u8],
    buffer: &mut Low32Buffer,
) -> Call {
    let address = buffer.put_c_string(path);
    let before_ns = realtime_ns();
    let ret = ia32_syscall(
        IA32_FANOTIFY_MARK,
        [
            fd as u32,
            flags,
            mask as u32,
            (mask >> 32) as u32,
            dirfd as u32,
            address,
        ],
    );
    let after_ns = realtime_ns();
    let mut c = record(
        label,
        fd,
        flags,
        mask,
        dirfd,
        Some(hex(path)),
        "ok",
        ret,
        before_ns,
        after_ns,
    );
    c.abi = "ia32".into();
    c
}
