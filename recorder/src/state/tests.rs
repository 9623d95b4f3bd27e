//! The state layer on made-up items: what each call did is told by the difference the kernel
//! showed, whatever the call's path said.
use fantrace_schema::arrow::{MarkState, RowKind};
use fantrace_schema::object::ObjectKey;
use fantrace_schema::record::{
    CallRecord, ITEM_GROUP_RELEASE, ITEM_MARKS, MarkEntry, SNAPSHOT_COMPLETE, SYSCALL_EXIT,
    SYSCALL_INIT, SYSCALL_MARK, ScanEntry, obj_type,
};

use super::{Everyone, KernelState, Row};

const GROUP: u64 = 0xffff_8880_0bad_f00d;
const PID: u32 = 4_000_001;
const FD: i32 = 3;
const DEV: u32 = 254 << 20;
const ADD: u32 = 0x1;
const REMOVE: u32 = 0x2;
const MOUNT: u32 = 0x10;
const FLUSH: u32 = 0x80;

fn state() -> KernelState {
    KernelState::new("", 1, Box::new(Everyone))
}

fn call(syscall: u8, at: u64, flags: u32, mask: u64, ret: i64) -> CallRecord {
    CallRecord {
        enter_ns: at,
        exit_ns: at + 10,
        pid: PID,
        tid: PID,
        fanotify_fd: FD,
        flags,
        mask,
        ret,
        group: GROUP,
        syscall,
        dirfd: -100,
        ..CallRecord::default()
    }
}

fn inode(ino: u64, mask: u32) -> MarkEntry {
    MarkEntry {
        key: ino,
        dev: DEV,
        mask,
        obj_type: obj_type::INODE,
        ..MarkEntry::default()
    }
}

fn mount(id: u64, mask: u32) -> MarkEntry {
    MarkEntry {
        key: id,
        mask,
        obj_type: obj_type::VFSMOUNT,
        ..MarkEntry::default()
    }
}

/// A successful mark call and the marks its group had right after it.
fn marked(s: &mut KernelState, at: u64, flags: u32, mask: u64, marks: &[MarkEntry]) {
    let ev = call(SYSCALL_MARK, at, flags, mask, 0);
    let mut snap = ev;
    snap.syscall = ITEM_MARKS;
    snap.ret = marks.len() as i64;
    snap.flags = SNAPSHOT_COMPLETE;
    let tail: Vec<u8> = marks
        .iter()
        .flat_map(|m| {
            // SAFETY: MarkEntry is plain data.
            unsafe {
                std::slice::from_raw_parts(
                    std::ptr::from_ref(m).cast::<u8>(),
                    std::mem::size_of::<MarkEntry>(),
                )
            }
            .to_vec()
        })
        .collect();
    s.on_item(&snap, &tail);
    s.on_item(&ev, b"/somewhere");
}

/// (kind, object, mask) of every row handed out, calls as "call".
fn rows(s: &mut KernelState) -> Vec<(String, Option<String>, Option<u64>)> {
    s.settle()
        .into_iter()
        .map(|r| match r {
            Row::Call { facts, .. } => ("call".into(), facts.object, facts.mark.map(|m| m.mask)),
            Row::State { kind, row } => (
                kind.name().into(),
                row.facts.object,
                row.facts.mark.map(|m| m.mask),
            ),
        })
        .collect()
}

fn key(ino: u64) -> Option<String> {
    Some(ObjectKey::Inode { dev: DEV, ino }.to_string())
}

/// A successful fanotify_init of the test's process at `at`, returning `fd`.
fn init_call(at: u64, fd: i32) -> CallRecord {
    let mut init = call(SYSCALL_INIT, at, 0, 0, i64::from(fd));
    init.fanotify_fd = -1;
    init
}

fn made(s: &mut KernelState) {
    s.on_item(&init_call(10, FD), b"");
}

#[test]
fn each_call_names_the_object_it_changed_and_its_masks_after() {
    let mut s = state();
    made(&mut s);
    marked(&mut s, 100, ADD, 0x28, &[inode(7, 0x28)]);
    marked(
        &mut s,
        200,
        ADD | MOUNT,
        0x20,
        &[mount(0x1c, 0x20), inode(7, 0x28)],
    );
    marked(
        &mut s,
        300,
        REMOVE,
        0x20,
        &[mount(0x1c, 0x20), inode(7, 0x8)],
    );
    marked(&mut s, 400, REMOVE, 0x8, &[mount(0x1c, 0x20)]);
    assert_eq!(
        rows(&mut s),
        vec![
            ("call".into(), None, None),
            ("call".into(), key(7), Some(0x28)),
            ("call".into(), Some("mount:1c".into()), Some(0x20)),
            ("call".into(), key(7), Some(0x8)),
            ("call".into(), key(7), Some(0)),
        ]
    );
}

#[test]
fn what_the_kernel_did_on_its_own_is_a_row_of_its_own() {
    let mut s = state();
    made(&mut s);
    marked(&mut s, 100, ADD, 0x2, &[inode(7, 0x2)]);
    marked(&mut s, 200, ADD, 0x2, &[inode(8, 0x2), inode(7, 0x2)]);
    // Between the calls, 7 was unlinked and the kernel dropped its mark.
    marked(&mut s, 300, ADD, 0x1, &[inode(9, 0x1), inode(8, 0x2)]);
    let got = rows(&mut s);
    assert_eq!(
        got[3..].to_vec(),
        vec![
            ("mark_state".into(), key(7), Some(0)),
            ("call".into(), key(9), Some(0x1)),
        ],
        "the drop, then the call that showed it"
    );
}

#[test]
fn a_flush_removes_its_type_and_a_no_op_changes_nothing() {
    let mut s = state();
    made(&mut s);
    marked(&mut s, 100, ADD, 0x2, &[inode(7, 0x2)]);
    marked(
        &mut s,
        150,
        ADD | MOUNT,
        0x20,
        &[mount(0x1c, 0x20), inode(7, 0x2)],
    );
    // Adding bits already there: nothing to tell the object by.
    marked(&mut s, 170, ADD, 0x2, &[mount(0x1c, 0x20), inode(7, 0x2)]);
    marked(&mut s, 200, FLUSH, 0, &[mount(0x1c, 0x20)]);
    let got = rows(&mut s);
    assert_eq!(got[3], ("call".into(), None, None), "a no-op add");
    assert_eq!(
        got[4..].to_vec(),
        vec![
            ("mark_state".into(), key(7), Some(0)),
            ("call".into(), None, None),
        ],
        "the flush's removal, then the flush"
    );
}

/// What a scan finds while the test's process holds the test's group.
const HELD: ScanEntry = ScanEntry {
    group: GROUP,
    tgid: PID,
    fd: FD as u32,
};

/// The exit of the test's process, recorded at `at`.
fn exited(s: &mut KernelState, at: u64) {
    let mut exit = call(SYSCALL_EXIT, at, 0, 0, 0);
    exit.group = 0;
    s.on_item(&exit, b"");
}

/// When the settled rows say groups ended.
fn group_ends(s: &mut KernelState) -> Vec<u64> {
    s.settle()
        .into_iter()
        .filter_map(|r| match r {
            Row::State {
                kind: RowKind::GroupEnd,
                row,
            } => Some(row.boot_ns),
            _ => None,
        })
        .collect()
}

#[test]
fn a_group_found_by_a_scan_is_held_and_ends_with_its_last_holder() {
    let mut s = state();
    // Two processes hold one group (a fork): one group, two holders.
    let scan = [
        ScanEntry {
            group: GROUP,
            tgid: PID,
            fd: FD as u32,
        },
        ScanEntry {
            group: GROUP,
            tgid: PID + 1,
            fd: 5,
        },
    ];
    s.on_scan(&scan, 1_000, true);
    let got = rows(&mut s);
    assert_eq!(
        got.iter().filter(|r| r.0 == "group_held").count(),
        2,
        "{got:?}"
    );
    assert_eq!(s.take_new_holders(), vec![PID, PID + 1]);
    // The child closes its copy: released, the group lives on.
    s.on_scan(&scan[..1], 2_000, true);
    assert_eq!(
        rows(&mut s).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["group_released"]
    );
    // The parent exits: the next scan no longer sees the group, which ended at the exit.
    exited(&mut s, 2_500);
    assert!(s.scan_due());
    s.on_scan(&[], 3_000, true);
    let ends = group_ends(&mut s);
    assert_eq!(ends, [2_500], "ended at the last holder's exit");
}

#[test]
fn a_holder_whose_exit_was_recorded_ends_the_group_at_its_exit_though_a_scan_still_saw_it() {
    let mut s = state();
    let scan = [HELD];
    s.on_scan(&scan, 1_000, true);
    let _ = rows(&mut s);
    exited(&mut s, 2_500);
    // The exit tracepoint fires before the kernel closes the process's files: a scan right
    // after it still finds the fd.
    s.on_scan(&scan, 2_600, true);
    s.on_scan(&[], 3_000, true);
    let ends = group_ends(&mut s);
    assert_eq!(ends, [2_500], "ended at the holder's exit, not at the scan");
}

#[test]
fn a_group_a_scan_misses_before_its_holders_exit_is_read_ends_at_the_exit_or_at_the_scan() {
    let held = [HELD];
    // The exit was in the ring when the scan looked, but drained after it.
    let mut s = state();
    s.on_scan(&held, 1_000, true);
    let _ = rows(&mut s);
    s.on_scan(&[], 3_000, true);
    assert!(
        group_ends(&mut s).is_empty(),
        "not ended before the ring is drained"
    );
    exited(&mut s, 2_500);
    s.resolve_vanished();
    assert_eq!(group_ends(&mut s), [2_500], "ended at the exit");
    // No exit: closed, which tracepoint mode sees only at the scan.
    let mut s = state();
    s.on_scan(&held, 1_000, true);
    let _ = rows(&mut s);
    s.on_scan(&[], 3_000, true);
    s.check_known(4_000);
    assert_eq!(group_ends(&mut s), [3_000], "ended when the scan looked");
}

#[test]
fn a_new_group_on_a_closed_groups_fd_ends_the_closed_one_by_then() {
    let mut s = state();
    made(&mut s);
    marked(&mut s, 20, ADD | MOUNT, 0x20, &[mount(27, 0x20)]);
    let _ = rows(&mut s);
    // close(fd) is not seen in tracepoint mode; fanotify_init returning the same fd to the same
    // process says it happened, before this call.
    let mut again = init_call(5_000, FD);
    again.group = GROUP + 0x1000;
    s.on_item(&again, b"");
    assert_eq!(group_ends(&mut s), [5_000]);
}

#[test]
fn a_dead_owners_group_at_an_address_a_new_group_takes_ended_at_the_exit() {
    let mut s = state();
    made(&mut s);
    let _ = rows(&mut s);
    exited(&mut s, 2_500);
    // No scan in between: the next group the kernel makes is at the same address.
    let mut other = init_call(5_000, 4);
    other.pid = PID + 7;
    s.on_item(&other, b"");
    assert_eq!(group_ends(&mut s), [2_500]);
}

#[test]
fn a_release_the_kernel_reports_ends_the_group_then_and_there() {
    let mut s = state();
    made(&mut s);
    let mut release = call(ITEM_GROUP_RELEASE, 5_000, 0, 0, 0);
    release.fanotify_fd = -1;
    s.on_item(&release, b"");
    let got = rows(&mut s);
    assert_eq!(got.last().map(|r| r.0.as_str()), Some("group_end"));
    s.on_scan(&[], 6_000, true);
    assert!(rows(&mut s).is_empty(), "ended once");
}

#[test]
fn fdinfo_differences_are_mark_state_rows() {
    let mut s = state();
    made(&mut s);
    marked(&mut s, 100, ADD, 0x2, &[inode(7, 0x2)]);
    rows(&mut s);
    let mut info = super::fdinfo::GroupInfo::default();
    info.marks.insert(
        ObjectKey::Inode { dev: DEV, ino: 8 },
        MarkState {
            mask: 0x1,
            ignored_mask: 0,
            flags: 0,
        },
    );
    s.observe(GROUP, &info, PID, FD, 900);
    let mut got = rows(&mut s);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("mark_state".into(), key(7), Some(0)),
            ("mark_state".into(), key(8), Some(1)),
        ]
    );
}

#[test]
fn a_group_a_scan_found_before_its_init_was_read_keeps_its_one_id() {
    let mut s = state();
    // The scan runs between the kernel installing the new fd and the init's record arriving.
    let scan = [HELD];
    s.on_scan(&scan, 1_000, true);
    made(&mut s);
    let got: Vec<(RowKind, Option<u64>)> = s
        .settle()
        .into_iter()
        .map(|r| match r {
            Row::Call { ev, facts, .. } => (
                if ev.syscall == SYSCALL_INIT {
                    RowKind::Init
                } else {
                    RowKind::Mark
                },
                facts.group_id,
            ),
            Row::State { kind, row } => (kind, row.facts.group_id),
        })
        .collect();
    assert_eq!(got.len(), 2, "held, then the init: {got:?}");
    assert_eq!(got[0].0, RowKind::GroupHeld);
    assert_eq!(got[1].0, RowKind::Init);
    assert_eq!(got[0].1, got[1].1, "one group, one id");
}

#[test]
fn a_closed_groups_address_and_fd_reused_by_a_new_group_is_another_group() {
    let mut s = state();
    made(&mut s);
    marked(&mut s, 100, ADD | MOUNT, 0x20, &[mount(0x1b, 0x20)]);
    // fd 3 closed, and fanotify_init gives fd 3 again at the same kernel address.
    s.on_item(&init_call(200, FD), b"");
    marked(&mut s, 300, ADD, 0x1, &[inode(7, 0x1)]);
    let rows = s.settle();
    let ids: Vec<(String, Option<u64>)> = rows
        .iter()
        .map(|r| match r {
            Row::Call { ev, facts, .. } => (format!("call {}", ev.syscall), facts.group_id),
            Row::State { kind, row } => (kind.name().to_string(), row.facts.group_id),
        })
        .collect();
    let first = ids[0].1;
    assert_eq!(ids[2], ("group_end".to_string(), first), "{ids:?}");
    assert_ne!(
        ids[3].1, first,
        "the new group has an id of its own: {ids:?}"
    );
    assert!(
        !ids.iter().any(|(k, _)| k == "mark_state"),
        "the old group's mount mark ends with it, not as a removal from the new one: {ids:?}"
    );
}
