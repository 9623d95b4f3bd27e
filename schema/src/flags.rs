//! Every fanotify name and bit this project decodes: the one table that decoding, SQL
//! functions and documentation use. Values are from the kernel's
//! `include/uapi/linux/fanotify.h` up to Linux 6.18.

/// One named bit (or, for mark types, one value of a multi-bit field).
#[derive(Clone, Copy, Debug)]
pub struct Name {
    pub name: &'static str,
    pub value: u64,
    /// Kernel release that introduced it.
    pub since: &'static str,
}

const fn n(name: &'static str, value: u64, since: &'static str) -> Name {
    Name { name, value, since }
}

/// The mark-type field of `fanotify_mark(2)` flags: not single bits, one value of these bits.
pub const MARK_TYPE_BITS: u64 = 0x0000_0110;

/// Values of the mark-type field (`flags & MARK_TYPE_BITS`). `FAN_MARK_INODE` is 0.
pub const MARK_TYPES: &[Name] = &[
    n("FAN_MARK_INODE", 0x0000_0000, "2.6.37"),
    n("FAN_MARK_MOUNT", 0x0000_0010, "2.6.37"),
    n("FAN_MARK_FILESYSTEM", 0x0000_0100, "4.20"),
    n("FAN_MARK_MNTNS", 0x0000_0110, "6.15"),
];

/// `fanotify_mark(2)` flag bits other than the mark type.
pub const MARK_FLAGS: &[Name] = &[
    n("FAN_MARK_ADD", 0x0000_0001, "2.6.37"),
    n("FAN_MARK_REMOVE", 0x0000_0002, "2.6.37"),
    n("FAN_MARK_DONT_FOLLOW", 0x0000_0004, "2.6.37"),
    n("FAN_MARK_ONLYDIR", 0x0000_0008, "2.6.37"),
    n("FAN_MARK_IGNORED_MASK", 0x0000_0020, "2.6.37"),
    n("FAN_MARK_IGNORED_SURV_MODIFY", 0x0000_0040, "2.6.37"),
    n("FAN_MARK_FLUSH", 0x0000_0080, "2.6.37"),
    n("FAN_MARK_EVICTABLE", 0x0000_0200, "5.19"),
    n("FAN_MARK_IGNORE", 0x0000_0400, "6.0"),
];

/// Event bits of the `mask` argument.
pub const MASK_BITS: &[Name] = &[
    n("FAN_ACCESS", 0x0000_0001, "2.6.37"),
    n("FAN_MODIFY", 0x0000_0002, "2.6.37"),
    n("FAN_ATTRIB", 0x0000_0004, "5.1"),
    n("FAN_CLOSE_WRITE", 0x0000_0008, "2.6.37"),
    n("FAN_CLOSE_NOWRITE", 0x0000_0010, "2.6.37"),
    n("FAN_OPEN", 0x0000_0020, "2.6.37"),
    n("FAN_MOVED_FROM", 0x0000_0040, "5.1"),
    n("FAN_MOVED_TO", 0x0000_0080, "5.1"),
    n("FAN_CREATE", 0x0000_0100, "5.1"),
    n("FAN_DELETE", 0x0000_0200, "5.1"),
    n("FAN_DELETE_SELF", 0x0000_0400, "5.1"),
    n("FAN_MOVE_SELF", 0x0000_0800, "5.1"),
    n("FAN_OPEN_EXEC", 0x0000_1000, "5.0"),
    n("FAN_Q_OVERFLOW", 0x0000_4000, "2.6.37"),
    n("FAN_FS_ERROR", 0x0000_8000, "5.16"),
    n("FAN_OPEN_PERM", 0x0001_0000, "2.6.37"),
    n("FAN_ACCESS_PERM", 0x0002_0000, "2.6.37"),
    n("FAN_OPEN_EXEC_PERM", 0x0004_0000, "5.0"),
    n("FAN_PRE_ACCESS", 0x0010_0000, "6.14"),
    n("FAN_MNT_ATTACH", 0x0100_0000, "6.15"),
    n("FAN_MNT_DETACH", 0x0200_0000, "6.15"),
    n("FAN_EVENT_ON_CHILD", 0x0800_0000, "2.6.37"),
    n("FAN_RENAME", 0x1000_0000, "5.17"),
    n("FAN_ONDIR", 0x4000_0000, "2.6.37"),
];

/// The notification-class field of `fanotify_init(2)` flags.
pub const INIT_CLASS_BITS: u64 = 0x0000_000c;

/// Values of the class field (`flags & INIT_CLASS_BITS`): content and pre-content groups are
/// the ones that may receive permission events.
pub const INIT_CLASSES: &[Name] = &[
    n("FAN_CLASS_NOTIF", 0x0000_0000, "2.6.37"),
    n("FAN_CLASS_CONTENT", 0x0000_0004, "2.6.37"),
    n("FAN_CLASS_PRE_CONTENT", 0x0000_0008, "2.6.37"),
];

/// `fanotify_init(2)` flag bits other than the class.
pub const INIT_FLAGS: &[Name] = &[
    n("FAN_CLOEXEC", 0x0000_0001, "2.6.37"),
    n("FAN_NONBLOCK", 0x0000_0002, "2.6.37"),
    n("FAN_UNLIMITED_QUEUE", 0x0000_0010, "2.6.37"),
    n("FAN_UNLIMITED_MARKS", 0x0000_0020, "2.6.37"),
    n("FAN_ENABLE_AUDIT", 0x0000_0040, "4.15"),
    n("FAN_REPORT_PIDFD", 0x0000_0080, "5.15"),
    n("FAN_REPORT_TID", 0x0000_0100, "4.20"),
    n("FAN_REPORT_FID", 0x0000_0200, "5.1"),
    n("FAN_REPORT_DIR_FID", 0x0000_0400, "5.9"),
    n("FAN_REPORT_NAME", 0x0000_0800, "5.9"),
    n("FAN_REPORT_TARGET_FID", 0x0000_1000, "5.17"),
    n("FAN_REPORT_FD_ERROR", 0x0000_2000, "6.13"),
    n("FAN_REPORT_MNT", 0x0000_4000, "6.15"),
];

/// Access mode field of `event_f_flags` (`O_RDONLY` is 0).
pub const OPEN_ACCMODE: u64 = 0x3;

/// `event_f_flags` bits (x86-64 `open(2)` flags) beyond the access mode.
pub const EVENT_F_FLAGS: &[Name] = &[
    n("O_APPEND", 0o2000, "2.6.37"),
    n("O_NONBLOCK", 0o4000, "2.6.37"),
    n("O_DSYNC", 0o10000, "2.6.37"),
    n("O_LARGEFILE", 0o100000, "2.6.37"),
    n("O_NOATIME", 0o1000000, "2.6.37"),
    n("O_CLOEXEC", 0o2000000, "2.6.37"),
    n("O_SYNC", 0o4000000, "2.6.37"),
];

/// Mask bits whose events wait for the listener's verdict: the ones malware uses to intercept
/// file access.
pub const PERMISSION_MASK: u64 = 0x0001_0000 | 0x0002_0000 | 0x0004_0000 | 0x0010_0000;

/// Calls `each` with the name of every bit of `value` found in `table`, then with the hex value
/// of the bits no entry names (so unknown bits stay visible instead of being dropped).
pub fn for_each_bit_name(table: &[Name], value: u64, mut each: impl FnMut(BitName)) {
    let mut unknown = value;
    for entry in table {
        if entry.value != 0 && value & entry.value == entry.value {
            each(BitName::Known(entry.name));
            unknown &= !entry.value;
        }
    }
    if unknown != 0 {
        each(BitName::Unknown(unknown));
    }
}

/// A decoded bit: a known name, or the leftover bits no table entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitName {
    Known(&'static str),
    Unknown(u64),
}

/// The name of the mark type encoded in `flags`; every value of the field is named.
pub fn mark_type_name(flags: u64) -> &'static str {
    let field = flags & MARK_TYPE_BITS;
    MARK_TYPES
        .iter()
        .find(|t| t.value == field)
        .map(|t| t.name)
        .unwrap_or("FAN_MARK_INODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_reported_not_dropped() {
        let mut seen = [BitName::Unknown(0); 3];
        let mut i = 0;
        for_each_bit_name(MASK_BITS, 0x20 | 0x8 | 0x8000_0000, |b| {
            seen[i] = b;
            i += 1;
        });
        assert_eq!(i, 3);
        assert_eq!(seen[0], BitName::Known("FAN_CLOSE_WRITE"));
        assert_eq!(seen[1], BitName::Known("FAN_OPEN"));
        assert_eq!(seen[2], BitName::Unknown(0x8000_0000));
    }

    #[test]
    fn mark_type_is_a_field_not_a_bit() {
        assert_eq!(mark_type_name(0x1), "FAN_MARK_INODE");
        assert_eq!(mark_type_name(0x1 | 0x10), "FAN_MARK_MOUNT");
        assert_eq!(mark_type_name(0x100), "FAN_MARK_FILESYSTEM");
        assert_eq!(mark_type_name(0x110 | 0x2), "FAN_MARK_MNTNS");
    }

    #[test]
    fn tables_have_no_overlapping_bits() {
        for table in [MARK_FLAGS, MASK_BITS] {
            let mut all = 0u64;
            for e in table {
                assert_eq!(e.value.count_ones(), 1, "{}", e.name);
                assert_eq!(all & e.value, 0, "{} overlaps", e.name);
                all |= e.value;
            }
        }
        let flag_bits = MARK_FLAGS.iter().fold(0, |acc, e| acc | e.value);
        assert_eq!(flag_bits & MARK_TYPE_BITS, 0);
    }
}
