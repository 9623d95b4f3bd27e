//! Mark state: which objects each fanotify group watched at a moment, from the calls that
//! made and unmade the marks. Views and a table function over `calls`, all one SQL statement
//! ([`state_sql`]) so DataFusion plans and runs every step:
//!
//! - a **group** is one successful `fanotify_init` of a process, told apart by the fd it
//!   returned; it ends when its owner exits (a `process_exit` row) or when the same process
//!   gets the same fd from a later `fanotify_init` (so it was closed before that);
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
use std::sync::Arc;

use anyhow::Context as _;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ParamValues, ScalarValue, plan_err};
use datafusion::datasource::ViewTable;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;

/// States a mark can be in at a moment; `marks_at` lists the first two.
pub const IN_FORCE: &str = "in force";
pub const UNKNOWN: &str = "unknown";

/// The mark-state statement over the calls up to `until` (an SQL condition on `time`).
/// `exits_recorded`: every segment records owner exits (schema version 5 and later).
pub fn state_sql(until: &str, exits_recorded: bool) -> String {
    let live = if exits_recorded {
        format!("'{IN_FORCE}'")
    } else {
        format!("'{UNKNOWN}'")
    };
    let live_note = if exits_recorded {
        "CASE WHEN o.gen = 0 THEN 'made through a group fd whose fanotify_init by this process \
          is not in the capture (inherited, received, or made before the recording): whether \
          the group still exists is not known' END"
            .to_string()
    } else {
        "'this capture does not record process exits (segments before schema version 5): \
          the owner may have exited since'"
            .to_string()
    };
    format!(
        "WITH lifecycle AS (
    SELECT host, boot_id, pid, time, comm, flags, mask, dirfd, pathname, ret, fanotify_fd,
           CASE WHEN syscall = 'fanotify_init' THEN 0 WHEN syscall = 'fanotify_mark' THEN 1
                ELSE 2 END AS kind
    FROM calls
    WHERE {until} AND ((syscall = 'fanotify_mark' AND ret = 0)
                    OR (syscall = 'fanotify_init' AND ret >= 0)
                    OR syscall = 'process_exit')
), lived AS (
    -- A process's life ends at its exit row: a pid reused after it starts a new life.
    SELECT *, CASE WHEN kind = 0 THEN arrow_cast(ret, 'Int32') ELSE fanotify_fd END AS fd,
           coalesce(sum(CASE WHEN kind = 2 THEN 1 ELSE 0 END) OVER (
               PARTITION BY host, boot_id, pid ORDER BY time, kind
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS life
    FROM lifecycle
), exits AS (
    SELECT host, boot_id, pid, life, time AS exited, ret AS status FROM lived WHERE kind = 2
), numbered AS (
    -- Generation 0 of an fd: no fanotify_init of this life made it.
    SELECT *, sum(CASE WHEN kind = 0 THEN 1 ELSE 0 END) OVER (
               PARTITION BY host, boot_id, pid, life, fd ORDER BY time, kind
               ROWS UNBOUNDED PRECEDING) AS gen
    FROM lived WHERE kind < 2
), groups AS (
    SELECT host, boot_id, pid, life, fd, gen,
           max(CASE WHEN kind = 0 THEN time END) AS created,
           max(CASE WHEN kind = 0 THEN flags END) AS init_flags
    FROM numbered GROUP BY host, boot_id, pid, life, fd, gen
), ended AS (
    SELECT g.*, e.exited, e.status, r.created AS fd_reused
    FROM groups g
    LEFT JOIN exits e ON g.host = e.host AND g.boot_id = e.boot_id AND g.pid = e.pid
                     AND g.life = e.life
    LEFT JOIN groups r ON g.host = r.host AND g.boot_id = r.boot_id AND g.pid = r.pid
                      AND g.life = r.life AND g.fd = r.fd AND r.gen = g.gen + 1
), ops AS (
    SELECT *, fan_mark_type(flags) AS mark_type FROM numbered WHERE kind = 1
), flushes AS (
    SELECT host, boot_id, pid, life, fd, gen, mark_type, max(time) AS flushed
    FROM ops WHERE (flags & 128) <> 0
    GROUP BY host, boot_id, pid, life, fd, gen, mark_type
), objects AS (
    SELECT o.host, o.boot_id, o.pid, o.life, o.fd, o.gen, o.mark_type, o.dirfd, o.pathname,
           min(o.time) AS first_call, max(o.time) AS last_call,
           last_value(o.comm ORDER BY o.time) AS comm,
           max(CASE WHEN f.flushed IS NULL OR o.time > f.flushed THEN o.time END) AS last_kept,
           max(f.flushed) AS flushed,
           fan_mark_fold(
               array_agg(CASE WHEN f.flushed IS NULL OR o.time > f.flushed THEN o.flags END
                         ORDER BY o.time),
               array_agg(o.mask ORDER BY o.time)) AS folded
    FROM ops o
    LEFT JOIN flushes f ON o.host = f.host AND o.boot_id = f.boot_id AND o.pid = f.pid
                       AND o.life = f.life AND o.fd = f.fd AND o.gen = f.gen
                       AND o.mark_type = f.mark_type
    WHERE (o.flags & 128) = 0
    GROUP BY o.host, o.boot_id, o.pid, o.life, o.fd, o.gen, o.mark_type, o.dirfd, o.pathname
), marks AS (
    SELECT o.host, o.boot_id, o.pid, o.comm, o.fd,
           CASE WHEN o.gen = 0 THEN 'unknown' ELSE fan_init_class(g.init_flags) END AS class,
           g.created AS group_created, o.mark_type, o.dirfd, o.pathname,
           fan_mask_names(o.folded['mask']) AS mask,
           fan_mask_names(o.folded['ignored_mask']) AS ignored_mask,
           o.folded['mask'] AS mask_bits, o.folded['ignored_mask'] AS ignored_mask_bits,
           o.first_call, o.last_call,
           CASE WHEN o.last_kept IS NULL THEN 'flushed'
                WHEN o.folded['mask'] = 0 AND o.folded['ignored_mask'] = 0 THEN 'removed'
                WHEN g.fd_reused IS NOT NULL THEN 'ended: fd closed'
                WHEN g.exited IS NOT NULL THEN 'ended: owner exited'
                WHEN o.gen = 0 THEN '{UNKNOWN}'
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
    JOIN ended g ON o.host = g.host AND o.boot_id = g.boot_id AND o.pid = g.pid
                AND o.life = g.life AND o.fd = g.fd AND o.gen = g.gen
    UNION ALL
    -- What a group made before the recording (or received from elsewhere) watched then is
    -- not in the capture: one row says so, for as long as the group is not known to be gone.
    SELECT g.host, g.boot_id, g.pid, NULL AS comm, g.fd, 'unknown' AS class,
           NULL AS group_created, NULL AS mark_type, NULL AS dirfd, NULL AS pathname,
           NULL AS mask, NULL AS ignored_mask, NULL AS mask_bits, NULL AS ignored_mask_bits,
           NULL AS first_call, NULL AS last_call,
           CASE WHEN g.fd_reused IS NOT NULL THEN 'ended: fd closed'
                WHEN g.exited IS NOT NULL THEN 'ended: owner exited'
                ELSE '{UNKNOWN}' END AS state,
           coalesce(g.fd_reused, g.exited) AS ended,
           'marks this group had before the recording started, or that another holder of \
            its fd made, are not in the capture' AS note
    FROM ended g WHERE g.gen = 0
)
SELECT arrow_cast(host, 'Utf8') AS host, arrow_cast(boot_id, 'Utf8') AS boot_id, pid,
       arrow_cast(comm, 'Utf8') AS comm, fd, class, group_created, mark_type, dirfd,
       arrow_cast(pathname, 'Utf8') AS pathname, mask, ignored_mask, mask_bits,
       ignored_mask_bits, first_call, last_call, state, ended, note
FROM marks"
    )
}

/// The `marks` view: every mark seen in the capture, with its state at the capture's end.
pub fn view_sql(exits_recorded: bool) -> String {
    format!("CREATE VIEW marks AS {}", state_sql("TRUE", exits_recorded))
}

/// `marks_at('2026-11-26T03:00:00Z')`: the marks in force, or of unknown state, at a moment,
/// planned once with the moment as a parameter.
#[derive(Debug)]
pub struct MarksAt {
    plan: LogicalPlan,
}

impl MarksAt {
    pub async fn new(ctx: &SessionContext, exits_recorded: bool) -> anyhow::Result<Self> {
        let sql = format!(
            "SELECT * FROM ({}) WHERE state IN ('{IN_FORCE}', '{UNKNOWN}') \
             ORDER BY host, pid, fd, mark_type, pathname",
            state_sql("time <= $1", exits_recorded)
        );
        let plan = ctx
            .state()
            .create_logical_plan(&sql)
            .await
            .context("planning marks_at")?;
        Ok(MarksAt { plan })
    }
}

impl TableFunctionImpl for MarksAt {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let at = match args.exprs() {
            [
                Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _),
            ] => match crate::timespec::parse(text, chrono::Utc::now()) {
                Ok(ns) => ns,
                Err(e) => return plan_err!("marks_at: {e}"),
            },
            _ => {
                return plan_err!(
                    "marks_at takes one quoted time: marks_at('2026-11-26T03:00:00Z'), \
                     marks_at('2026-11-26') or marks_at('15m') (ago)"
                );
            }
        };
        let value = ScalarValue::TimestampNanosecond(Some(at), Some("UTC".into()));
        let plan = self
            .plan
            .clone()
            .with_param_values(ParamValues::from(vec![value]))?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
