-- Mount-, filesystem- and mount-namespace-wide marks: one call watches everything beneath a
-- mount or a whole filesystem. Grouped by process, mark type and the object the kernel marked
-- (its mount or file system, and where it is), with the path as first given.
SELECT mark_type, comm, pid, uid, group_id, object, resolved_path, min(pathname) AS pathname,
       count(*) AS calls, sum(CASE WHEN ret = 0 THEN 1 ELSE 0 END) AS succeeded,
       min(time) AS first, max(time) AS last
FROM (
    -- Text copied out of the scan's buffers: grouping by views of them held every buffer.
    SELECT fan_mark_type(flags) AS mark_type, arrow_cast(comm, 'Utf8') AS comm, pid, uid,
           group_id, arrow_cast(object, 'Utf8') AS object,
           arrow_cast(resolved_path, 'Utf8') AS resolved_path,
           arrow_cast(pathname, 'Utf8') AS pathname, ret, time
    FROM events
    WHERE fan_mark_type(flags) <> 'inode' AND (flags & 2) = 0 AND (flags & 128) = 0
) AS wide
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY first
