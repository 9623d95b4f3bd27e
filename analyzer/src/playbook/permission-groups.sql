-- Marks made on content and pre-content groups (the fanotify_init classes that receive
-- permission events). The group is the one the kernel says the call's fd was, whoever made it
-- and however the fd was passed on; its class comes from its fanotify_init or, for a group made
-- before the recording, from its fdinfo. Captures older than schema version 6 have no group ids:
-- their marks are matched to the latest fanotify_init of the same process and fd instead.
SELECT time, pid, comm, uid, fd, group_id, fan_init_class(f) AS class,
       fan_init_flag_names(f) AS init_flags, fan_mask_names(mask) AS mask, object, path, ret
FROM (
    SELECT e.time, e.pid, e.comm, e.uid, e.fanotify_fd AS fd, e.group_id, g.f, e.mask,
           e.object, coalesce(e.resolved_path, e.pathname) AS path, e.ret
    FROM (SELECT host, boot_id, group_id,
                 min(named_struct('t', time, 'f', flags))['f'] AS f
          FROM calls
          WHERE group_id IS NOT NULL
            AND (syscall = 'fanotify_init' OR (syscall = 'group_held' AND ret = 1))
          GROUP BY host, boot_id, group_id) g
    JOIN events e
      ON e.host = g.host AND e.boot_id = g.boot_id AND e.group_id = g.group_id
    UNION ALL
    -- Older captures: each process's marks and inits in one order per fd; the latest init so
    -- far travels with each mark (a window rather than a join: on a 10M-call capture the join
    -- built its table from the marks and ran out of memory).
    SELECT time, pid, comm, uid, fd, group_id, g['f'] AS f, mask, object, path, ret
    FROM (
        SELECT *, max(init) OVER (PARTITION BY host, boot_id, pid, fd
                                  ORDER BY time, init NULLS LAST
                                  ROWS UNBOUNDED PRECEDING) AS g
        FROM (
            SELECT host, boot_id, time, pid, comm, uid, fanotify_fd AS fd, group_id, mask,
                   object, pathname AS path, ret, NULL AS init
            FROM events WHERE group_id IS NULL
            UNION ALL
            SELECT host, boot_id, time, pid, comm, uid, fd, NULL, NULL, NULL, NULL, NULL,
                   named_struct('t', time, 'f', flags) AS init
            FROM inits WHERE fd >= 0 AND group_id IS NULL
        ) AS marks_and_inits
    ) AS m
    WHERE init IS NULL AND g IS NOT NULL
) AS marks
WHERE fan_init_class(f) <> 'notif'
ORDER BY time
