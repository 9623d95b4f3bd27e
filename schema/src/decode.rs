//! Human renderings of a call, shared by the recorder's `--print` and the analyzer's SQL
//! functions and `replay`, so both sides always print a call the same way.
use crate::flags::{
    BitName, EVENT_F_FLAGS, INIT_CLASS_BITS, INIT_CLASSES, INIT_FLAGS, MARK_FLAGS, MARK_TYPE_BITS,
    MASK_BITS, Name, OPEN_ACCMODE, for_each_bit_name,
};

fn join_names(table: &[Name], value: u64) -> String {
    let mut out = String::new();
    for_each_bit_name(table, value, |b| {
        if !out.is_empty() {
            out.push('|');
        }
        match b {
            BitName::Known(n) => out.push_str(n),
            BitName::Unknown(bits) => out.push_str(&format!("{bits:#x}")),
        }
    });
    out
}

/// `FAN_MARK_ADD|FAN_MARK_MOUNT`: action and modifiers, then the mark type unless it is inode.
pub fn flag_names(flags: u64) -> String {
    let mut out = join_names(MARK_FLAGS, flags & !MARK_TYPE_BITS);
    if flags & MARK_TYPE_BITS != 0 {
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(crate::flags::mark_type_name(flags));
    }
    if out.is_empty() { "0".into() } else { out }
}

/// `FAN_OPEN|FAN_CLOSE_WRITE`; `0` for an empty mask.
pub fn mask_names(mask: u64) -> String {
    let out = join_names(MASK_BITS, mask);
    if out.is_empty() { "0".into() } else { out }
}

/// The names of the action bits (add 1, remove 2, flush 0x80) as [`mark_action_index`]
/// numbers them; invalid combinations stay visible.
pub const MARK_ACTION_NAMES: [&str; 8] = [
    "none",
    "add",
    "remove",
    "add|remove",
    "flush",
    "add|flush",
    "remove|flush",
    "add|remove|flush",
];

/// Add (1), remove (2) and flush (4) bits of `flags`, packed into an index.
pub fn mark_action_index(flags: u64) -> u64 {
    (flags & 0x1) | (flags & 0x2) | ((flags & 0x80) >> 5)
}

/// add / remove / flush from the action bits; invalid combinations stay visible.
pub fn mark_action(flags: u64) -> &'static str {
    MARK_ACTION_NAMES[mark_action_index(flags) as usize]
}

/// Each decoded bit of `value` by `table`'s names, unknown bits as one hex value.
pub fn bit_names(table: &[Name], value: u64) -> Vec<String> {
    let mut out = Vec::new();
    for_each_bit_name(table, value, |b| match b {
        BitName::Known(n) => out.push(n.to_string()),
        BitName::Unknown(bits) => out.push(format!("{bits:#x}")),
    });
    out
}

/// The FAN_MARK_* flags of a fanotify_mark flags value, without the mark-type field.
pub fn mark_flag_list(flags: u64) -> Vec<String> {
    bit_names(MARK_FLAGS, flags & !MARK_TYPE_BITS)
}

/// The FAN_* event bits of a mask.
pub fn mask_list(mask: u64) -> Vec<String> {
    bit_names(MASK_BITS, mask)
}

/// `inode`, `mount`, `filesystem` or `mntns`.
pub fn mark_type(flags: u64) -> &'static str {
    match flags & MARK_TYPE_BITS {
        0x010 => "mount",
        0x100 => "filesystem",
        0x110 => "mntns",
        _ => "inode",
    }
}

/// `FAN_CLASS_CONTENT|FAN_CLOEXEC`: the class (always named), then the other flags.
pub fn init_flag_names(flags: u64) -> String {
    let class = INIT_CLASSES
        .iter()
        .find(|c| c.value == flags & INIT_CLASS_BITS)
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| format!("{:#x}", flags & INIT_CLASS_BITS));
    let rest = join_names(INIT_FLAGS, flags & !INIT_CLASS_BITS);
    if rest.is_empty() {
        class
    } else {
        format!("{class}|{rest}")
    }
}

/// `notif`, `content` or `pre_content`: whether the group may get permission events.
pub fn init_class(flags: u64) -> &'static str {
    match flags & INIT_CLASS_BITS {
        0x0 => "notif",
        0x4 => "content",
        0x8 => "pre_content",
        _ => "invalid",
    }
}

/// `O_RDONLY|O_LARGEFILE` for `fanotify_init`'s `event_f_flags`.
pub fn event_f_flag_names(flags: u64) -> String {
    let mode = match flags & OPEN_ACCMODE {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = join_names(EVENT_F_FLAGS, flags & !OPEN_ACCMODE);
    if rest.is_empty() {
        mode.to_string()
    } else {
        format!("{mode}|{rest}")
    }
}

/// `EBADF` for -9; `errno N` for a number Linux does not name; `None` for success.
pub fn errno_text(ret: i64) -> Option<String> {
    (ret < 0).then(|| {
        crate::errno::errno_name(-ret)
            .map(str::to_string)
            .unwrap_or_else(|| format!("errno {}", -ret))
    })
}

/// One call, everything `strace_line` prints.
pub struct CallView<'a> {
    /// `fanotify_mark` or `fanotify_init` (then `flags` and `mask` are its two arguments).
    pub syscall: &'a str,
    /// Unix time of entry, ns.
    pub time_ns: i64,
    pub comm: &'a str,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub fanotify_fd: i32,
    pub flags: u32,
    pub mask: u64,
    pub dirfd: i32,
    /// Path bytes (as read) when the status is `ok` or `truncated`.
    pub path: Option<&'a [u8]>,
    pub path_status: &'a str,
    pub ret: i64,
    /// The syscall ABI (`x86_64`, `ia32`); `None` when the capture predates the column.
    pub abi: Option<&'a str>,
    /// What the kernel said (schema version 6): the group, the object, the mark after.
    pub kernel: KernelView<'a>,
}

/// The kernel's side of a row, where the capture has it.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelView<'a> {
    pub group_id: Option<u64>,
    pub object: Option<&'a str>,
    pub resolved_path: Option<&'a str>,
    pub mark_mask: Option<u64>,
    pub mark_ignored_mask: Option<u64>,
    /// How the fact was learnt (`object_source`).
    pub source: Option<&'a str>,
}

impl KernelView<'_> {
    /// ` <group G: OBJECT "PATH" mask=... ignored=...>`, or nothing when nothing is known.
    fn suffix(&self) -> String {
        let mut parts = Vec::new();
        if let Some(g) = self.group_id {
            parts.push(format!("group {g}"));
        }
        if let Some(o) = self.object {
            parts.push(o.to_string());
        }
        if let Some(p) = self.resolved_path {
            parts.push(quote(p.as_bytes()));
        }
        match (self.mark_mask, self.mark_ignored_mask) {
            (Some(0), Some(0)) => parts.push("gone".to_string()),
            (Some(m), Some(i)) => {
                parts.push(format!("mask={}", mask_names(m)));
                if i != 0 {
                    parts.push(format!("ignored={}", mask_names(i)));
                }
            }
            _ => {}
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" <{}>", parts.join(" "))
        }
    }
}

/// `12:00:01.123456 nginx[412/415] uid=0 fanotify_mark(5, FAN_MARK_ADD|FAN_MARK_MOUNT,
/// FAN_OPEN_PERM, AT_FDCWD, "/srv") = 0`, times in UTC, path bytes escaped like strace. A
/// call through another ABI than the native one is marked, `uid=0 [ia32] fanotify_mark(...)`.
pub fn strace_line(c: &CallView<'_>) -> String {
    let day_ns = c.time_ns.rem_euclid(86_400_000_000_000);
    let (h, m, s, us) = (
        day_ns / 3_600_000_000_000,
        day_ns / 60_000_000_000 % 60,
        day_ns / 1_000_000_000 % 60,
        day_ns / 1_000 % 1_000_000,
    );
    let dirfd = if c.dirfd == -100 {
        "AT_FDCWD".to_string()
    } else {
        c.dirfd.to_string()
    };
    let path = match (c.path, c.path_status) {
        (Some(p), "truncated") => format!("{}...", quote(p)),
        (Some(p), _) => quote(p),
        (None, "fault") => "<unreadable>".to_string(),
        (None, _) => "NULL".to_string(),
    };
    let result = match errno_text(c.ret) {
        Some(e) => format!("-1 {e}"),
        None => c.ret.to_string(),
    };
    let abi = match c.abi {
        Some(abi) if abi != crate::record::Abi::X86_64.name() => format!("[{abi}] "),
        _ => String::new(),
    };
    let k = c.kernel;
    let seen = k
        .source
        .map(|s| format!(" (seen by {s})"))
        .unwrap_or_default();
    match c.syscall {
        "mark_state" => {
            return format!(
                "{h:02}:{m:02}:{s:02}.{us:06} [kernel] mark{}{seen}",
                k.suffix()
            );
        }
        "group_held" | "group_released" => {
            return format!(
                "{h:02}:{m:02}:{s:02}.{us:06} [kernel] {}[{}] fd {} {} group {}{seen}",
                c.comm,
                c.pid,
                c.fanotify_fd,
                if c.syscall == "group_held" {
                    "holds"
                } else {
                    "no longer holds"
                },
                k.group_id
                    .map_or_else(|| "?".to_string(), |g| g.to_string()),
            );
        }
        "group_end" => {
            return format!(
                "{h:02}:{m:02}:{s:02}.{us:06} [kernel] group {} ends, and every mark in it{seen}",
                k.group_id
                    .map_or_else(|| "?".to_string(), |g| g.to_string()),
            );
        }
        _ => {}
    }
    if c.syscall == "process_exit" {
        return format!(
            "{h:02}:{m:02}:{s:02}.{us:06} {}[{}/{}] uid={} +++ {} (its fanotify groups close) +++",
            c.comm,
            c.pid,
            c.tid,
            c.uid,
            exit_status_text(c.ret),
        );
    }
    if c.syscall == "fanotify_init" {
        return format!(
            "{h:02}:{m:02}:{s:02}.{us:06} {}[{}/{}] uid={} {abi}fanotify_init({}, {}) = {result}{}",
            c.comm,
            c.pid,
            c.tid,
            c.uid,
            init_flag_names(u64::from(c.flags)),
            event_f_flag_names(c.mask),
            k.suffix(),
        );
    }
    format!(
        "{h:02}:{m:02}:{s:02}.{us:06} {}[{}/{}] uid={} {abi}fanotify_mark({}, {}, {}, {dirfd}, {path}) = {result}{}",
        c.comm,
        c.pid,
        c.tid,
        c.uid,
        c.fanotify_fd,
        flag_names(u64::from(c.flags)),
        mask_names(c.mask),
        k.suffix(),
    )
}

/// A C string literal: printable ASCII as is, `"` and `\` escaped, other bytes as `\xNN`.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Signal names by number (x86 and most architectures), for exit statuses.
const SIGNAL_NAMES: [&str; 32] = [
    "0",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A `wait(2)` status as strace words it: `exited with 3`, `killed by SIGKILL`.
pub fn exit_status_text(status: i64) -> String {
    let signal = status & 0x7f;
    if signal == 0 {
        return format!("exited with {}", (status >> 8) & 0xff);
    }
    let name = usize::try_from(signal)
        .ok()
        .and_then(|i| SIGNAL_NAMES.get(i))
        .map_or_else(|| format!("signal {signal}"), |n| (*n).to_string());
    let core = if status & 0x80 != 0 {
        " (core dumped)"
    } else {
        ""
    };
    format!("killed by {name}{core}")
}

/// `FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORE`: the call changes the mark's ignore mask.
const IGNORE_FLAGS: u64 = 0x0000_0020 | 0x0000_0400;

/// A mark's event mask and ignore mask after a run of successful `fanotify_mark(2)` calls on
/// it, in order, as the kernel applies them: an add sets bits, a remove clears them, in the
/// ignore mask when the call says `FAN_MARK_IGNORED_MASK` or `FAN_MARK_IGNORE`. The kernel
/// drops a mark whose masks are both empty. Flushes act on a whole group and are left to the
/// caller; a call that is not one add or one remove changes nothing (the kernel refused it).
pub fn fold_mark(calls: impl IntoIterator<Item = (u64, u64)>) -> (u64, u64) {
    let (mut mask, mut ignored) = (0u64, 0u64);
    for (flags, bits) in calls {
        let target = if flags & IGNORE_FLAGS != 0 {
            &mut ignored
        } else {
            &mut mask
        };
        match mark_action(flags) {
            "add" => *target |= bits,
            "remove" => *target &= !bits,
            _ => {}
        }
    }
    (mask, ignored)
}

#[cfg(test)]
mod fold_tests {
    use super::fold_mark;

    const ADD: u64 = 0x1;
    const REMOVE: u64 = 0x2;
    const IGNORED_MASK: u64 = 0x20;

    #[test]
    fn adds_and_removes_apply_in_order() {
        assert_eq!(fold_mark([(ADD, 0x1), (ADD, 0x2)]), (0x3, 0));
        assert_eq!(fold_mark([(ADD, 0x3), (REMOVE, 0x1)]), (0x2, 0));
        assert_eq!(fold_mark([(ADD, 0x3), (REMOVE, 0x3), (ADD, 0x8)]), (0x8, 0));
        assert_eq!(fold_mark([(REMOVE, 0x3)]), (0, 0));
    }

    #[test]
    fn ignore_calls_change_the_ignore_mask_only() {
        assert_eq!(
            fold_mark([(ADD, 0x1), (ADD | IGNORED_MASK, 0x20)]),
            (0x1, 0x20)
        );
        assert_eq!(
            fold_mark([(ADD | IGNORED_MASK, 0x30), (REMOVE | IGNORED_MASK, 0x10)]),
            (0, 0x20)
        );
        assert_eq!(fold_mark([(ADD | 0x400, 0x4)]), (0, 0x4));
    }

    #[test]
    fn invalid_actions_change_nothing() {
        assert_eq!(
            fold_mark([(ADD, 0x1), (ADD | REMOVE, 0x1), (0, 0x1)]),
            (0x1, 0)
        );
    }
}

#[cfg(test)]
mod exit_status_tests {
    use super::exit_status_text;

    #[test]
    fn wait_statuses_read_as_strace_says_them() {
        assert_eq!(exit_status_text(0), "exited with 0");
        assert_eq!(exit_status_text(3 << 8), "exited with 3");
        assert_eq!(exit_status_text(9), "killed by SIGKILL");
        assert_eq!(
            exit_status_text(11 | 0x80),
            "killed by SIGSEGV (core dumped)"
        );
        assert_eq!(exit_status_text(40), "killed by signal 40");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_actions() {
        assert_eq!(mark_action(0x1 | 0x10), "add");
        assert_eq!(mark_action(0x2), "remove");
        assert_eq!(mark_action(0x80), "flush");
        assert_eq!(mark_action(0x83), "add|remove|flush");
        assert_eq!(mark_action(0x100), "none");
    }

    #[test]
    fn lists_leave_the_mark_type_out_and_keep_unknown_bits() {
        assert_eq!(mark_flag_list(0x1 | 0x10), ["FAN_MARK_ADD"]);
        assert_eq!(mask_list(0x20 | 0x8000_0000), ["FAN_OPEN", "0x80000000"]);
        assert!(mask_list(0).is_empty());
    }

    #[test]
    fn renders_like_strace() {
        assert_eq!(flag_names(0x1 | 0x10), "FAN_MARK_ADD|FAN_MARK_MOUNT");
        assert_eq!(flag_names(0x80), "FAN_MARK_FLUSH");
        assert_eq!(flag_names(0x2 | 0x110), "FAN_MARK_REMOVE|FAN_MARK_MNTNS");
        assert_eq!(flag_names(0x1 | 0x8000), "FAN_MARK_ADD|0x8000");
        assert_eq!(mask_names(0x10000 | 0x8), "FAN_CLOSE_WRITE|FAN_OPEN_PERM");
        assert_eq!(mask_names(0), "0");
        assert_eq!(mark_type(0x101), "filesystem");
        let init = strace_line(&CallView {
            syscall: "fanotify_init",
            time_ns: 0,
            comm: "evil",
            pid: 7,
            tid: 7,
            uid: 0,
            fanotify_fd: -1,
            flags: 0x4 | 0x1,
            mask: 0o100000,
            dirfd: 0,
            path: None,
            path_status: "null",
            ret: 3,
            abi: Some("ia32"),
            kernel: KernelView::default(),
        });
        assert_eq!(
            init,
            "00:00:00.000000 evil[7/7] uid=0 [ia32] fanotify_init(FAN_CLASS_CONTENT|FAN_CLOEXEC, \
             O_RDONLY|O_LARGEFILE) = 3"
        );
        assert_eq!(init_class(0x8), "pre_content");
        let line = strace_line(&CallView {
            syscall: "fanotify_mark",
            time_ns: 43_201_123_456_789,
            comm: "nginx",
            pid: 412,
            tid: 415,
            uid: 0,
            fanotify_fd: 5,
            flags: 0x11,
            mask: 0x10008,
            dirfd: -100,
            path: Some(b"/srv/\xff\"x"),
            path_status: "ok",
            ret: -9,
            abi: Some("x86_64"),
            kernel: KernelView::default(),
        });
        assert_eq!(
            line,
            "12:00:01.123456 nginx[412/415] uid=0 fanotify_mark(5, FAN_MARK_ADD|FAN_MARK_MOUNT, \
             FAN_CLOSE_WRITE|FAN_OPEN_PERM, AT_FDCWD, \"/srv/\\xff\\\"x\") = -1 EBADF"
        );
    }

    #[test]
    fn the_kernels_side_follows_the_call() {
        let call = CallView {
            syscall: "fanotify_mark",
            time_ns: 0,
            comm: "w",
            pid: 1,
            tid: 1,
            uid: 0,
            fanotify_fd: 3,
            flags: 0x1,
            mask: 0x20,
            dirfd: -100,
            path: Some(b"/proc/self/fd/6"),
            path_status: "ok",
            ret: 0,
            abi: Some("x86_64"),
            kernel: KernelView {
                group_id: Some(42),
                object: Some("inode:28:7"),
                resolved_path: Some("/srv/c"),
                mark_mask: Some(0x20),
                mark_ignored_mask: Some(0),
                source: Some("exit"),
            },
        };
        assert_eq!(
            strace_line(&call),
            "00:00:00.000000 w[1/1] uid=0 fanotify_mark(3, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, \
             \"/proc/self/fd/6\") = 0 <group 42 inode:28:7 \"/srv/c\" mask=FAN_OPEN>"
        );
        let dropped = CallView {
            syscall: "mark_state",
            kernel: KernelView {
                mark_mask: Some(0),
                resolved_path: None,
                source: Some("fdinfo"),
                ..call.kernel
            },
            ..call
        };
        assert_eq!(
            strace_line(&dropped),
            "00:00:00.000000 [kernel] mark <group 42 inode:28:7 gone> (seen by fdinfo)"
        );
    }
}
