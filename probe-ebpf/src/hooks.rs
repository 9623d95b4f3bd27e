//! fentry programs inside the kernel's fanotify code, attached where the kernel has BPF
//! trampolines (`--attach fentry`). Each fires only for what it names, so no other syscall
//! pays for them:
//!
//! - `security_path_notify(path, mask, obj_type)`: the kernel has resolved a mark call's
//!   pathname (symlinks, `..`, `/proc/self/fd/N`, the dirfd) to the `struct path` it will mark;
//!   its object goes into the call's record. inotify and dnotify call it too; without a live
//!   `fanotify_mark` record in the thread it does nothing.
//! - `fanotify_release(inode, file)`: a group's last file reference is gone, the group ends.
//! - `fsnotify_destroy_mark(mark, group)`: the kernel drops a mark on its own (the inode was
//!   unlinked or evicted, the mount or file system unmounted); a mark a call removes does not
//!   come this way. inotify's marks do too; the recorder keeps what belongs to fanotify groups.
use aya_ebpf::{macros::fentry, programs::FEntryContext};
use fantrace_schema::record::{
    CALL_RECORD_SIZE, ITEM_GROUP_RELEASE, ITEM_MARK_DESTROY, KernelOffset as K, MARK_ENTRY_SIZE,
    SYSCALL_MARK, obj_source,
};

use crate::context::{self, kread_field};
use crate::maps::{PENDING, SNAPSHOT};
use crate::{call, files, snapshot};

#[fentry(function = "security_path_notify")]
pub fn path_notify_fentry(ctx: FEntryContext) -> i32 {
    let task = context::task();
    let Some(pending) = PENDING.get_existing(task) else {
        return 0;
    };
    if pending.event.enter_ns == 0 || pending.event.syscall != SYSCALL_MARK {
        return 0;
    }
    let path: u64 = ctx.arg(0);
    if let Some(facts) = files::object_at_path(path) {
        files::record_object(&mut pending.event, &facts, obj_source::HOOK);
    }
    0
}

#[fentry(function = "fanotify_release")]
pub fn group_release_fentry(ctx: FEntryContext) -> i32 {
    let file: u64 = ctx.arg(1);
    let mut record = call::task_record(context::task(), ITEM_GROUP_RELEASE);
    record.group = kread_field(file, K::FilePrivateData).unwrap_or(0);
    call::submit(call::as_bytes(&record), false);
    0
}

#[fentry(function = "fsnotify_destroy_mark")]
pub fn mark_destroy_fentry(ctx: FEntryContext) -> i32 {
    let mark: u64 = ctx.arg(0);
    let group: u64 = ctx.arg(1);
    let Some(entry) = snapshot::read_mark(mark) else {
        return 0;
    };
    let Some(item) = SNAPSHOT.get_ptr_mut(0) else {
        return 0;
    };
    let item = unsafe { &mut *item };
    item.head = call::task_record(context::task(), ITEM_MARK_DESTROY);
    item.head.group = group;
    item.head.ret = 1;
    item.entries[0] = entry;
    let bytes = unsafe {
        core::slice::from_raw_parts(
            core::ptr::from_ref(&*item).cast::<u8>(),
            CALL_RECORD_SIZE + MARK_ENTRY_SIZE,
        )
    };
    call::submit(bytes, false);
    0
}
