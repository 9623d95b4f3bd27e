//! The kernel's marks of one group, read right after a successful `fanotify_mark(2)` the way
//! `/proc/PID/fdinfo` lists them (`group->marks_list`, each mark's connector naming its
//! object). The recorder compares them with what it knew, which tells it what the call
//! changed on which object, whatever path spelling or race led the kernel there.
use fantrace_schema::record::{
    CALL_RECORD_SIZE, CallRecord, ITEM_MARKS, KernelOffset as K, MARK_ENTRY_SIZE, MarkEntry,
    SNAPSHOT_COMPLETE, SNAPSHOT_MARKS, obj_type,
};

use crate::context::{field, kread, kread_field, offset};
use crate::maps::SNAPSHOT;

/// A mark as fdinfo prints it; `None` if its fields cannot be read (it is being freed).
#[inline(always)]
pub fn read_mark(mark: u64) -> Option<MarkEntry> {
    let conn: u64 = kread_field(mark, K::MarkConnector)?;
    let kind: u8 = kread_field(conn, K::ConnType)?;
    let obj: u64 = kread_field(conn, K::ConnObj)?;
    let mut entry = MarkEntry {
        mask: kread_field(mark, K::MarkMask)?,
        ignore_mask: kread_field(mark, K::MarkIgnoreMask).unwrap_or(0),
        flags: kread_field::<u32>(mark, K::MarkFlags).unwrap_or(0) as u16,
        obj_type: kind,
        ..MarkEntry::default()
    };
    match kind {
        obj_type::INODE => {
            let inode = obj.wrapping_sub(offset(K::ConnInodeAdjust)? as u64);
            entry.key = kread_field(inode, K::InodeIno)?;
            let sb: u64 = kread_field(inode, K::InodeSb)?;
            entry.dev = kread_field(sb, K::SbDev)?;
        }
        obj_type::VFSMOUNT => {
            let mount = obj.wrapping_sub(offset(K::ConnMountAdjust)? as u64);
            entry.key = kread_field::<i32>(mount, K::MountId)? as u32 as u64;
        }
        obj_type::SB => {
            let sb = obj.wrapping_sub(offset(K::ConnSbAdjust)? as u64);
            entry.dev = kread_field(sb, K::SbDev)?;
        }
        obj_type::MNTNS => {
            entry.key = u64::from(kread_field::<u32>(obj, K::MntNsInum)?);
        }
        _ => {}
    }
    Some(entry)
}

/// Puts the group's marks (the newest [`SNAPSHOT_MARKS`]) on the ring as an [`ITEM_MARKS`]
/// item with the call's `tid` and `enter_ns`, ahead of the call itself.
#[inline(always)]
pub fn submit_marks(call: &CallRecord, group: u64) {
    let Some(item) = SNAPSHOT.get_ptr_mut(0) else {
        return;
    };
    let item = unsafe { &mut *item };
    let Some(head) = field(group, K::GroupMarksList) else {
        return;
    };
    let Some(g_list) = offset(K::MarkGList) else {
        return;
    };
    let mut node: u64 = kread(head).unwrap_or(0);
    let mut count: usize = 0;
    let mut complete = false;
    for _ in 0..SNAPSHOT_MARKS {
        if node == head {
            complete = true;
            break;
        }
        if node == 0 {
            break;
        }
        let Some(entry) = read_mark(node.wrapping_sub(g_list as u64)) else {
            break;
        };
        if let Some(slot) = item.entries.get_mut(count) {
            *slot = entry;
            count += 1;
        }
        node = kread(node).unwrap_or(0);
    }
    if count == SNAPSHOT_MARKS && node == head {
        complete = true;
    }
    item.head = *call;
    item.head.syscall = ITEM_MARKS;
    item.head.group = group;
    item.head.ret = count as i64;
    item.head.flags = if complete { SNAPSHOT_COMPLETE } else { 0 };
    item.head.path_len = 0;
    let size = CALL_RECORD_SIZE + count.min(SNAPSHOT_MARKS) * MARK_ENTRY_SIZE;
    let bytes =
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(&*item).cast::<u8>(), size) };
    crate::call::submit(bytes, false);
}
