//! Mark state of captures recorded before the kernel's own view was (schema version < 6):
//! which objects each fanotify group watched at a moment, rebuilt from the calls that made and
//! unmade the marks, as given. `marks.rs` has the current model; this one stays for older
//! captures, with the current model's columns (those only the kernel's view has are NULL).
//! One SQL statement ([`state_sql`]) so DataFusion plans and runs every step:
//!
//! - a **group** is one successful `fanotify_init` of a process, told apart by the fd it
//!   returned; it ends when its owner exits (a `process_exit` row) or when the same process
//!   gets the same fd from a later `fanotify_init` (so it was closed before that). One
//!   ordering of each process's calls by (fd, time), with an exit copied to every fd the
//!   process used, places each call after the start of its group (`since`);
//! - a **mark** is the object one group's calls name: mark type, dirfd and path as given;
//!   its masks are the group's adds and removes on it in order (`fan_mark_fold`), reset by a
//!   flush of its type;
//! - what the capture cannot show is said, not hidden: a group whose `fanotify_init` is not
//!   in the capture (made before the recording started, or an fd inherited or received from
//!   another process) gets class `unknown`, its marks state `unknown` (its holders are not
//!   known) and one more row of state `unknown` standing for the marks made before the
//!   recording; closing a group fd is not recorded, so a closed group stays `in force`
//!   until its owner exits or reuses the fd; a capture recorded before owner exits were
//!   (schema version 5) cannot tell a live group from a dead one, and says `unknown`.
use crate::marks::{IN_FORCE, UNKNOWN};

/// The mark-state statement over the calls up to `until` (an SQL condition on `time`).
/// `exits_recorded`: every segment records owner exits (schema version 5 and later).
pub fn state_sql(until: &str, exits_recorded: bool) -> String {
    let live = if exits_recorded {
        format!("'{IN_FORCE}'")
    } else {
        format!("'{UNKNOWN}'")
    };
    let live_note = if exits_recorded {
        "CASE WHEN g.kind <> 0 THEN 'made through a group fd whose fanotify_init by this process \
          is not in the capture (inherited, received, or made before the recording): whether \
          the group still exists is not known' END"
            .to_string()
    } else {
        "'this capture does not record process exits (segments before schema version 5): \
          the owner may have exited since'"
            .to_string()
    };
    // since: when the group a call was made through started, as nanoseconds: the latest
    // fanotify_init on its fd or the latest exit of its process before it (after an exit the
    // pid is a later process's, using an fd it did not create); -1 when neither is in the
    // capture. An exit is copied to every fd its process used, so that one ordering by
    // (process, fd, time) places every call.
    let since = |calls: &str| {
        format!(
            "SELECT *, coalesce(arrow_cast(max(CASE WHEN kind <> 1 THEN time END) OVER (
                 PARTITION BY origin, pid, fd ORDER BY time, kind
                 ROWS UNBOUNDED PRECEDING), 'Int64'), -1) AS since
             FROM (SELECT * FROM lifecycle WHERE kind = 0 OR (kind = 1 AND {calls})
                   UNION ALL
                   SELECT origin, pid, time, comm, flags, mask, dirfd, pathname, ret,
                          fd, kind FROM exit_per_fd)"
        )
    };
    let ops = since("(flags & 128) = 0");
    let flush_ops = since("(flags & 128) <> 0");
    // Strings are copied out of the scan's buffers (Utf8 rather than views): a sort holding
    // views of shared buffers is charged for each whole buffer once per batch, which made the
    // mark state of a 10M-call capture need several times the memory it used.
    format!(
        "WITH lifecycle AS (
    SELECT fan_origin(host, boot_id) AS origin, pid, time,
           arrow_cast(comm, 'Utf8') AS comm, flags, mask, dirfd,
           arrow_cast(pathname, 'Utf8') AS pathname, ret,
           CASE WHEN syscall = 'fanotify_init' THEN arrow_cast(ret, 'Int32')
                WHEN syscall = 'fanotify_mark' THEN fanotify_fd END AS fd,
           CASE WHEN syscall = 'fanotify_init' THEN 0 WHEN syscall = 'fanotify_mark' THEN 1
                ELSE 2 END AS kind
    FROM calls
    WHERE {until} AND ((syscall = 'fanotify_mark' AND ret = 0)
                    OR (syscall = 'fanotify_init' AND ret >= 0)
                    OR syscall = 'process_exit')
), fds AS (
    -- Every group fd each process used, its first mark call, and the process's name at its
    -- last call on it.
    SELECT origin, pid, fd, min(CASE WHEN kind = 1 THEN time END) AS first_call,
           last_value(comm ORDER BY time) AS comm
    FROM lifecycle WHERE kind < 2
    GROUP BY origin, pid, fd
), exit_per_fd AS (
    SELECT f.origin, f.pid, e.time, e.comm, e.flags, e.mask, e.dirfd, e.pathname,
           e.ret, f.fd, e.kind
    FROM lifecycle e
    JOIN fds f ON e.origin = f.origin AND e.pid = f.pid
    WHERE e.kind = 2
), starts AS (
    -- Where groups start: each fanotify_init; each owner exit, on every fd the process used;
    -- and the start of the recording (since -1).
    SELECT origin, pid, fd, arrow_cast(time, 'Int64') AS since, 0 AS kind, time, flags,
           NULL AS status, NULL AS first_call
    FROM lifecycle WHERE kind = 0
    UNION ALL
    SELECT origin, pid, fd, arrow_cast(time, 'Int64') AS since, 2 AS kind, time,
           NULL AS flags, ret AS status, NULL AS first_call
    FROM exit_per_fd
    UNION ALL
    SELECT origin, pid, fd, -1 AS since, 3 AS kind, NULL AS time, NULL AS flags,
           NULL AS status, first_call
    FROM fds
), groups AS (
    -- A group lasts until the next start on its fd: a fanotify_init that got the same fd
    -- (so it was closed before) or its owner's exit.
    SELECT origin, pid, fd, since, kind, first_call, time,
           CASE WHEN kind = 0 THEN time END AS created,
           CASE WHEN kind = 0 THEN flags END AS init_flags,
           lead(kind) OVER (PARTITION BY origin, pid, fd ORDER BY since, kind) AS ended_by,
           lead(time) OVER (PARTITION BY origin, pid, fd ORDER BY since, kind) AS ended_at,
           lead(status) OVER (PARTITION BY origin, pid, fd ORDER BY since, kind) AS status
    FROM starts
), ended AS (
    SELECT g.*, f.comm, CASE WHEN g.ended_by = 0 THEN g.ended_at END AS fd_reused,
           CASE WHEN g.ended_by = 2 THEN g.ended_at END AS exited
    FROM groups g JOIN fds f ON g.origin = f.origin AND g.pid = f.pid AND g.fd = f.fd
), flushes AS (
    SELECT origin, pid, fd, since, fan_mark_type(flags) AS mark_type,
           max(time) AS flushed
    FROM ({flush_ops}) AS stamped WHERE kind = 1
    GROUP BY origin, pid, fd, since, fan_mark_type(flags)
), objects AS (
    SELECT o.origin, o.pid, o.fd, o.since, o.mark_type, o.dirfd, o.pathname,
           min(o.time) AS first_call, max(o.time) AS last_call,
           max(CASE WHEN f.flushed IS NULL OR o.time > f.flushed THEN o.time END) AS last_kept,
           max(f.flushed) AS flushed,
           fan_mark_fold(o.time,
                         CASE WHEN f.flushed IS NULL OR o.time > f.flushed THEN o.flags END,
                         o.mask) AS folded
    FROM (SELECT *, fan_mark_type(flags) AS mark_type FROM ({ops}) AS stamped
          WHERE kind = 1) AS o
    LEFT JOIN flushes f ON o.origin = f.origin AND o.pid = f.pid
                       AND o.fd = f.fd AND o.since = f.since AND o.mark_type = f.mark_type
    GROUP BY o.origin, o.pid, o.fd, o.since, o.mark_type, o.dirfd, o.pathname
), unknown_groups AS (
    -- Groups whose fanotify_init is not in the capture, that calls were made through: from
    -- the start of the recording, or after the owner exited.
    SELECT * FROM ended
    WHERE kind = 3 AND first_call IS NOT NULL
      AND (ended_at IS NULL OR first_call < ended_at OR (ended_by = 2 AND first_call = ended_at))
    UNION ALL
    SELECT DISTINCT g.* FROM ended g
    JOIN lifecycle c ON g.origin = c.origin AND g.pid = c.pid
                    AND g.fd = c.fd
    WHERE g.kind = 2 AND c.kind = 1 AND c.time > g.time
      AND (g.ended_at IS NULL OR c.time < g.ended_at OR (g.ended_by = 2 AND c.time = g.ended_at))
), marks AS (
    SELECT o.origin, o.pid, g.comm, o.fd,
           CASE WHEN g.kind = 0 THEN fan_init_class(g.init_flags) ELSE 'unknown' END AS class,
           g.created AS group_created, o.mark_type, o.dirfd, o.pathname,
           fan_mask_names(o.folded['mask']) AS mask,
           fan_mask_names(o.folded['ignored_mask']) AS ignored_mask,
           o.folded['mask'] AS mask_bits, o.folded['ignored_mask'] AS ignored_mask_bits,
           o.first_call, o.last_call,
           CASE WHEN o.last_kept IS NULL THEN 'flushed'
                WHEN o.folded['mask'] = 0 AND o.folded['ignored_mask'] = 0 THEN 'removed'
                WHEN g.fd_reused IS NOT NULL THEN 'ended: fd closed'
                WHEN g.exited IS NOT NULL THEN 'ended: owner exited'
                WHEN g.kind <> 0 THEN '{UNKNOWN}'
                ELSE {live} END AS state,
           CASE WHEN o.last_kept IS NULL THEN o.flushed
                WHEN o.folded['mask'] = 0 AND o.folded['ignored_mask'] = 0 THEN o.last_kept
                WHEN g.fd_reused IS NOT NULL THEN g.fd_reused
                WHEN g.exited IS NOT NULL THEN g.exited
           END AS ended,
           CASE WHEN o.last_kept IS NULL OR (o.folded['mask'] = 0
                                              AND o.folded['ignored_mask'] = 0) THEN NULL
                WHEN g.fd_reused IS NOT NULL
                     THEN 'a later fanotify_init got the same fd: the group was closed before \
                           (closing is not recorded)'
                WHEN g.exited IS NOT NULL
                     THEN concat('owner ', fan_exit_status(g.status), '; the group outlives it only \
                                 if the fd was inherited or passed on')
                ELSE {live_note} END AS note
    FROM objects o
    JOIN ended g ON o.origin = g.origin AND o.pid = g.pid
                AND o.fd = g.fd AND o.since = g.since
    UNION ALL
    -- What a group made before the recording (or received from elsewhere) watched then is
    -- not in the capture: one row says so, for as long as the group is not known to be gone.
    SELECT g.origin, g.pid, g.comm, g.fd, 'unknown' AS class,
           NULL AS group_created, NULL AS mark_type, NULL AS dirfd, NULL AS pathname,
           NULL AS mask, NULL AS ignored_mask, NULL AS mask_bits, NULL AS ignored_mask_bits,
           NULL AS first_call, NULL AS last_call,
           CASE WHEN g.fd_reused IS NOT NULL THEN 'ended: fd closed'
                WHEN g.exited IS NOT NULL THEN 'ended: owner exited'
                ELSE '{UNKNOWN}' END AS state,
           coalesce(g.fd_reused, g.exited) AS ended,
           'marks this group had before the recording started, or that another holder of \
            its fd made, are not in the capture' AS note
    FROM unknown_groups g
)
SELECT arrow_cast(x.host, 'Utf8') AS host, arrow_cast(x.boot_id, 'Utf8') AS boot_id,
       arrow_cast(NULL, 'UInt64') AS group_id, m.pid, arrow_cast(m.comm, 'Utf8') AS comm, m.fd,
       arrow_cast(NULL, 'Utf8') AS holders, m.class, m.group_created,
       m.group_created AS group_seen, m.mark_type, arrow_cast(NULL, 'Utf8') AS object,
       arrow_cast(NULL, 'Utf8') AS fs_type, arrow_cast(NULL, 'Utf8') AS resolved_path,
       arrow_cast(NULL, 'Utf8') AS path_source, arrow_cast(m.pathname, 'Utf8') AS pathname,
       m.mask, m.ignored_mask, m.mask_bits, m.ignored_mask_bits,
       arrow_cast(NULL, 'Utf8') AS mark_flags, m.first_call AS first_seen,
       m.last_call AS last_change, m.state, m.ended, 'calls as given' AS source, m.note
FROM marks m
JOIN (SELECT DISTINCT fan_origin(host, boot_id) AS origin, host, boot_id FROM calls
      WHERE {until}) x ON m.origin = x.origin"
    )
}
