-- Processes whose whole fanotify_mark activity fits in under 10 seconds while they added at
-- least one mark: set up a watch and went quiet soon after. `exited` is when the process
-- exited, if it created a fanotify group and the capture recorded that (schema version 5 on).
SELECT w.pid, w.comm, w.uid, w.calls, w.marks_added, w.first, w.last, w.span_ms,
       min(x.time) AS exited
FROM (
    SELECT host, pid, comm, uid, count(*) AS calls,
           sum(CASE WHEN (flags & 1) <> 0 AND ret = 0 THEN 1 ELSE 0 END) AS marks_added,
           min(time) AS first, max(time) AS last,
           (arrow_cast(max(time), 'Int64') - arrow_cast(min(time), 'Int64')) / 1000000 AS span_ms
    FROM events
    GROUP BY host, pid, comm, uid
    HAVING sum(CASE WHEN (flags & 1) <> 0 AND ret = 0 THEN 1 ELSE 0 END) > 0
       AND arrow_cast(max(time), 'Int64') - arrow_cast(min(time), 'Int64') < 10000000000
) AS w
LEFT JOIN exits x ON x.host = w.host AND x.pid = w.pid AND x.time >= w.last
GROUP BY w.pid, w.comm, w.uid, w.calls, w.marks_added, w.first, w.last, w.span_ms
ORDER BY w.first
