//! The `object` column: what a mark is on, named the way `/proc/PID/fdinfo` names it, so a
//! capture can be checked against the kernel line for line.
use std::fmt;

use crate::record::{MarkEntry, obj_type};

/// The object of a mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKey {
    /// An inode: its file system's `s_dev` (kernel encoding, `MAJOR << 20 | MINOR`) and number.
    Inode { dev: u32, ino: u64 },
    /// A mount, by mount id (the first field of `/proc/PID/mountinfo`).
    Mount { id: u32 },
    /// A whole file system, by `s_dev`.
    Filesystem { dev: u32 },
    /// A mount namespace, by the inode number of its nsfs file (`/proc/PID/ns/mnt`).
    MntNs { inum: u64 },
}

impl ObjectKey {
    /// The key of a mark the probe read.
    pub fn of_entry(e: &MarkEntry) -> Option<ObjectKey> {
        match e.obj_type {
            obj_type::INODE => Some(ObjectKey::Inode {
                dev: e.dev,
                ino: e.key,
            }),
            obj_type::VFSMOUNT => Some(ObjectKey::Mount { id: e.key as u32 }),
            obj_type::SB => Some(ObjectKey::Filesystem { dev: e.dev }),
            obj_type::MNTNS => Some(ObjectKey::MntNs { inum: e.key }),
            _ => None,
        }
    }

    /// `inode`, `mount`, `filesystem` or `mntns`: the mark type, as `fan_mark_type` names it.
    pub fn mark_type(&self) -> &'static str {
        match self {
            ObjectKey::Inode { .. } => "inode",
            ObjectKey::Mount { .. } => "mount",
            ObjectKey::Filesystem { .. } => "filesystem",
            ObjectKey::MntNs { .. } => "mntns",
        }
    }

    /// Parses what [`fmt::Display`] writes.
    pub fn parse(text: &str) -> Option<ObjectKey> {
        let hex32 = |s: &str| u32::from_str_radix(s, 16).ok();
        let mut parts = text.split(':');
        let key = match (parts.next()?, parts.next(), parts.next()) {
            ("inode", Some(dev), Some(ino)) => ObjectKey::Inode {
                dev: hex32(dev)?,
                ino: u64::from_str_radix(ino, 16).ok()?,
            },
            ("mount", Some(id), None) => ObjectKey::Mount { id: hex32(id)? },
            ("filesystem", Some(dev), None) => ObjectKey::Filesystem { dev: hex32(dev)? },
            ("mntns", Some(inum), None) => ObjectKey::MntNs {
                inum: inum.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(key)
    }
}

/// `inode:SDEV:INO`, `mount:MNT_ID`, `filesystem:SDEV` in hexadecimal, `mntns:INUM` in
/// decimal: each as fdinfo prints it.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKey::Inode { dev, ino } => write!(f, "inode:{dev:x}:{ino:x}"),
            ObjectKey::Mount { id } => write!(f, "mount:{id:x}"),
            ObjectKey::Filesystem { dev } => write!(f, "filesystem:{dev:x}"),
            ObjectKey::MntNs { inum } => write!(f, "mntns:{inum}"),
        }
    }
}

/// A kernel `dev_t` (`MAJOR << 20 | MINOR`) as `(major, minor)`, the pair mountinfo and
/// `stat(1)` show.
pub fn dev_major_minor(dev: u32) -> (u32, u32) {
    (dev >> 20, dev & 0xf_ffff)
}

/// The kernel encoding of the device `stat(2)` reports as `st_dev`.
pub fn dev_from_stat(st_dev: u64) -> u32 {
    let major = ((st_dev >> 32) & 0xffff_f000) | ((st_dev >> 8) & 0xfff);
    let minor = ((st_dev >> 12) & 0xffff_ff00) | (st_dev & 0xff);
    ((major as u32) << 20) | (minor as u32 & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written() {
        for key in [
            ObjectKey::Inode {
                dev: 0xfe0_0000,
                ino: 0x98c5db,
            },
            ObjectKey::Mount { id: 0x1c },
            ObjectKey::Filesystem { dev: 0x28 },
            ObjectKey::MntNs { inum: 4026531841 },
        ] {
            assert_eq!(ObjectKey::parse(&key.to_string()), Some(key), "{key}");
        }
        assert_eq!(
            ObjectKey::Inode {
                dev: 0xfe0_0000,
                ino: 0x98c5db
            }
            .to_string(),
            "inode:fe00000:98c5db"
        );
        assert_eq!(ObjectKey::parse("inode:1"), None);
        assert_eq!(ObjectKey::parse("mount:1c:2"), None);
    }

    #[test]
    fn stat_devices_convert_to_the_kernel_encoding() {
        // /dev/vda (254:0) and a minor above 255 (8:300).
        assert_eq!(dev_from_stat(libc_makedev(254, 0)), 254 << 20);
        assert_eq!(dev_from_stat(libc_makedev(8, 300)), (8 << 20) | 300);
        assert_eq!(dev_major_minor((8 << 20) | 300), (8, 300));
    }

    /// glibc's `makedev`.
    fn libc_makedev(major: u64, minor: u64) -> u64 {
        ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff)
    }
}
