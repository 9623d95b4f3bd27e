-- Marks on paths where watching reveals or controls secrets and binaries: /etc, /root, any
-- .ssh directory, /home, /boot, /usr/bin, /usr/sbin, /bin, /sbin, /var/log, /proc.
SELECT time, pid, comm, uid, fan_flag_names(flags) AS flags, fan_mask_names(mask) AS mask,
       pathname, ret
FROM events
WHERE pathname LIKE '/etc%' OR pathname LIKE '/root%' OR pathname LIKE '%/.ssh%'
   OR pathname LIKE '/home%' OR pathname LIKE '/boot%' OR pathname LIKE '/usr/bin%'
   OR pathname LIKE '/usr/sbin%' OR pathname LIKE '/bin%' OR pathname LIKE '/sbin%'
   OR pathname LIKE '/var/log%' OR pathname LIKE '/proc%'
ORDER BY time
