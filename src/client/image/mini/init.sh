#!/bin/sh
# init.sh - PID 1 of the fleetbox "mini" image (busybox sh in the initramfs).
#
# Honours the same NoCloud seed as cloud-init (see seed.c, docs/seed.md):
# hostname, /etc/hosts (the cluster), the fleetbox user with the installation
# key and sudo, the pre-seeded ed25519 host key, static network-config v1
# matched by MAC with its default route, read-only fixture mounts.
#
# Persistence: the first virtio disk (/dev/vda) holds an ext4 filesystem
# (formatted here on first boot only when it carries no ext superblock, so a
# disk with data is never reformatted). Every top-level directory of the image
# (bin etc home lib lib64 opt root srv usr var) is an overlay whose upper layer
# lives on that disk, so files written there survive `down`/`up`. /tmp and
# /run are tmpfs; new top-level directories in / are not persistent.
#
# Shutdown: ACPI power button (QMP system_powerdown), SIGTERM/SIGUSR2 to PID 1
# or `poweroff` -> sync, unmount, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022

say() { echo "fleetbox-mini: $* [$(cut -d" " -f1 /proc/uptime)s]" > /dev/console; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
# The initramfs root is whatever mode the cpio left it; Debian's is 0755.
chmod 755 /
# Unprivileged ICMP echo sockets for every group, as systemd sets on every
# Debian: `ping` works as the plain user without setuid or capabilities.
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
# The watchdog in the VMM driver looks for this exact line on the serial log.
say "init started"

# Modules, listed in dependency order by the image builder.
KVER=$(uname -r)
while read -r m; do
	[ -n "$m" ] && insmod "/lib/modules/$KVER/$m" 2>/dev/null
done < "/lib/modules/$KVER/load.list"
ip link set lo up
say "modules loaded"

# --- persistence disk ---------------------------------------------------
DISK=/.fbdisk
# ext2/3/4 superblock magic 0xEF53 at byte 1080.
has_ext() {
	[ "$(dd if="$1" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')" = "53ef" ]
}
if [ -b /dev/vda ]; then
	if ! has_ext /dev/vda; then
		say "formatting /dev/vda (first boot)"
		/usr/sbin/mke2fs -q -F -t ext4 -L fbdisk \
			-E lazy_itable_init=1,lazy_journal_init=1 /dev/vda
	fi
	mkdir -p $DISK
	if mount -t ext4 -o noatime /dev/vda $DISK; then
		for d in bin etc home lib lib64 opt root srv usr var; do
			mkdir -p "/$d" "$DISK/upper/$d" "$DISK/work/$d"
			mount -t overlay overlay \
				-o "lowerdir=/$d,upperdir=$DISK/upper/$d,workdir=$DISK/work/$d" "/$d" ||
				say "overlay /$d failed"
		done
	else
		say "cannot mount /dev/vda: running without persistence"
	fi
fi

# --- seed ---------------------------------------------------------------
SEED=/run/seed
mkdir -p $SEED
found=
for dev in /dev/vd? /dev/sr?; do
	[ -b "$dev" ] || continue
	[ "$dev" = /dev/vda ] && continue
	if mount -t iso9660 -o ro "$dev" $SEED 2>/dev/null; then
		[ -f $SEED/meta-data ] && { found=$dev; break; }
		umount $SEED
	fi
done
[ -n "$found" ] || say "no cidata seed found"

# yaml_value KEY FILE: the scalar after "KEY:" on its first occurrence.
yaml_value() {
	sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" "$2" | head -n 1 | sed 's/^"\(.*\)"$/\1/'
}

HOST=$(yaml_value local-hostname $SEED/meta-data)
[ -n "$HOST" ] || HOST=fleetbox
hostname "$HOST"
echo "$HOST" > /etc/hostname
UD=$SEED/user-data

# /etc/hosts: the write_files entry for it (this member and every member of
# the cluster, seed.c), rewritten at every boot from the current seed.
if [ -f $UD ]; then
	awk '/^  - path: \/etc\/hosts$/ {f=1; next}
	     f && /^    content: \|$/ {c=1; next}
	     c && /^      / {sub(/^      /, ""); print; next}
	     c || (f && /^  - /) {exit}' $UD > /etc/hosts.tmp
fi
if [ -s /etc/hosts.tmp ]; then
	mv /etc/hosts.tmp /etc/hosts
else
	rm -f /etc/hosts.tmp
	printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$HOST" > /etc/hosts
fi
chmod 644 /etc/hosts

# --- users --------------------------------------------------------------
U=fleetbox
# Login shell: bash when the image has it (busybox ash would run `ping` as
# its own in-process applet, never the setuid /bin/ping).
USH=/bin/sh
[ -x /bin/bash ] && USH=/bin/bash
cat > /etc/passwd <<EOF
root:x:0:0:root:/root:$USH
$U:x:1000:1000:fleetbox:/home/$U:$USH
EOF
# root has an empty password so that busybox su (our sudo) needs none; no
# password login is possible over SSH (dropbear -s -w).
cat > /etc/shadow <<EOF
root::19000:0:99999:7:::
$U:*:19000:0:99999:7:::
EOF
chmod 600 /etc/shadow
cat > /etc/group <<EOF
root:x:0:
tty:x:5:
$U:x:1000:
EOF
printf '/bin/sh\n%s\n' "$USH" | sort -u > /etc/shells
mkdir -p /home/$U/.ssh /root
chmod 700 /root
if [ -f $UD ]; then
	# The first "- " item after ssh_authorized_keys:.
	awk '/^[[:space:]]*ssh_authorized_keys:/ {k=1; next}
	     k && /^[[:space:]]*- / {sub(/^[[:space:]]*- /, ""); print; next}
	     k {exit}' $UD > /home/$U/.ssh/authorized_keys
fi
chmod 700 /home/$U /home/$U/.ssh
chmod 600 /home/$U/.ssh/authorized_keys
chown -R 1000:1000 /home/$U

# --- SSH host key -------------------------------------------------------
mkdir -p /etc/dropbear
HK=/etc/dropbear/dropbear_ed25519_host_key
if [ -f $UD ]; then
	awk '/-----BEGIN OPENSSH PRIVATE KEY-----/ {p=1}
	     p {sub(/^[[:space:]]+/, ""); print}
	     /-----END OPENSSH PRIVATE KEY-----/ {exit}' $UD > /run/hostkey.pem
	chmod 600 /run/hostkey.pem
	rm -f $HK
	dropbearconvert openssh dropbear /run/hostkey.pem $HK > /dev/null 2>&1 ||
		say "host key conversion failed"
	rm -f /run/hostkey.pem
fi
[ -f $HK ] || dropbearkey -t ed25519 -f $HK > /dev/null 2>&1

# --- network ------------------------------------------------------------
NC=$SEED/network-config
if [ -f $NC ]; then
	# network-config v1 (seed.c): the physical NIC by mac_address, one
	# static subnet with address/len, gateway and dns_nameservers.
	MAC=$(yaml_value mac_address $NC | tr 'A-F' 'a-f')
	ADDR=$(yaml_value address $NC)
	GW=$(yaml_value gateway $NC)
	IF=
	for n in /sys/class/net/*; do
		[ "$(cat "$n/address" 2>/dev/null)" = "$MAC" ] && IF=${n##*/}
	done
	if [ -n "$IF" ]; then
		[ "$IF" = eth0 ] || ip link set "$IF" name eth0
		ip link set eth0 up
		[ -n "$ADDR" ] && ip addr add "$ADDR" dev eth0
		if [ -n "$GW" ]; then
			ip route add default via "$GW" dev eth0 || say "default route via $GW failed"
		fi
	else
		say "no interface with MAC $MAC"
	fi
	sed -n 's/^[[:space:]]*dns_nameservers:[[:space:]]*\[\(.*\)\]/\1/p' $NC | head -n 1 |
		tr ',' '\n' | sed -n 's/^[[:space:]]*\([0-9.:a-fA-F]*\)[[:space:]]*$/nameserver \1/p' \
		> /etc/resolv.conf
else
	# No static addressing: DHCP on every NIC (busybox passes the lease in
	# the environment: ip, mask (prefix bits), router, dns).
	cat > /run/udhcpc.sh <<'EOF'
#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
	: > /etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
EOF
	chmod 755 /run/udhcpc.sh
	for n in /sys/class/net/*; do
		IF=${n##*/}
		[ "$IF" = lo ] && continue
		ip link set "$IF" up
		udhcpc -b -i "$IF" -s /run/udhcpc.sh > /dev/null 2>&1
	done
fi

# --- SSH ----------------------------------------------------------------
dropbear -s -w -r $HK -p 22 -P /run/dropbear.pid
say "dropbear started"

# --- fixtures: - [ LABEL=FBFIX0, "<path>", ext4, "ro,nofail", "0", "0" ] --
if [ -f $UD ]; then
	awk '/^[[:space:]]*- \[ *LABEL=/ {
		line = $0
		sub(/^[[:space:]]*- \[ *LABEL=/, "", line)
		label = line; sub(/,.*/, "", label)
		rest = substr(line, index(line, "\"") + 1)
		path = ""
		while (length(rest) > 0) {
			c = substr(rest, 1, 1)
			if (c == "\\") { path = path substr(rest, 2, 1); rest = substr(rest, 3); continue }
			if (c == "\"") break
			path = path c; rest = substr(rest, 2)
		}
		print label; print path
	}' $UD > /run/mounts.list
	while read -r label && IFS= read -r path; do
		dev=$(findfs "LABEL=$label" 2>/dev/null)
		if [ -z "$dev" ]; then say "fixture $label not found"; continue; fi
		mkdir -p "$path"
		mount -t ext4 -o ro "$dev" "$path" || say "fixture $label: mount failed"
	done < /run/mounts.list
fi

# --- power button -------------------------------------------------------
# The ACPI button's input device appears asynchronously after insmod, so a
# background watcher waits for it (bounded), then blocks reading one event:
# any event on a power-button device is a press, so ask PID 1 to stop.
(
	for i in $(seq 1 100); do
		for ev in /sys/class/input/event*; do
			[ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] || continue
			# Fails until devtmpfs has the node: keep polling then.
			if dd if="/dev/input/${ev##*/}" bs=24 count=1 > /dev/null 2>&1; then
				kill -TERM 1
				exit 0
			fi
		done
		sleep 0.1
	done
	say "no ACPI power button found"
) &

shutdown() {
	say "powering off"
	kill -TERM $(cat /run/dropbear.pid 2>/dev/null) 2>/dev/null
	sync
	for m in $(awk '$2 ~ "^/" && $3 == "ext4" && $2 != "/.fbdisk" {print $2}' /proc/mounts); do
		umount "$m" 2>/dev/null
	done
	for d in var usr srv root opt lib64 lib home etc bin; do
		umount -l "/$d" 2>/dev/null
	done
	umount $DISK 2>/dev/null || mount -o remount,ro $DISK 2>/dev/null
	sync
	poweroff -f
}
trap shutdown TERM USR2 INT
trap 'reboot -f' USR1

say "ready"
# PID 1 must reap orphans: ash's wait collects any child while it waits.
while :; do
	sleep 3600 &
	wait $!
done
