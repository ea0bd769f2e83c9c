#!/bin/sh
# sudo for the fleetbox mini image. Busybox has no sudo: a setuid-root copy of
# busybox (only executable by the fleetbox group) runs its `su` applet, which
# needs no password because root's password is empty and never usable over SSH.
# Accepts the common flags (-n -E -H -S -k -i -s, -u root) and runs the command
# with its arguments quoted exactly.
SU=/usr/lib/fleetbox/busybox-suid
login=
while [ $# -gt 0 ]; do
	case "$1" in
	-n|-E|-H|-S|-k|-s|-b) shift ;;
	-i) login=1; shift ;;
	-u) [ "$2" = root ] || [ "$2" = 0 ] || { echo "sudo: only root is supported" >&2; exit 1; }
	    shift 2 ;;
	--) shift; break ;;
	-*) echo "sudo: unsupported option $1" >&2; exit 1 ;;
	*) break ;;
	esac
done
if [ $# -eq 0 ]; then
	if [ -n "$login" ]; then exec "$SU" su - root; fi
	exec "$SU" su -s /bin/sh root
fi
cmd=exec
for a in "$@"; do
	q=$(printf '%s' "$a" | sed "s/'/'\\\\''/g")
	cmd="$cmd '$q'"
done
exec "$SU" su -s /bin/sh -c "$cmd" root
