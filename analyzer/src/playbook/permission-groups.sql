-- Marks made on content and pre-content groups (the fanotify_init classes that receive
-- permission events), each matched to the fanotify_init call that created its fd in the same
-- process (the latest one before the mark). A group fd inherited or passed to another process
-- is not matched.
SELECT m.time, m.pid, m.comm, m.uid, m.fd, i.class, i.flag_names AS init_flags,
       fan_mask_names(m.mask) AS mask, m.pathname, m.ret
FROM (SELECT * FROM inits WHERE class <> 'notif') AS i
JOIN (
    -- Each process's marks and inits in one order per fd: a mark's group is the latest init
    -- before it (an init at the same moment first).
    SELECT *, max(created) OVER (PARTITION BY host, boot_id, pid, fd
                                 ORDER BY time, created NULLS LAST
                                 ROWS UNBOUNDED PRECEDING) AS group_created
    FROM (
        SELECT host, boot_id, time, pid, comm, uid, fanotify_fd AS fd, mask, pathname, ret,
               NULL AS created
        FROM events
        UNION ALL
        SELECT host, boot_id, time, pid, comm, uid, fd, NULL, NULL, NULL, time AS created
        FROM inits WHERE fd >= 0
    ) AS marks_and_inits
) AS m ON m.host = i.host AND m.boot_id = i.boot_id AND m.pid = i.pid AND m.fd = i.fd
      AND i.time = m.group_created
WHERE m.created IS NULL
ORDER BY m.time
