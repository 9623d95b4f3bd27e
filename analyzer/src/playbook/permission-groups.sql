-- Marks made on content and pre-content groups (the fanotify_init classes that receive
-- permission events), each matched to the fanotify_init call that created its fd in the same
-- process (the latest one before the mark). A group fd inherited or passed to another process
-- is not matched.
SELECT time, pid, comm, uid, fd, fan_init_class(g['f']) AS class,
       fan_init_flag_names(g['f']) AS init_flags, fan_mask_names(mask) AS mask, pathname, ret
FROM (
    -- Each process's marks and inits in one order per fd; the latest init so far (an init at
    -- the same moment first) travels with each mark, so no join with inits is needed: on a
    -- 10M-call capture that join built its table from the marks and ran out of memory.
    SELECT *, max(init) OVER (PARTITION BY host, boot_id, pid, fd
                              ORDER BY time, init NULLS LAST
                              ROWS UNBOUNDED PRECEDING) AS g
    FROM (
        SELECT host, boot_id, time, pid, comm, uid, fanotify_fd AS fd, mask, pathname, ret,
               NULL AS init
        FROM events
        UNION ALL
        SELECT host, boot_id, time, pid, comm, uid, fd, NULL, NULL, NULL,
               named_struct('t', time, 'f', flags) AS init
        FROM inits WHERE fd >= 0
    ) AS marks_and_inits
) AS m
WHERE init IS NULL AND g IS NOT NULL AND fan_init_class(g['f']) <> 'notif'
ORDER BY time
