#!/bin/sh
# fapolicyd, a real permission-event daemon (Debian's package, unpacked by fantrace.sh under
# /var/cache/fantrace/fapolicyd, never installed as a service), for the test that a daemon
# running before the recorder has its marks listed. Run it under
#   unshare --mount --propagation private fapolicyd-sandbox.sh PACKAGE_ROOT WORK_DIR [ARGS]
# In its own mount namespace, overlays give it /etc/fapolicyd, /usr/share/fapolicyd and
# /var/lib/fapolicyd without touching the host's, and the mount marks it makes (on the tmpfs
# mounts it sees) are on that namespace's copies of the mounts: no process outside it waits on
# its permission events. Permissive, and every rule allows: it answers and never blocks.
set -e
PKG=$1; WORK=$2; shift 2
for d in etc usr var; do mkdir -p "$WORK/$d-up" "$WORK/$d-work"; done
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$WORK/etc-up,workdir=$WORK/etc-work" /etc
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$WORK/usr-up,workdir=$WORK/usr-work" /usr
mount -t overlay overlay -o "lowerdir=/var,upperdir=$WORK/var-up,workdir=$WORK/var-work" /var
mount -t tmpfs fantrace-fapolicyd-run /run
# One tmpfs of its own, so there is always a mount it marks.
mkdir -p "$WORK/watched"
mount -t tmpfs fantrace-fapolicyd-watched "$WORK/watched"
mkdir -p /etc/fapolicyd/rules.d /etc/fapolicyd/trust.d /usr/share/fapolicyd /var/lib/fapolicyd /run/fapolicyd /var/log
cp "$PKG/usr/share/fapolicyd/fapolicyd-magic.mgc" /usr/share/fapolicyd/
cat > /etc/fapolicyd/fapolicyd.conf <<CONF
permissive = 1
nice_val = 0
q_size = 640
uid = 0
gid = 0
do_stat_report = 0
detailed_report = 0
db_max_size = 8
subj_cache_size = 1549
obj_cache_size = 8191
watch_fs = tmpfs
trust = file
integrity = none
syslog_format = rule,dec,perm,auid,pid,exe,:,path,ftype,trust
rpm_sha256_only = 0
allow_filesystem_mark = 0
CONF
echo "allow perm=any all : all" > /etc/fapolicyd/rules.d/10-allow.rules
cp /etc/fapolicyd/rules.d/10-allow.rules /etc/fapolicyd/compiled.rules
: > /etc/fapolicyd/fapolicyd.trust
exec "$PKG/usr/sbin/fapolicyd" "$@"
