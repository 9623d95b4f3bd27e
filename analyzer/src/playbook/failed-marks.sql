-- Failed fanotify_mark calls by error and process: probing for what is allowed (EPERM),
-- bad descriptors (EBADF) or paths that do not exist (ENOENT).
SELECT errno_name(ret) AS error, comm, pid, uid, count(*) AS calls,
       min(time) AS first, max(time) AS last
FROM events
WHERE ret < 0
GROUP BY 1, 2, 3, 4
ORDER BY calls DESC, first
