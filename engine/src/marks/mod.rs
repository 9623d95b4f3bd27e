//! Mark state: which objects each fanotify group watched at a moment, as the kernel had it.
//!
//! The recorder writes the kernel's own view (schema version 6): every successful mark call
//! carries the group it was made on (`group_id`), the object the kernel resolved it to
//! (`object`) and the mark's masks right after it (`mark_mask`, `mark_ignored_mask`), and
//! whatever changed without a call saying so (the kernel dropping a mark, a flush, marks that
//! existed before the recording, a lost call) is a `mark_state` row; groups found, held,
//! released and ended are rows too. So the state of a mark at a moment is the last state any
//! row gave it up to then, and a mark is in force while that state is not empty and its group
//! has not ended. No mask arithmetic is redone here: the kernel's rules (`FAN_EVENT_ON_CHILD`
//! dropped on non-directories, ignore masks, evictable marks) are in the numbers it reported.
//!
//! Views and a table function over `calls`, one SQL statement ([`state_sql`]) so DataFusion
//! plans and runs every step. Captures recorded before version 6 use `legacy`.
mod legacy;

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

/// Which model a capture's segments allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Every segment records the kernel's view (schema version 6 and later).
    Kernel,
    /// Every segment predates it: the state is rebuilt from the calls as given.
    Legacy { exits_recorded: bool },
}

impl Model {
    pub fn state_sql(self, until: &str) -> String {
        match self {
            Model::Kernel => state_sql(until),
            Model::Legacy { exits_recorded } => {
                crate::marks::legacy::state_sql(until, exits_recorded)
            }
        }
    }
}

/// The mark-state statement over the rows up to `until` (an SQL condition on `time`).
pub fn state_sql(until: &str) -> String {
    format!(
        "WITH r AS (
    SELECT fan_origin(host, boot_id) AS origin,
           -- Text, not the stored dictionary of one-byte keys: aggregating it merges each
           -- batch's dictionary and overflowed the keys on a 10M-call capture.
           arrow_cast(syscall, 'Utf8') AS syscall, time, pid, arrow_cast(comm, 'Utf8') AS comm,
           fanotify_fd, flags, ret, group_id, arrow_cast(object, 'Utf8') AS object,
           arrow_cast(object_source, 'Utf8') AS object_source,
           arrow_cast(fs_type, 'Utf8') AS fs_type,
           arrow_cast(resolved_path, 'Utf8') AS resolved_path,
           arrow_cast(path_source, 'Utf8') AS path_source,
           arrow_cast(pathname, 'Utf8') AS pathname,
           mark_mask, mark_ignored_mask, mark_flags
    FROM calls
    WHERE {until} AND group_id IS NOT NULL
), groups AS (
    -- One row per group: when it was made (its fanotify_init) or first seen held, its
    -- fanotify_init flags (from the call, or from fdinfo when a scan found it), who made or
    -- first held it, whether its marks before that are known, and its end.
    SELECT origin, group_id,
           min(CASE WHEN syscall = 'fanotify_init' THEN time END) AS created,
           min(CASE WHEN syscall IN ('fanotify_init', 'group_held') THEN time END) AS seen,
           min(CASE WHEN syscall = 'fanotify_init' OR (syscall = 'group_held' AND ret = 1)
                    THEN named_struct('t', time, 'flags', flags) END)['flags'] AS init_flags,
           min(CASE WHEN syscall IN ('fanotify_init', 'group_held')
                    THEN named_struct('t', time, 'known',
                                      CASE WHEN syscall = 'fanotify_init' OR ret = 1
                                           THEN 1 ELSE 0 END) END)['known'] AS marks_known,
           min(CASE WHEN syscall IN ('fanotify_init', 'group_held')
                    THEN named_struct('t', time, 'pid', pid) END)['pid'] AS first_pid,
           min(CASE WHEN syscall IN ('fanotify_init', 'group_held')
                    THEN named_struct('t', time, 'comm', comm) END)['comm'] AS first_comm,
           min(CASE WHEN syscall IN ('fanotify_init', 'group_held')
                    THEN named_struct('t', time,
                                      'fd', CASE WHEN syscall = 'fanotify_init'
                                                 THEN arrow_cast(ret, 'Int32')
                                                 ELSE fanotify_fd END) END)['fd'] AS first_fd,
           min(CASE WHEN syscall = 'group_end' THEN time END) AS ended_at,
           min(CASE WHEN syscall = 'group_end' THEN named_struct('t', time, 'how', object_source)
               END)['how'] AS ended_how
    FROM r
    WHERE syscall IN ('fanotify_init', 'group_held', 'group_end')
    GROUP BY origin, group_id
), holder_events AS (
    -- Who took and let go of each group, until its end (a process the kernel gave a new
    -- group at an ended one's address holds the new one).
    SELECT h.* FROM (
        SELECT origin, group_id, pid, arrow_cast(ret, 'Int32') AS fd, time, 1 AS held
        FROM r WHERE syscall = 'fanotify_init'
        UNION ALL
        SELECT origin, group_id, pid, fanotify_fd AS fd, time,
               CASE WHEN syscall = 'group_held' THEN 1 ELSE 0 END AS held
        FROM r WHERE syscall IN ('group_held', 'group_released')
    ) h
    JOIN groups g ON h.origin = g.origin AND h.group_id = g.group_id
    WHERE g.ended_at IS NULL OR h.time < g.ended_at
), holder_last AS (
    SELECT origin, group_id, pid, fd, max(time) AS since,
           last_value(held ORDER BY time) AS held
    FROM holder_events
    GROUP BY origin, group_id, pid, fd
), exited AS (
    SELECT fan_origin(host, boot_id) AS origin, pid, max(time) AS exited
    FROM calls WHERE {until} AND syscall = 'process_exit'
    GROUP BY 1, 2
), holders AS (
    -- Who holds each group: made or found holding it, not released since, not exited since.
    SELECT h.origin, h.group_id,
           string_agg(concat(h.pid, ':', h.fd), ' ' ORDER BY h.pid, h.fd) AS holders
    FROM holder_last h
    LEFT JOIN exited e ON h.origin = e.origin AND h.pid = e.pid AND e.exited >= h.since
    WHERE h.held = 1 AND e.exited IS NULL
    GROUP BY h.origin, h.group_id
), states AS (
    -- Every row that says a mark's state: successful mark calls and mark_state rows.
    SELECT origin, group_id, object, time, syscall, mark_mask, mark_ignored_mask, mark_flags,
           object_source, fs_type, resolved_path, path_source,
           CASE WHEN syscall = 'fanotify_mark' THEN pathname END AS pathname
    FROM r
    WHERE object IS NOT NULL AND (syscall = 'mark_state' OR (syscall = 'fanotify_mark' AND ret = 0))
), marks AS (
    -- Each mark's last state, and where it is and how it was spelled from the last row that
    -- says so (rows without a value sort first). Plain text and numbers in ordered
    -- last_value: a struct per mark (max(named_struct(time, path))) was boxed per mark and a
    -- 10M-call capture did not fit in 2 GB.
    SELECT origin, group_id, object,
           min(CASE WHEN mark_mask <> 0 OR mark_ignored_mask <> 0 THEN time END) AS first_seen,
           max(time) AS last_change,
           last_value(syscall ORDER BY time) AS last_kind,
           last_value(object_source ORDER BY time) AS last_source,
           last_value(mark_mask ORDER BY time) AS mask_bits,
           last_value(mark_ignored_mask ORDER BY time) AS ignored_mask_bits,
           last_value(mark_flags ORDER BY time) AS mark_flags,
           last_value(fs_type ORDER BY fs_type IS NOT NULL, time) AS fs_type,
           last_value(resolved_path ORDER BY resolved_path IS NOT NULL, time) AS resolved_path,
           last_value(path_source ORDER BY resolved_path IS NOT NULL, time) AS path_source,
           last_value(pathname ORDER BY pathname IS NOT NULL, time) AS pathname
    FROM states
    GROUP BY origin, group_id, object
), stated AS (
    SELECT m.*, g.created, g.seen, g.init_flags, g.marks_known, g.first_pid, g.first_comm,
           g.first_fd, g.ended_at, g.ended_how, h.holders,
           CASE WHEN m.mask_bits IS NULL THEN '{UNKNOWN}'
                WHEN m.mask_bits = 0 AND m.ignored_mask_bits = 0 THEN
                     CASE WHEN m.last_source = 'flush' THEN 'flushed'
                          WHEN m.last_kind = 'fanotify_mark' THEN 'removed'
                          ELSE 'removed by the kernel' END
                WHEN g.ended_at IS NOT NULL THEN 'ended: group closed'
                ELSE '{IN_FORCE}' END AS state
    FROM marks m
    LEFT JOIN groups g ON m.origin = g.origin AND m.group_id = g.group_id
    LEFT JOIN holders h ON m.origin = h.origin AND m.group_id = h.group_id
), rows AS (
    SELECT origin, group_id, created, seen, init_flags, first_pid, first_comm, first_fd, holders,
           split_part(object, ':', 1) AS mark_type, object, fs_type, resolved_path, path_source,
           pathname,
           mask_bits, ignored_mask_bits, mark_flags, first_seen, last_change, state,
           CASE WHEN state = 'ended: group closed' THEN ended_at
                WHEN state IN ('removed', 'flushed', 'removed by the kernel') THEN last_change
           END AS ended,
           last_source AS source,
           CASE WHEN state = '{UNKNOWN}'
                    THEN 'the kernel''s state after the last call on it could not be read (its \
                          group had more marks than the probe reads after a call, and was gone \
                          before its fdinfo could be read)'
                WHEN state = 'ended: group closed'
                    THEN concat('the group ended (', ended_how, ')')
                WHEN state = 'removed by the kernel'
                    THEN concat('the kernel dropped it (seen by ', last_source,
                                '): its inode was unlinked or evicted, or its mount or file \
                                 system unmounted')
           END AS note
    FROM stated
    UNION ALL
    -- A group found holding fds whose marks could not be read then (its fdinfo was gone by
    -- the time the recorder looked): its marks before that moment are not known.
    SELECT g.origin, g.group_id, g.created, g.seen, g.init_flags, g.first_pid, g.first_comm,
           g.first_fd, h.holders,
           NULL AS mark_type, NULL AS object, NULL AS fs_type, NULL AS resolved_path,
           NULL AS path_source, NULL AS pathname, NULL AS mask_bits, NULL AS ignored_mask_bits,
           NULL AS mark_flags, NULL AS first_seen, NULL AS last_change,
           CASE WHEN g.ended_at IS NULL THEN '{UNKNOWN}' ELSE 'ended: group closed' END AS state,
           g.ended_at AS ended, NULL AS source,
           'the group was found already made, and its fdinfo could not be read: marks it had \
            then are not in the capture' AS note
    FROM groups g
    LEFT JOIN holders h ON g.origin = h.origin AND g.group_id = h.group_id
    WHERE g.marks_known = 0
)
SELECT arrow_cast(x.host, 'Utf8') AS host, arrow_cast(x.boot_id, 'Utf8') AS boot_id,
       m.group_id, m.first_pid AS pid, m.first_comm AS comm, m.first_fd AS fd,
       m.holders,
       CASE WHEN m.init_flags IS NULL THEN 'unknown' ELSE fan_init_class(m.init_flags) END AS class,
       m.created AS group_created, m.seen AS group_seen,
       m.mark_type, m.object, m.fs_type, m.resolved_path, m.path_source, m.pathname,
       fan_mask_names(m.mask_bits) AS mask, fan_mask_names(m.ignored_mask_bits) AS ignored_mask,
       m.mask_bits, m.ignored_mask_bits,
       CASE WHEN m.mark_flags IS NULL THEN NULL ELSE fan_flag_names(m.mark_flags) END AS mark_flags,
       m.first_seen, m.last_change, m.state, m.ended, m.source, m.note
FROM rows m
JOIN (SELECT DISTINCT fan_origin(host, boot_id) AS origin, host, boot_id FROM calls
      WHERE {until}) x ON m.origin = x.origin"
    )
}

/// The `marks` view: every mark seen in the capture, with its state at the capture's end.
pub fn view_sql(model: Model) -> String {
    format!("CREATE VIEW marks AS {}", model.state_sql("TRUE"))
}

/// `marks_at('2026-11-26T03:00:00Z')`: the marks in force, or of unknown state, at a moment,
/// planned once with the moment as a parameter.
#[derive(Debug)]
pub struct MarksAt {
    plan: LogicalPlan,
}

impl MarksAt {
    pub async fn new(ctx: &SessionContext, model: Model) -> anyhow::Result<Self> {
        let order = match model {
            Model::Kernel => "host, group_id, mark_type, object",
            Model::Legacy { .. } => "host, pid, fd, mark_type, pathname",
        };
        let sql = format!(
            "SELECT * FROM ({}) WHERE state IN ('{IN_FORCE}', '{UNKNOWN}') ORDER BY {order}",
            model.state_sql("time <= $1")
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
