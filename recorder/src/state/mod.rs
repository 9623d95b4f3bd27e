//! The kernel's groups and marks as the recorder knows them, kept in step with the kernel:
//!
//! - after every successful mark call the probe reads the group's marks (`ITEM_MARKS`); the
//!   difference from what was known is what the call did (and anything the kernel did on its
//!   own since), object by object, so the call's row names the object the kernel marked and
//!   the mark's masks after it;
//! - the probe's hooks, where the kernel has them, report a group's release and the marks the
//!   kernel drops on its own;
//! - a scan of every fanotify fd on the machine (`scan.rs` in the probe) finds the groups and
//!   who holds them, and each group's `/proc/PID/fdinfo` says its marks: at start (groups made
//!   before the recording) and every second (fds inherited, duplicated, passed or closed,
//!   groups gone, marks the kernel dropped).
//!
//! Whatever changes without a call saying so becomes a row of its own (`mark_state`,
//! `group_held`, `group_released`, `group_end`), so that the mark state at any moment is the
//! kernel's, not a model of it.
pub mod fdinfo;
pub mod group_id;
pub mod paths;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use fantrace_schema::arrow::{KernelFacts, MarkState, RowKind, StateRow};
use fantrace_schema::decode::mark_action;
use fantrace_schema::flags::MARK_TYPE_BITS;
use fantrace_schema::object::ObjectKey;
use fantrace_schema::record::{
    CallRecord, MarkEntry, SNAPSHOT_COMPLETE, ScanEntry, obj_source, user_mark_flags,
};

use self::fdinfo::GroupInfo;
use self::group_id::GroupIds;
use self::paths::Paths;

/// A row the state layer hands to the batcher.
pub enum Row {
    /// A call, with what the kernel said about it.
    Call {
        ev: CallRecord,
        path: Vec<u8>,
        facts: KernelFacts,
    },
    State {
        kind: RowKind,
        row: StateRow,
    },
}

/// Which processes the recorder records (its `--pid`, `--uid`, `--comm` and `--cgroup`
/// filters), applied to the holders a scan finds as the probe applies them to calls.
pub trait HolderFilter {
    fn admits(&self, pid: u32) -> bool;
}

/// Records every holder.
#[cfg(test)]
pub struct Everyone;

#[cfg(test)]
impl HolderFilter for Everyone {
    fn admits(&self, _pid: u32) -> bool {
        true
    }
}

struct Group {
    id: u64,
    /// `fanotify_init` flags and `event_f_flags`, once fdinfo or the call said them.
    init: Option<(u32, u64)>,
    /// Its fanotify_init call was read: another one at the same address is a new group.
    made_seen: bool,
    /// When the recorder first saw it (its init, the call or scan that found it), boot ns.
    seen_ns: u64,
    holders: BTreeSet<(u32, i32)>,
    marks: BTreeMap<ObjectKey, MarkState>,
    /// The marks above are all of them (not only what a partial read showed).
    complete: bool,
    /// Holders whose process exited since the last scan, and when.
    exited: HashMap<u32, u64>,
}

impl Group {
    /// When its last holder exited, if every holder's exit was read.
    fn all_exited_at(&self) -> Option<u64> {
        let all = self
            .holders
            .iter()
            .all(|(pid, _)| self.exited.contains_key(pid));
        all.then(|| self.exited.values().copied().max()).flatten()
    }

    /// The holder rows name: any one of them.
    fn a_holder(&self) -> (u32, i32) {
        self.holders.iter().next().copied().unwrap_or((0, -1))
    }

    /// A group the recorder found in the kernel (its making not read) at `boot_ns`.
    fn found(id: u64, init: Option<(u32, u64)>, boot_ns: u64) -> Group {
        Group {
            id,
            init,
            made_seen: false,
            seen_ns: boot_ns,
            holders: BTreeSet::new(),
            marks: BTreeMap::new(),
            complete: false,
            exited: HashMap::new(),
        }
    }
}

/// The marks a call's snapshot showed, waiting for the call's own record.
struct Snapshot {
    enter_ns: u64,
    exit_ns: u64,
    group: u64,
    entries: Vec<MarkEntry>,
    complete: bool,
}

/// A row waiting for its paths: rows are resolved and handed over once per drained chunk, so
/// one fdinfo read serves every new mark of a group in it.
struct Pending {
    row: Row,
    /// The object, and a holder (pid, fd) whose fdinfo has the file handle.
    resolve: Option<(ObjectKey, u32, i32)>,
}

pub struct KernelState {
    ids: GroupIds,
    groups: HashMap<u64, Group>,
    own_tgid: u32,
    snapshots: HashMap<u32, Snapshot>,
    paths: Paths,
    pending: Vec<Pending>,
    /// Groups to read fdinfo for at the next settle: a snapshot was partial or lost.
    reread: HashSet<u64>,
    /// A scan is due now rather than at the next tick (a holder exited).
    scan_soon: bool,
    /// Groups (address, id) the last scan no longer found while some holder's exit was not yet
    /// read, and when it looked. An exit is in the ring before the kernel closes the process's
    /// files, so by the next full drain it is known whether the group ended at an exit or by a
    /// close.
    vanished: Vec<(u64, u64, u64)>,
    /// Holder pids first seen by the last scan, whose exits the probe should record.
    new_holders: Vec<u32>,
    filter: Box<dyn HolderFilter>,
    /// Rows handed out so far, per kind, for the status line and tests.
    pub counts: StateCounts,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct StateCounts {
    pub groups_found: u64,
    pub state_rows: u64,
    pub fdinfo_reads: u64,
}

/// `flags & MARK_TYPE_BITS` as the key kind it marks.
fn key_of_call(ev: &CallRecord) -> Option<ObjectKey> {
    if ev.obj_source == obj_source::NONE {
        return None;
    }
    Some(match u64::from(ev.flags) & MARK_TYPE_BITS {
        0x010 => ObjectKey::Mount { id: ev.obj_mnt_id },
        0x100 => ObjectKey::Filesystem { dev: ev.obj_dev },
        0x110 => ObjectKey::MntNs { inum: ev.obj_ino },
        _ => ObjectKey::Inode {
            dev: ev.obj_dev,
            ino: ev.obj_ino,
        },
    })
}

fn mark_type_of_call(ev: &CallRecord) -> &'static str {
    fantrace_schema::decode::mark_type(u64::from(ev.flags))
}

fn state_of(entry: &MarkEntry) -> MarkState {
    MarkState {
        mask: u64::from(entry.mask),
        ignored_mask: u64::from(entry.ignore_mask),
        flags: user_mark_flags(entry.flags),
    }
}

const GONE: MarkState = MarkState {
    mask: 0,
    ignored_mask: 0,
    flags: 0,
};

thread_local! {
    /// What /proc said about each holder during the chunk being settled.
    static HOLDERS: std::cell::RefCell<HashMap<u32, StateRow>> =
        std::cell::RefCell::new(HashMap::new());
}

/// What /proc says about a holder, for the context columns of a state row: read once per
/// process per drained chunk (a flush of thousands of marks is one read).
fn holder_row(pid: u32, fd: i32, boot_ns: u64) -> StateRow {
    if let Some(mut row) = HOLDERS.with(|s| s.borrow().get(&pid).cloned()) {
        row.fd = fd;
        row.boot_ns = boot_ns;
        return row;
    }
    let row = read_holder(pid, fd, boot_ns);
    HOLDERS.with(|s| s.borrow_mut().insert(pid, row.clone()));
    row
}

/// Forgets what was read about holders: a pid may be another process's by the next chunk.
fn forget_holders() {
    HOLDERS.with(|s| s.borrow_mut().clear());
}

fn read_holder(pid: u32, fd: i32, boot_ns: u64) -> StateRow {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> Option<&str> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let first_number = |name: &str| -> u32 {
        field(name)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    StateRow {
        boot_ns,
        pid,
        tid: pid,
        comm: field("Name:").unwrap_or("").to_string(),
        ppid: first_number("PPid:"),
        uid: first_number("Uid:"),
        gid: first_number("Gid:"),
        fd,
        ..StateRow::default()
    }
}

/// When a process started, on the probe's clock (CLOCK_BOOTTIME), from /proc/PID/stat.
fn process_start_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name (which may hold spaces) ends with ')'.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * (1_000_000_000 / hz))
}

/// CLOCK_BOOTTIME now, the probe's clock.
pub fn boot_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl KernelState {
    pub fn new(boot_id: &str, own_tgid: u32, filter: Box<dyn HolderFilter>) -> KernelState {
        KernelState {
            ids: GroupIds::open(boot_id),
            groups: HashMap::new(),
            own_tgid,
            snapshots: HashMap::new(),
            paths: Paths::new(),
            pending: Vec::new(),
            reread: HashSet::new(),
            scan_soon: false,
            vanished: Vec::new(),
            new_holders: Vec::new(),
            filter,
            counts: StateCounts::default(),
        }
    }

    fn state_row(&mut self, kind: RowKind, mut row: StateRow, group: u64) {
        row.facts.group_id = self.groups.get(&group).map(|g| g.id);
        let resolve = row
            .facts
            .object
            .as_deref()
            .and_then(ObjectKey::parse)
            .map(|k| (k, row.pid, row.fd));
        self.counts.state_rows += 1;
        self.pending.push(Pending {
            row: Row::State { kind, row },
            resolve,
        });
    }

    /// A mark's state as a row about `group`, seen through holder `(pid, fd)`.
    #[allow(clippy::too_many_arguments)]
    fn mark_row(
        &mut self,
        group: u64,
        key: ObjectKey,
        state: MarkState,
        boot_ns: u64,
        pid: u32,
        fd: i32,
        source: &'static str,
    ) {
        let mut row = holder_row(pid, fd, boot_ns);
        row.facts.object = Some(key.to_string());
        row.facts.object_source = Some(source);
        row.facts.mark = Some(state);
        self.state_row(RowKind::MarkState, row, group);
    }

    /// The group at `address`, known or newly found through holder `(pid, fd)` at `boot_ns`.
    /// A group first seen through a call (its fd came from a process the recording filters
    /// out, or its fanotify_init was lost) gets its flags from fdinfo at once; its marks come
    /// with the call's snapshot, or from fdinfo at the next settle.
    fn group_seen(&mut self, address: u64, pid: u32, fd: i32, boot_ns: u64) -> &mut Group {
        if !self.groups.contains_key(&address) {
            let (id, _) = self.ids.found(address);
            self.counts.groups_found += 1;
            let info = fdinfo::read(pid, fd);
            self.counts.fdinfo_reads += 1;
            self.groups.insert(
                address,
                Group::found(
                    id,
                    info.map(|i| (i.flags, u64::from(i.event_flags))),
                    boot_ns,
                ),
            );
            self.reread.insert(address);
        }
        let newly_held = self
            .groups
            .get(&address)
            .is_some_and(|g| !g.holders.contains(&(pid, fd)));
        if newly_held && pid != self.own_tgid {
            let mut row = holder_row(pid, fd, boot_ns);
            row.facts.object_source = Some("call");
            if let Some((flags, event_flags)) = self.groups.get(&address).and_then(|g| g.init) {
                row.flags = flags;
                row.mask = event_flags;
                row.ret = 1;
            }
            self.state_row(RowKind::GroupHeld, row, address);
            if let Some(g) = self.groups.get_mut(&address) {
                g.holders.insert((pid, fd));
            }
        }
        self.groups.get_mut(&address).expect("inserted above")
    }

    /// One drained ring item. Returns the call's record and path when it is a call, for
    /// `--print`.
    pub fn on_item(&mut self, ev: &CallRecord, tail: &[u8]) {
        use fantrace_schema::record::{
            ITEM_GROUP_RELEASE, ITEM_MARK_DESTROY, ITEM_MARKS, SYSCALL_EXIT, SYSCALL_INIT,
        };
        match ev.syscall {
            ITEM_MARKS => {
                let entries = entries_of(tail, ev.ret);
                self.snapshots.insert(
                    ev.tid,
                    Snapshot {
                        enter_ns: ev.enter_ns,
                        exit_ns: ev.exit_ns,
                        group: ev.group,
                        entries,
                        complete: ev.flags & SNAPSHOT_COMPLETE != 0,
                    },
                );
            }
            ITEM_GROUP_RELEASE => self.on_release(ev),
            ITEM_MARK_DESTROY => {
                let entries = entries_of(tail, ev.ret);
                if let Some(entry) = entries.first() {
                    self.on_destroy(ev, entry);
                }
            }
            SYSCALL_INIT => self.on_init(ev),
            SYSCALL_EXIT => self.on_exit(ev),
            _ => self.on_mark(ev, tail),
        }
    }

    fn on_init(&mut self, ev: &CallRecord) {
        let mut facts = KernelFacts::default();
        let fd = ev.ret as i32;
        if ev.ret >= 0
            && ev.group != 0
            && let Some(group) = self.groups.get_mut(&ev.group)
            && !group.made_seen
            && ev.enter_ns <= group.seen_ns
            && group.holders.contains(&(ev.pid, fd))
            && group.init.is_none_or(|(flags, _)| flags == ev.flags)
        {
            // A scan found this group before its fanotify_init was drained: the same group,
            // made by this call, which entered before the scan looked. (A group whose making
            // was read, or that was seen before this call, is another at a reused address.)
            group.init = Some((ev.flags, ev.mask));
            group.made_seen = true;
            facts.group_id = Some(group.id);
        } else if ev.ret >= 0 && ev.group != 0 {
            if self.groups.contains_key(&ev.group) {
                // The address holds a new group, so the old one is gone (its release was
                // not seen: no hook, and no scan in between): with its last holder's exit
                // when every holder's exit was read, else by this call at the latest.
                self.end_gone(ev.group, ev.enter_ns, "address reused");
            }
            let id = self.ids.created(ev.group, ev.enter_ns);
            let mut holders = BTreeSet::new();
            holders.insert((ev.pid, ev.ret as i32));
            self.groups.insert(
                ev.group,
                Group {
                    id,
                    init: Some((ev.flags, ev.mask)),
                    made_seen: true,
                    seen_ns: ev.enter_ns,
                    holders,
                    marks: BTreeMap::new(),
                    complete: true,
                    exited: HashMap::new(),
                },
            );
            facts.group_id = Some(id);
        }
        if ev.ret >= 0 && ev.group != 0 {
            self.fd_reused(ev.pid, fd, ev.group, ev.enter_ns);
        }
        self.pending.push(Pending {
            row: Row::Call {
                ev: *ev,
                path: Vec::new(),
                facts,
            },
            resolve: None,
        });
    }

    /// A new group took fd `fd` of `pid`: whatever group that fd held before was closed there
    /// by then (tracepoint mode sees no close). Such a group lost that holder, and ended if it
    /// was its last.
    fn fd_reused(&mut self, pid: u32, fd: i32, new_group: u64, at: u64) {
        let before: Vec<u64> = self
            .groups
            .iter()
            .filter(|(address, g)| **address != new_group && g.holders.contains(&(pid, fd)))
            .map(|(address, _)| *address)
            .collect();
        for address in before {
            let Some(group) = self.groups.get_mut(&address) else {
                continue;
            };
            group.holders.remove(&(pid, fd));
            if group.holders.is_empty() {
                self.end_group(address, at, pid, fd, "close");
            } else {
                let mut row = holder_row(pid, fd, at);
                row.facts.object_source = Some("close");
                self.state_row(RowKind::GroupReleased, row, address);
            }
        }
    }

    fn on_exit(&mut self, ev: &CallRecord) {
        for group in self.groups.values_mut() {
            let held: Vec<(u32, i32)> = group
                .holders
                .iter()
                .copied()
                .filter(|(pid, _)| *pid == ev.pid)
                .collect();
            if !held.is_empty() {
                group.exited.insert(ev.pid, ev.enter_ns);
                self.scan_soon = true;
            }
        }
        self.pending.push(Pending {
            row: Row::Call {
                ev: *ev,
                path: Vec::new(),
                facts: KernelFacts::default(),
            },
            resolve: None,
        });
    }

    fn on_release(&mut self, ev: &CallRecord) {
        if self.groups.contains_key(&ev.group) {
            self.end_group(ev.group, ev.enter_ns, ev.pid, -1, "hook");
        }
    }

    fn on_destroy(&mut self, ev: &CallRecord, entry: &MarkEntry) {
        let Some(key) = ObjectKey::of_entry(entry) else {
            return;
        };
        let Some(group) = self.groups.get_mut(&ev.group) else {
            return;
        };
        if group.marks.remove(&key).is_none() && group.complete {
            return;
        }
        let (pid, fd) = group.holders.iter().next().copied().unwrap_or((ev.pid, -1));
        self.mark_row(ev.group, key, GONE, ev.enter_ns, pid, fd, "hook");
    }

    /// The group ends at `boot_ns`: one `group_end` row, seen through `(pid, fd)`.
    fn end_group(&mut self, address: u64, boot_ns: u64, pid: u32, fd: i32, source: &'static str) {
        let mut row = holder_row(pid, fd, boot_ns);
        row.facts.object_source = Some(source);
        self.state_row(RowKind::GroupEnd, row, address);
        self.groups.remove(&address);
        self.ids.ended(address);
    }

    fn on_mark(&mut self, ev: &CallRecord, path: &[u8]) {
        let snapshot = self
            .snapshots
            .remove(&ev.tid)
            .filter(|s| s.enter_ns == ev.enter_ns);
        let mut facts = KernelFacts::default();
        let mut resolve = None;
        if ev.group != 0 {
            let id = self
                .group_seen(ev.group, ev.pid, ev.fanotify_fd, ev.enter_ns)
                .id;
            facts.group_id = Some(id);
        }
        let called_key = key_of_call(ev);
        if let Some(key) = called_key {
            facts.object = Some(key.to_string());
            facts.object_source = Some(match ev.obj_source {
                obj_source::HOOK => "hook",
                _ => "entry",
            });
        }
        if ev.ret == 0 && ev.group != 0 {
            match snapshot {
                Some(s) if s.group == ev.group => {
                    let target = self.apply_snapshot(ev, &s, called_key);
                    if let Some((key, state, source)) = target {
                        facts.object = Some(key.to_string());
                        if facts.object_source.is_none() {
                            facts.object_source = Some(source);
                        }
                        facts.mark = state;
                    }
                }
                _ => {
                    // The snapshot was lost (ring full) or never taken: fdinfo says the rest.
                    self.reread.insert(ev.group);
                }
            }
        }
        if let Some(key) = facts.object.as_deref().and_then(ObjectKey::parse) {
            resolve = Some((key, ev.pid, ev.fanotify_fd));
        }
        self.pending.push(Pending {
            row: Row::Call {
                ev: *ev,
                path: path.to_vec(),
                facts,
            },
            resolve,
        });
    }

    /// Compares a call's snapshot with what was known: the call's own object and its state
    /// after the call, and a `mark_state` row for every other change (the kernel's own, or a
    /// lost call's). Returns the call's object, its state (`None`: not in a partial snapshot)
    /// and how the object was learnt.
    fn apply_snapshot(
        &mut self,
        ev: &CallRecord,
        s: &Snapshot,
        called_key: Option<ObjectKey>,
    ) -> Option<(ObjectKey, Option<MarkState>, &'static str)> {
        let after: BTreeMap<ObjectKey, MarkState> = s
            .entries
            .iter()
            .filter_map(|e| ObjectKey::of_entry(e).map(|k| (k, state_of(e))))
            .collect();
        let group = self.groups.get_mut(&ev.group)?;
        let mut changes: Vec<(ObjectKey, MarkState)> = Vec::new();
        for (key, state) in &after {
            if group.marks.get(key) != Some(state) {
                changes.push((*key, *state));
            }
        }
        if s.complete {
            for key in group.marks.keys() {
                if !after.contains_key(key) {
                    changes.push((*key, GONE));
                }
            }
        }
        let action = mark_action(u64::from(ev.flags));
        let mark_type = mark_type_of_call(ev);
        let target: Option<(ObjectKey, &'static str)> = match called_key {
            Some(key) => Some((key, "hook")),
            None if action == "flush" => None,
            None => {
                let candidates: Vec<ObjectKey> = changes
                    .iter()
                    .filter(|(k, st)| {
                        k.mark_type() == mark_type && (action != "add" || !st.is_gone())
                    })
                    .map(|(k, _)| *k)
                    .collect();
                match candidates.as_slice() {
                    [one] => Some((*one, "exit")),
                    // Several changed in one go (a lost call, or the kernel at the same
                    // time): a mark the call made is the newest, first in the kernel's list.
                    [_, _, ..] if action == "add" => s
                        .entries
                        .iter()
                        .filter_map(ObjectKey::of_entry)
                        .find(|k| candidates.contains(k) && !group.marks.contains_key(k))
                        .map(|k| (k, "exit")),
                    _ => None,
                }
            }
        };
        // Not in a partial snapshot: fdinfo will say (a complete one lists every mark).
        let target_state =
            target.map(|(key, _)| after.get(&key).copied().or(s.complete.then_some(GONE)));
        // The model follows the kernel.
        if s.complete {
            group.marks = after.clone();
            group.complete = true;
        } else {
            for (key, state) in &after {
                group.marks.insert(*key, *state);
            }
            if let Some((key, Some(state))) = target.map(|(k, _)| k).zip(target_state)
                && state.is_gone()
            {
                group.marks.remove(&key);
            }
            group.complete = false;
        }
        if !s.complete || matches!(target_state, Some(None)) {
            self.reread.insert(ev.group);
        }
        // Every other change: a flush's removals belong to the call; the rest the kernel made
        // (or a call whose record was lost) some time before this one's exit.
        for (key, state) in changes {
            if target.is_some_and(|(k, _)| k == key) {
                continue;
            }
            let (at, source) = if action == "flush" && state.is_gone() {
                (ev.enter_ns, "flush")
            } else {
                (s.exit_ns, "exit")
            };
            self.mark_row(ev.group, key, state, at, ev.pid, ev.fanotify_fd, source);
        }
        let (key, source) = target?;
        Some((key, target_state.flatten(), source))
    }

    /// Whether a scan should run before the next tick.
    pub fn scan_due(&self) -> bool {
        self.scan_soon
    }

    /// Pids first seen holding a group since the last call: the probe records their exits.
    pub fn take_new_holders(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.new_holders)
    }

    /// Between scans: every known group's fdinfo, read through a holder the last scan found,
    /// compared with what is known. A group none of whose holders still has it open needs a
    /// scan to say whether it ended or went elsewhere.
    pub fn check_known(&mut self, boot_ns: u64) {
        self.resolve_vanished();
        let groups: Vec<(u64, BTreeSet<(u32, i32)>)> = self
            .groups
            .iter()
            .map(|(address, g)| (*address, g.holders.clone()))
            .collect();
        for (address, holders) in groups {
            let read = holders
                .iter()
                .find_map(|&(pid, fd)| fdinfo::read(pid, fd).map(|i| (i, pid, fd)));
            match read {
                Some((info, pid, fd)) => {
                    self.counts.fdinfo_reads += 1;
                    self.observe(address, &info, pid, fd, boot_ns);
                }
                None => self.scan_soon = true,
            }
        }
        self.paths.release_mounts();
    }

    /// A scan of every fanotify fd: holders found and gone, groups found and ended. With
    /// `read_all`, every group's fdinfo is read too (the periodic check); otherwise only the
    /// groups that need it.
    pub fn on_scan(&mut self, entries: &[ScanEntry], boot_ns: u64, read_all: bool) {
        self.resolve_vanished();
        self.scan_soon = false;
        let mut seen: BTreeMap<u64, BTreeSet<(u32, i32)>> = BTreeMap::new();
        for e in entries {
            if e.tgid == self.own_tgid || e.group == 0 {
                continue;
            }
            seen.entry(e.group)
                .or_default()
                .insert((e.tgid, e.fd as i32));
        }
        // Groups gone: no fd anywhere holds them.
        let gone: Vec<u64> = self
            .groups
            .keys()
            .copied()
            .filter(|g| !seen.contains_key(g))
            .collect();
        for address in gone {
            let Some(group) = self.groups.get(&address) else {
                continue;
            };
            // When every holder it had exited, it ended with the last of them.
            let (pid, fd) = group.a_holder();
            match group.all_exited_at() {
                Some(at) => self.end_group(address, at, pid, fd, "exit"),
                None => self.vanished.push((address, group.id, boot_ns)),
            }
        }
        for (address, holders) in seen {
            self.end_if_replaced(address, &holders);
            let known = self.groups.contains_key(&address);
            if !known && !holders.iter().any(|(pid, _)| self.filter.admits(*pid)) {
                continue;
            }
            let info = holders
                .iter()
                .find_map(|&(pid, fd)| fdinfo::read(pid, fd).map(|i| (i, pid, fd)));
            self.counts.fdinfo_reads += u64::from(info.is_some());
            if !known {
                let (id, _) = self.ids.found(address);
                self.counts.groups_found += 1;
                self.groups.insert(address, Group::found(id, None, boot_ns));
            }
            if let Some((info, _, _)) = &info
                && let Some(group) = self.groups.get_mut(&address)
                && group.init.is_none()
            {
                group.init = Some((info.flags, u64::from(info.event_flags)));
            }
            self.holders_seen(address, &holders, boot_ns);
            let must_read = read_all || !known || self.reread.contains(&address);
            if let (true, Some((info, pid, fd))) = (must_read, info) {
                self.reread.remove(&address);
                self.observe(address, &info, pid, fd, boot_ns);
            }
        }
        self.ids.save();
        self.paths.release_mounts();
    }

    /// Ends the groups the last scan no longer found, now that the ring has been drained since:
    /// at the last holder's exit when every holder exited before the scan looked, else when the
    /// scan looked (a close the probe cannot see in tracepoint mode). Called before the next
    /// look at the kernel and when the recording ends.
    pub fn resolve_vanished(&mut self) {
        for (address, id, scan_ns) in std::mem::take(&mut self.vanished) {
            // Gone already, or its address is another group's now (which ended it).
            if self.groups.get(&address).is_some_and(|g| g.id == id) {
                self.end_gone(address, scan_ns, "scan");
            }
        }
    }

    /// Ends a group known to be gone by `by_ns`: at its last holder's exit when every holder's
    /// exit was read and came before, else at `by_ns`, learnt from `source`.
    fn end_gone(&mut self, address: u64, by_ns: u64, source: &'static str) {
        let Some(group) = self.groups.get(&address) else {
            return;
        };
        let (pid, fd) = group.a_holder();
        match group.all_exited_at() {
            Some(at) if at <= by_ns => self.end_group(address, at, pid, fd, "exit"),
            _ => self.end_group(address, by_ns, pid, fd, source),
        }
    }

    /// A known group all of whose holders exited, now at an address held only by processes
    /// that started after the last of them exited: none of those could have been handed the
    /// old group, so the kernel made a new one at the same address (its fanotify_init is still
    /// on its way). The old group ended with its last holder.
    fn end_if_replaced(&mut self, address: u64, holders: &BTreeSet<(u32, i32)>) {
        let Some(group) = self.groups.get(&address) else {
            return;
        };
        let Some(last_exit) = group.all_exited_at() else {
            return;
        };
        let all_later = holders
            .iter()
            .all(|(pid, _)| process_start_ns(*pid).is_some_and(|t| t > last_exit));
        if all_later {
            let (pid, fd) = group.a_holder();
            self.end_group(address, last_exit, pid, fd, "exit");
        }
    }

    /// The holders a scan found for a group: new ones held from now, missing ones released
    /// (when their process exited, at its exit).
    fn holders_seen(&mut self, address: u64, holders: &BTreeSet<(u32, i32)>, boot_ns: u64) {
        let Some(group) = self.groups.get(&address) else {
            return;
        };
        let init = group.init;
        let added: Vec<(u32, i32)> = holders.difference(&group.holders).copied().collect();
        let released: Vec<((u32, i32), u64)> = group
            .holders
            .difference(holders)
            .map(|&(pid, fd)| {
                (
                    (pid, fd),
                    group.exited.get(&pid).copied().unwrap_or(boot_ns),
                )
            })
            .collect();
        for (pid, fd) in added {
            let mut row = holder_row(pid, fd, boot_ns);
            row.facts.object_source = Some("scan");
            if let Some((flags, event_flags)) = init {
                row.flags = flags;
                row.mask = event_flags;
                row.ret = 1;
            }
            self.state_row(RowKind::GroupHeld, row, address);
            self.new_holders.push(pid);
        }
        for ((pid, fd), at) in released {
            let mut row = holder_row(pid, fd, at);
            row.facts.object_source = Some("scan");
            self.state_row(RowKind::GroupReleased, row, address);
        }
        if let Some(group) = self.groups.get_mut(&address) {
            group.holders = holders.clone();
            // A process whose exit was recorded may still show its fds: the exit tracepoint
            // fires before the kernel closes them. It stays exited (so the group's end, at
            // the next scan, is its exit), unless the pid is now another process's.
            group.exited.retain(|pid, exit_ns| {
                holders.iter().any(|(p, _)| p == pid)
                    && process_start_ns(*pid).is_none_or(|start| start <= *exit_ns)
            });
        }
    }

    /// fdinfo's marks for a group: every difference from what was known is a `mark_state`
    /// row; the handles it shows resolve inode paths.
    fn observe(&mut self, address: u64, info: &GroupInfo, pid: u32, fd: i32, boot_ns: u64) {
        for (key, handle) in &info.handles {
            if let ObjectKey::Inode { dev, ino } = key
                && self.paths.cached_inode(*dev, *ino).is_none()
            {
                self.paths.inode_path(*dev, *ino, handle, Some(pid));
            }
        }
        let Some(group) = self.groups.get_mut(&address) else {
            return;
        };
        let mut changes: Vec<(ObjectKey, MarkState)> = Vec::new();
        for (key, state) in &info.marks {
            if group.marks.get(key) != Some(state) {
                changes.push((*key, *state));
            }
        }
        for key in group.marks.keys() {
            if !info.marks.contains_key(key) {
                changes.push((*key, GONE));
            }
        }
        group.marks = info.marks.clone();
        group.complete = true;
        for (key, state) in changes {
            self.mark_row(address, key, state, boot_ns, pid, fd, "fdinfo");
        }
    }

    /// Reads fdinfo for the groups whose snapshots were partial or lost, and resolves the
    /// paths of the rows waiting; returns them in the order they came.
    pub fn settle(&mut self) -> Vec<Row> {
        if !self.reread.is_empty() {
            let now = boot_now_ns();
            let groups: Vec<u64> = self.reread.drain().collect();
            for address in groups {
                let Some(holders) = self.groups.get(&address).map(|g| g.holders.clone()) else {
                    continue;
                };
                if let Some((info, pid, fd)) = holders
                    .iter()
                    .find_map(|&(pid, fd)| fdinfo::read(pid, fd).map(|i| (i, pid, fd)))
                {
                    self.counts.fdinfo_reads += 1;
                    self.observe(address, &info, pid, fd, now);
                }
            }
        }
        forget_holders();
        // One fdinfo read per group for the new inodes of this chunk.
        let mut handles: HashMap<(u32, i32), Option<GroupInfo>> = HashMap::new();
        let mut out = Vec::with_capacity(self.pending.len());
        for mut p in std::mem::take(&mut self.pending) {
            if let Some((key, pid, fd)) = p.resolve {
                let fs_type = self.paths.fs_type(&key, Some(pid));
                let resolved = match key {
                    ObjectKey::Inode { dev, ino } => {
                        self.paths.cached_inode(dev, ino).or_else(|| {
                            let info = handles.entry((pid, fd)).or_insert_with(|| {
                                self.counts.fdinfo_reads += 1;
                                fdinfo::read(pid, fd)
                            });
                            let handle = info.as_ref().and_then(|i| i.handles.get(&key))?;
                            self.paths.inode_path(dev, ino, handle, Some(pid))
                        })
                    }
                    ObjectKey::Mount { .. } | ObjectKey::Filesystem { .. } => {
                        self.paths.mount_path(&key, Some(pid))
                    }
                    ObjectKey::MntNs { .. } => None,
                };
                let resolved = resolved.or_else(|| match &p.row {
                    Row::Call { ev, path, .. } => spelled_path(ev, path),
                    Row::State { .. } => None,
                });
                let facts = match &mut p.row {
                    Row::Call { facts, .. } => facts,
                    Row::State { row, .. } => &mut row.facts,
                };
                facts.fs_type = fs_type;
                if let Some((path, source)) = resolved {
                    facts.resolved_path = Some(path);
                    facts.path_source = Some(source);
                }
            }
            out.push(p.row);
        }
        self.paths.release_mounts();
        out
    }
}

/// The entries after an item's header (`count` says how many the probe wrote).
fn entries_of(tail: &[u8], count: i64) -> Vec<MarkEntry> {
    use fantrace_schema::record::MARK_ENTRY_SIZE;
    tail.chunks_exact(MARK_ENTRY_SIZE)
        .take(usize::try_from(count).unwrap_or(0))
        .map(|chunk| {
            // SAFETY: MarkEntry is plain data of MARK_ENTRY_SIZE bytes; the read is unaligned.
            unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<MarkEntry>()) }
        })
        .collect()
}

/// The path as the caller spelled it, made absolute when that can be done without the kernel:
/// the last resort for an object no handle or mount table names.
fn spelled_path(ev: &CallRecord, path: &[u8]) -> Option<paths::Resolved> {
    use fantrace_schema::record::PathStatus;
    let text = match PathStatus::from_u8(ev.path_status) {
        Some(PathStatus::Ok) => String::from_utf8_lossy(path).into_owned(),
        Some(PathStatus::Null) if ev.dirfd >= 0 => String::new(),
        _ => return None,
    };
    if text.starts_with('/') {
        return paths::lexical(None, &text).map(|p| (p, "pathname"));
    }
    let (base, source) = if ev.dirfd == -100 {
        (format!("/proc/{}/cwd", ev.pid), "cwd")
    } else {
        (format!("/proc/{}/fd/{}", ev.pid, ev.dirfd), "dirfd")
    };
    let base = std::fs::read_link(base).ok()?;
    let base = base.to_string_lossy();
    if text.is_empty() {
        return Some((base.into_owned(), source));
    }
    paths::lexical(Some(&base), &text).map(|p| (p, source))
}

#[cfg(test)]
mod tests;
