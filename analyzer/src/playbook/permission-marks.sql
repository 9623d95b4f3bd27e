-- Marks that request permission events (FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM,
-- FAN_PRE_ACCESS): the listener can block or deny file access. Legitimate for anti-virus and
-- HSM daemons; anything else deserves a close look. With the group, the object the kernel marked
-- and where it is.
SELECT time, pid, comm, uid, group_id, fan_flag_names(flags) AS flags,
       fan_mask_names(mask) AS mask, dirfd, pathname, object, resolved_path, ret,
       errno_name(ret) AS error
FROM events
WHERE has_mask(mask, 'FAN_OPEN_PERM') OR has_mask(mask, 'FAN_ACCESS_PERM')
   OR has_mask(mask, 'FAN_OPEN_EXEC_PERM') OR has_mask(mask, 'FAN_PRE_ACCESS')
ORDER BY time
