//! Where an object is: the absolute path and the file system type behind an object key, found
//! the way the kernel would answer them rather than from the path a caller spelled.
//!
//! - An inode: the file handle fdinfo prints for it, opened again with `open_by_handle_at(2)`
//!   through a mount of its file system, and the path of that open file (`handle`). This is
//!   where the inode is now, whatever name, link or `/proc/self/fd` the call went through.
//! - A mount: its mount point in the mount table (`mountinfo`).
//! - A file system: the mount point of a mount of its root.
//!
//! The recorder's own mount namespace comes first (the host's, for a recorder run as a
//! service); an object only a container sees is looked up through the holder's
//! `/proc/PID/root` and `/proc/PID/mountinfo`, and its `path_source` ends in `+ns`.
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;

use fantrace_schema::object::ObjectKey;

use super::fdinfo::Handle;

/// One line of a mountinfo file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    /// `s_dev` of its file system, in the kernel's encoding.
    pub dev: u32,
    /// The directory of the file system mounted here ("/" for its root).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// Parses `/proc/PID/mountinfo` (proc(5)); octal escapes (`\040`) are decoded.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut f = left.split(' ');
            let id = f.next()?.parse().ok()?;
            let _parent = f.next()?;
            let (major, minor) = f.next()?.split_once(':')?;
            let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
            let root = unescape(f.next()?);
            let mount_point = unescape(f.next()?);
            let fs_type = right.split(' ').next()?.to_string();
            Some(Mount {
                id,
                dev: (major << 20) | (minor & 0xf_ffff),
                root,
                mount_point,
                fs_type,
            })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A resolved path and how it was found (`path_source`).
pub type Resolved = (String, &'static str);

#[derive(Default)]
pub struct Paths {
    mounts: Vec<Mount>,
    /// Open mount roots to decode handles through, per file system, for one settle at most:
    /// an open directory keeps its file system busy, and the recorder must never make an
    /// `umount` fail (see [`Paths::release_mounts`]).
    mount_fds: HashMap<u32, OwnedFd>,
    /// Mount roots whose open has not returned yet (see [`MOUNT_OPEN_WAIT`]).
    opening: HashMap<u32, std::sync::mpsc::Receiver<Option<OwnedFd>>>,
    inodes: HashMap<(u32, u64), Resolved>,
}

/// How long the drain waits for a mount root to open. Opening a directory can wait on a
/// fanotify permission event (a mark with `FAN_OPEN_PERM | FAN_ONDIR` on it) that its listener
/// may never answer; the open then goes on in its own thread and the recorder, which must
/// never stall, resolves that file system's paths once it returns.
const MOUNT_OPEN_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Inode paths kept at most; the cache is dropped wholesale beyond (paths also go stale).
const MAX_CACHED_PATHS: usize = 65_536;

impl Paths {
    pub fn new() -> Paths {
        let mut p = Paths::default();
        p.refresh_mounts();
        p
    }

    fn refresh_mounts(&mut self) {
        if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
            self.mounts = parse_mountinfo(&text);
        }
    }

    /// Runs `look` on the recorder's mount table, and once more after re-reading it.
    fn in_mounts<T>(&mut self, look: impl Fn(&[Mount]) -> Option<T>) -> Option<T> {
        if let Some(found) = look(&self.mounts) {
            return Some(found);
        }
        self.refresh_mounts();
        look(&self.mounts)
    }

    /// A mount of the root of file system `dev`, preferring the shortest mount point.
    fn root_mount(mounts: &[Mount], dev: u32) -> Option<Mount> {
        mounts
            .iter()
            .filter(|m| m.dev == dev && m.root == "/")
            .min_by_key(|m| m.mount_point.len())
            .or_else(|| mounts.iter().find(|m| m.dev == dev))
            .cloned()
    }

    /// The file system type of the object.
    pub fn fs_type(&mut self, key: &ObjectKey, holder: Option<u32>) -> Option<String> {
        let look = |mounts: &[Mount]| -> Option<String> {
            match key {
                ObjectKey::Inode { dev, .. } | ObjectKey::Filesystem { dev } => mounts
                    .iter()
                    .find(|m| m.dev == *dev)
                    .map(|m| m.fs_type.clone()),
                ObjectKey::Mount { id } => mounts
                    .iter()
                    .find(|m| m.id == *id)
                    .map(|m| m.fs_type.clone()),
                ObjectKey::MntNs { .. } => Some("nsfs".to_string()),
            }
        };
        self.in_mounts(look)
            .or_else(|| holder.and_then(|pid| look(&holder_mounts(pid))))
    }

    /// The path of a mount or file-system object.
    pub fn mount_path(&mut self, key: &ObjectKey, holder: Option<u32>) -> Option<Resolved> {
        let look = |mounts: &[Mount]| -> Option<String> {
            match key {
                ObjectKey::Mount { id } => mounts
                    .iter()
                    .find(|m| m.id == *id)
                    .map(|m| m.mount_point.clone()),
                ObjectKey::Filesystem { dev } => {
                    Self::root_mount(mounts, *dev).map(|m| m.mount_point)
                }
                _ => None,
            }
        };
        if let Some(path) = self.in_mounts(look) {
            return Some((path, "mountinfo"));
        }
        let pid = holder?;
        look(&holder_mounts(pid)).map(|p| (p, "mountinfo+ns"))
    }

    /// Closes the mount roots opened for decoding: called at the end of every settle.
    pub fn release_mounts(&mut self) {
        self.mount_fds.clear();
    }

    /// The inode's path known from an earlier handle.
    pub fn cached_inode(&self, dev: u32, ino: u64) -> Option<Resolved> {
        self.inodes.get(&(dev, ino)).cloned()
    }

    /// The inode's path now, from its file handle.
    pub fn inode_path(
        &mut self,
        dev: u32,
        ino: u64,
        handle: &Handle,
        holder: Option<u32>,
    ) -> Option<Resolved> {
        let found = match self.decode_here(dev, handle) {
            Some(path) => Some((path, "handle")),
            None => holder.and_then(|pid| decode_in(pid, dev, handle).map(|p| (p, "handle+ns"))),
        }?;
        if self.inodes.len() >= MAX_CACHED_PATHS {
            self.inodes.clear();
        }
        self.inodes.insert((dev, ino), found.clone());
        Some(found)
    }

    fn decode_here(&mut self, dev: u32, handle: &Handle) -> Option<String> {
        if !self.mount_fds.contains_key(&dev) {
            let fd = self.open_mount_root(dev)?;
            self.mount_fds.insert(dev, fd);
        }
        let mount_fd = self.mount_fds.get(&dev)?;
        open_handle(mount_fd, handle)
    }

    fn open_mount_root(&mut self, dev: u32) -> Option<OwnedFd> {
        use std::sync::mpsc::TryRecvError;
        if let Some(rx) = self.opening.get(&dev) {
            return match rx.try_recv() {
                Ok(fd) => {
                    self.opening.remove(&dev);
                    fd
                }
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    self.opening.remove(&dev);
                    None
                }
            };
        }
        let mount = self.in_mounts(|m| Self::root_mount(m, dev))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("fantrace-mount".into())
            .spawn(move || {
                let _ = tx.send(open_path(&mount.mount_point));
            });
        if spawned.is_err() {
            return None;
        }
        match rx.recv_timeout(MOUNT_OPEN_WAIT) {
            Ok(fd) => fd,
            Err(_) => {
                tracing::warn!(
                    "opening the root of file system {dev:#x} is held up (a fanotify \
                     permission mark no one answers?); its inode paths wait until it opens"
                );
                self.opening.insert(dev, rx);
                None
            }
        }
    }
}

/// The mount table of another process (its mount namespace), or nothing.
fn holder_mounts(pid: u32) -> Vec<Mount> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// Decodes a handle through a mount only `pid`'s namespace has; the path is the one that
/// process sees.
fn decode_in(pid: u32, dev: u32, handle: &Handle) -> Option<String> {
    let mount = Paths::root_mount(&holder_mounts(pid), dev)?;
    let root = format!("/proc/{pid}/root");
    let path = format!("{root}{}", mount.mount_point);
    // As for the recorder's own mounts, an open held up by a permission event is left behind.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fantrace-mount".into())
        .spawn(move || {
            let _ = tx.send(open_path(&path));
        })
        .ok()?;
    let fd = rx.recv_timeout(MOUNT_OPEN_WAIT).ok()??;
    let path = open_handle(&fd, handle)?;
    // The open file's path as seen from here goes through that process's root.
    Some(path.strip_prefix(&root).unwrap_or(&path).to_string())
}

/// A mount's root directory, to decode handles through. Opened for reading, not `O_PATH`:
/// `open_by_handle_at` refuses an `O_PATH` mount fd (EBADF) on the kernels tested.
fn open_path(path: &str) -> Option<OwnedFd> {
    let c = CString::new(path).ok()?;
    // SAFETY: a valid NUL-terminated path; the fd returned is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open_by_handle_at(mount_fd, handle, O_PATH)` and the path of what it opened.
fn open_handle(mount_fd: &OwnedFd, handle: &Handle) -> Option<String> {
    // struct file_handle { unsigned int handle_bytes; int handle_type; unsigned char f_handle[]; }
    let mut buf = vec![0u32; 2 + handle.bytes.len().div_ceil(4)];
    buf[0] = handle.bytes.len() as u32;
    buf[1] = handle.handle_type as u32;
    // SAFETY: the u32 buffer has room for the handle bytes after the two header words.
    unsafe {
        std::ptr::copy_nonoverlapping(
            handle.bytes.as_ptr(),
            buf.as_mut_ptr().add(2).cast::<u8>(),
            handle.bytes.len(),
        );
    }
    // SAFETY: the buffer is laid out as struct file_handle; the fd returned is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            buf.as_mut_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let bytes = path.as_os_str().as_bytes();
    // A deleted inode reads as "... (deleted)": not a path anyone can use.
    if bytes.ends_with(b" (deleted)") || !bytes.starts_with(b"/") {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// `path` made absolute and tidied without touching the file system: `.` and empty
/// components dropped, `..` applied lexically (what the caller's spelling says, not where a
/// symlink would lead).
pub fn lexical(base: Option<&str>, path: &str) -> Option<String> {
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", base?)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_with_escapes() {
        let text = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    35 22 0:28 / /tmp/with\\040space rw - tmpfs tmpfs rw\n\
                    36 22 254:0 /var/lib /mnt/bind rw - ext4 /dev/vda rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].dev, 254 << 20);
        assert_eq!(mounts[1].mount_point, "/tmp/with space");
        assert_eq!(mounts[1].fs_type, "tmpfs");
        assert_eq!(Paths::root_mount(&mounts, 254 << 20).unwrap().id, 22);
    }

    #[test]
    fn lexical_paths() {
        assert_eq!(lexical(None, "/a/./b/../c//d").as_deref(), Some("/a/c/d"));
        assert_eq!(lexical(Some("/w"), "x/y").as_deref(), Some("/w/x/y"));
        assert_eq!(lexical(None, "x"), None);
        assert_eq!(lexical(None, "/..").as_deref(), Some("/"));
    }

    #[test]
    fn a_handle_from_fdinfo_leads_back_to_the_file() {
        // Only root may open by handle; the recorder runs as root.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("handled");
        std::fs::write(&file, b"x").unwrap();
        let (handle, dev, ino) = name_to_handle(&file);
        let mut paths = Paths::new();
        let found = paths.inode_path(dev, ino, &handle, None);
        assert_eq!(
            found,
            Some((file.to_string_lossy().into_owned(), "handle")),
            "the path open_by_handle_at leads to"
        );
        let renamed = dir.path().join("renamed");
        std::fs::rename(&file, &renamed).unwrap();
        assert_eq!(
            paths.inode_path(dev, ino, &handle, None).map(|r| r.0),
            Some(renamed.to_string_lossy().into_owned()),
            "a renamed file is found under its new name"
        );
    }

    fn name_to_handle(path: &std::path::Path) -> (Handle, u32, u64) {
        use std::os::unix::fs::MetadataExt as _;
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let mut buf = vec![0u32; 2 + 32];
        buf[0] = 128;
        let mut mount_id: i32 = 0;
        let r = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                libc::AT_FDCWD,
                c.as_ptr(),
                buf.as_mut_ptr(),
                &mut mount_id,
                0,
            )
        };
        assert_eq!(
            r,
            0,
            "name_to_handle_at: {}",
            std::io::Error::last_os_error()
        );
        let len = buf[0] as usize;
        let bytes =
            unsafe { std::slice::from_raw_parts(buf.as_ptr().add(2).cast::<u8>(), len) }.to_vec();
        let meta = std::fs::metadata(path).unwrap();
        (
            Handle {
                handle_type: buf[1] as i32,
                bytes,
            },
            fantrace_schema::object::dev_from_stat(meta.dev()),
            meta.ino(),
        )
    }
}
