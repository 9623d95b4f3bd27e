//! `/proc/PID/fdinfo/FD` of a fanotify group: the kernel's own list of the group's marks
//! (`fs/notify/fdinfo.c`), read under the group's lock, so a consistent picture of one moment.
//! Every number there is hexadecimal except a mount namespace's.
use std::collections::BTreeMap;

use fantrace_schema::arrow::MarkState;
use fantrace_schema::object::ObjectKey;

/// A file handle as fdinfo prints it for an inode mark: `open_by_handle_at(2)` opens the
/// inode again from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

/// What fdinfo says about one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's `fanotify_init` flags (class, queue and mark limits, audit) and
    /// `event_f_flags`, from `fanotify flags:%x event-flags:%x`.
    pub flags: u32,
    pub event_flags: u32,
    pub marks: BTreeMap<ObjectKey, MarkState>,
    pub handles: BTreeMap<ObjectKey, Handle>,
}

/// Parses an fdinfo file; `None` when it is not a fanotify group's.
pub fn parse(text: &str) -> Option<GroupInfo> {
    let mut info: Option<GroupInfo> = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("fanotify ") else {
            continue;
        };
        let fields: BTreeMap<&str, &str> = rest
            .split_ascii_whitespace()
            .filter_map(|kv| kv.split_once(':'))
            .collect();
        let hex32 = |k: &str| fields.get(k).and_then(|v| u32::from_str_radix(v, 16).ok());
        if let (Some(flags), Some(event_flags)) = (hex32("flags"), hex32("event-flags")) {
            info = Some(GroupInfo {
                flags,
                event_flags,
                ..GroupInfo::default()
            });
            continue;
        }
        let Some(group) = info.as_mut() else {
            continue;
        };
        let key = if let Some(ino) = fields.get("ino") {
            let (Ok(ino), Some(dev)) = (u64::from_str_radix(ino, 16), hex32("sdev")) else {
                continue;
            };
            ObjectKey::Inode { dev, ino }
        } else if let Some(id) = hex32("mnt_id") {
            ObjectKey::Mount { id }
        } else if let Some(dev) = hex32("sdev") {
            ObjectKey::Filesystem { dev }
        } else if let Some(inum) = fields.get("mnt_ns").and_then(|v| v.parse().ok()) {
            ObjectKey::MntNs { inum }
        } else {
            continue;
        };
        let state = MarkState {
            mask: u64::from(hex32("mask").unwrap_or(0)),
            ignored_mask: u64::from(hex32("ignored_mask").unwrap_or(0)),
            flags: hex32("mflags").unwrap_or(0),
        };
        group.marks.insert(key, state);
        if let (Some(kind), Some(bytes)) = (
            fields.get("fhandle-type"),
            fields
                .get("f_handle")
                .and_then(|h| fantrace_schema::integrity::unhex(h)),
        ) && let Ok(handle_type) = i32::from_str_radix(kind, 16)
        {
            group.handles.insert(key, Handle { handle_type, bytes });
        }
    }
    info
}

/// Reads and parses `/proc/PID/fdinfo/FD`; `None` when the fd is gone or not a group.
pub fn read(pid: u32, fd: i32) -> Option<GroupInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pos:\t0\nflags:\t02004002\nmnt_id:\t16\nino:\t1057\n\
        fanotify flags:10 event-flags:0\n\
        fanotify ino:98c5db sdev:fe00000 mflags:40 mask:b ignored_mask:20 fhandle-bytes:8 fhandle-type:1 f_handle:dbc5980000000000\n\
        fanotify mnt_id:1c mflags:0 mask:50000 ignored_mask:0\n\
        fanotify sdev:28 mflags:0 mask:8 ignored_mask:0\n\
        fanotify mnt_ns:4026531841 mflags:0 mask:1000000 ignored_mask:0\n";

    #[test]
    fn every_kind_of_mark_and_the_group_flags() {
        let info = parse(SAMPLE).expect("a fanotify group");
        assert_eq!((info.flags, info.event_flags), (0x10, 0));
        let inode = ObjectKey::Inode {
            dev: 0xfe0_0000,
            ino: 0x98c5db,
        };
        assert_eq!(
            info.marks[&inode],
            MarkState {
                mask: 0xb,
                ignored_mask: 0x20,
                flags: 0x40
            }
        );
        assert_eq!(info.marks[&ObjectKey::Mount { id: 0x1c }].mask, 0x50000);
        assert_eq!(info.marks[&ObjectKey::Filesystem { dev: 0x28 }].mask, 0x8);
        assert_eq!(
            info.marks[&ObjectKey::MntNs { inum: 4026531841 }].mask,
            0x100_0000
        );
        assert_eq!(info.marks.len(), 4);
        assert_eq!(
            info.handles[&inode],
            Handle {
                handle_type: 1,
                bytes: vec![0xdb, 0xc5, 0x98, 0, 0, 0, 0, 0]
            }
        );
    }

    #[test]
    fn other_files_are_not_groups() {
        assert_eq!(parse("pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1\n"), None);
        assert_eq!(
            parse("inotify wd:1 ino:2 sdev:3 mask:4 ignored_mask:0\n"),
            None
        );
    }
}
