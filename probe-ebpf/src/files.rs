//! A task's open files, read the way `fdget()` finds them (`task->files->fdt->fd[n]`): the
//! group a call's fd names, and the object a `dirfd` is open on. Every step after the task
//! goes through `bpf_probe_read_kernel`, since an array slot is not something the verifier
//! lets a program load from directly.
use fantrace_schema::record::{KernelOffset as K, obj_source};

use crate::context::{kread, kread_field};
use crate::maps::FANOTIFY_FOPS;

/// The `struct file` open at `fd` in `task`, as an address.
#[inline(always)]
pub fn file_at(task: *const u8, fd: i32) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    let files: u64 = kread_field(task as u64, K::TaskFiles)?;
    let fdt: u64 = kread_field(files, K::FilesFdt)?;
    let max_fds: u32 = kread_field(fdt, K::FdtMaxFds)?;
    if fd as u32 >= max_fds {
        return None;
    }
    let slots: u64 = kread_field(fdt, K::FdtFd)?;
    let file: u64 = kread(slots.wrapping_add(fd as u64 * 8))?;
    (file != 0).then_some(file)
}

/// The fanotify group a file is, or 0. `known_fanotify`: the kernel already accepted the fd
/// as a fanotify group (the call succeeded), so its file operations need no check; otherwise
/// they must be `fanotify_fops`, which the first scan learnt.
#[inline(always)]
pub fn group_of(file: u64, known_fanotify: bool) -> u64 {
    if !known_fanotify {
        let Some(fops) = FANOTIFY_FOPS.get(0).copied() else {
            return 0;
        };
        let op: u64 = kread_field(file, K::FileOp).unwrap_or(0);
        if fops == 0 || op != fops {
            return 0;
        }
    }
    kread_field(file, K::FilePrivateData).unwrap_or(0)
}

/// The group behind `fd` of `task`, or 0.
#[inline(always)]
pub fn group_at(task: *const u8, fd: i32, known_fanotify: bool) -> u64 {
    match file_at(task, fd) {
        Some(file) => group_of(file, known_fanotify),
        None => 0,
    }
}

/// What identifies the object a path leads to: the inode and its file system, and the mount
/// it was reached through.
pub struct ObjectFacts {
    pub ino: u64,
    pub dev: u32,
    pub mnt_id: u32,
    pub mode: u16,
}

/// The object of a `struct path` given as its `vfsmount` and `dentry` addresses.
#[inline(always)]
pub fn object_of_path(mnt: u64, dentry: u64) -> Option<ObjectFacts> {
    let inode: u64 = kread_field(dentry, K::DentryInode)?;
    let ino: u64 = kread_field(inode, K::InodeIno)?;
    let sb: u64 = kread_field(inode, K::InodeSb)?;
    let dev: u32 = kread_field(sb, K::SbDev)?;
    let mode: u16 = kread_field(inode, K::InodeMode).unwrap_or(0);
    // real_mount(): the vfsmount sits inside its struct mount.
    let mount_mnt = crate::context::offset(K::MountMnt)? as u64;
    let mnt_id: i32 = kread_field(mnt.wrapping_sub(mount_mnt), K::MountId).unwrap_or(0);
    Some(ObjectFacts {
        ino,
        dev,
        mnt_id: mnt_id as u32,
        mode,
    })
}

/// The object a `struct path` at `path` (an address) leads to.
#[inline(always)]
pub fn object_at_path(path: u64) -> Option<ObjectFacts> {
    let mnt: u64 = kread_field(path, K::PathMnt)?;
    let dentry: u64 = kread_field(path, K::PathDentry)?;
    object_of_path(mnt, dentry)
}

/// The object the open file at `fd` is on: what `fanotify_mark(fd, flags, mask, dirfd, NULL)`
/// marks.
#[inline(always)]
pub fn object_of_fd(task: *const u8, fd: i32) -> Option<ObjectFacts> {
    let file = file_at(task, fd)?;
    object_at_path(crate::context::field(file, K::FilePath)?)
}

/// Writes what is known of the object into the call's record.
#[inline(always)]
pub fn record_object(
    ev: &mut fantrace_schema::record::CallRecord,
    facts: &ObjectFacts,
    source: u8,
) {
    ev.obj_ino = facts.ino;
    ev.obj_dev = facts.dev;
    ev.obj_mnt_id = facts.mnt_id;
    ev.obj_mode = facts.mode;
    ev.obj_source = source;
}

/// The source value for an object read from the dirfd at entry.
pub const FROM_DIRFD: u8 = obj_source::ENTRY_DIRFD;
