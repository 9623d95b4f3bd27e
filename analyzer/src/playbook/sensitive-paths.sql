-- Marks on paths where watching reveals or controls secrets and binaries: /etc, /root, any
-- .ssh directory, /home, /boot, /usr/bin, /usr/sbin, /bin, /sbin, /var/log, /proc. Matched on
-- where the object is (resolved_path, as the kernel resolved the call) as well as on the path as
-- given, so that /tmp/../etc, a relative path, a symlink or /proc/self/fd/N cannot hide it.
SELECT time, pid, comm, uid, group_id, fan_flag_names(flags) AS flags,
       fan_mask_names(mask) AS mask, pathname, resolved_path, object, ret
FROM events
WHERE regexp_like(coalesce(resolved_path, ''),
                  '^/(etc|root|home|boot|usr/bin|usr/sbin|bin|sbin|var/log|proc)(/|$)|/\.ssh(/|$)')
   OR regexp_like(coalesce(pathname, ''),
                  '^/(etc|root|home|boot|usr/bin|usr/sbin|bin|sbin|var/log|proc)(/|$)|/\.ssh(/|$)')
ORDER BY time
