//! The exit of a process that created a fanotify group: its groups, and every mark they hold,
//! end with it (unless it passed the fd on). The `sched_process_exit` tracepoint fires for
//! every thread that exits on the machine, so the first test is a lookup in the map of group
//! owners: any other exit costs that and nothing more.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::maps::GROUP_OWNERS;
use crate::{call, context};

#[btf_tracepoint(function = "sched_process_exit")]
pub fn group_owner_exit(_ctx: BtfTracePointContext) -> i32 {
    let task = context::task();
    let (tid, tgid) = context::tid_tgid(task);
    if unsafe { GROUP_OWNERS.get(&tgid) }.is_none() {
        return 0;
    }
    if !context::process_dead(task, tid, tgid) {
        return 0;
    }
    // Two last threads can race here; only the one whose delete succeeds records the exit.
    if GROUP_OWNERS.remove(&tgid).is_err() {
        return 0;
    }
    call::owner_exit(task, tgid);
    0
}
