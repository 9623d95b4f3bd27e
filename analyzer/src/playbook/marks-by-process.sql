-- Marks added, removed and flushed per process and minute: who sets up watches, when, and how
-- many.
SELECT date_trunc('minute', time) AS minute, comm, pid, uid,
       sum(CASE WHEN (flags & 1) <> 0 THEN 1 ELSE 0 END) AS added,
       sum(CASE WHEN (flags & 2) <> 0 THEN 1 ELSE 0 END) AS removed,
       sum(CASE WHEN (flags & 128) <> 0 THEN 1 ELSE 0 END) AS flushed,
       sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS failed
FROM events
GROUP BY 1, 2, 3, 4
ORDER BY minute, comm
