-- Processes whose whole fanotify_mark activity fits in under 10 seconds while they added at
-- least one mark: set up a watch and went quiet (or exited) soon after. Whether a process that
-- created a group exited, and how, is in the exits view (captures of schema version 5 on).
SELECT pid, comm, uid, count(*) AS calls,
       sum(CASE WHEN (flags & 1) <> 0 AND ret = 0 THEN 1 ELSE 0 END) AS marks_added,
       min(time) AS first, max(time) AS last,
       (arrow_cast(max(time), 'Int64') - arrow_cast(min(time), 'Int64')) / 1000000 AS span_ms
FROM events
GROUP BY pid, comm, uid
HAVING sum(CASE WHEN (flags & 1) <> 0 AND ret = 0 THEN 1 ELSE 0 END) > 0
   AND arrow_cast(max(time), 'Int64') - arrow_cast(min(time), 'Int64') < 10000000000
ORDER BY first
