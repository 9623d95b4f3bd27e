-- Marks made on content and pre-content groups (the fanotify_init classes that receive
-- permission events), each matched to the fanotify_init call that created its fd in the same
-- process (the latest one before the mark). A group fd inherited or passed to another process
-- is not matched.
SELECT time, pid, comm, uid, fd, class, init_flags, mask, pathname, ret
FROM (
    SELECT m.time, m.tid, m.pid, m.comm, m.uid, m.fanotify_fd AS fd, i.class,
           i.flag_names AS init_flags, fan_mask_names(m.mask) AS mask, m.pathname, m.ret,
           row_number() OVER (PARTITION BY m.time, m.tid ORDER BY i.time DESC) AS rn
    FROM events m
    JOIN inits i ON m.pid = i.pid AND m.fanotify_fd = i.fd AND i.time <= m.time
) AS matched
WHERE rn = 1 AND class <> 'notif'
ORDER BY time
