/* fwd.c - per-interface IPv4 forwarding through /proc/sys (never the global
 * net.ipv4.ip_forward or conf/all switch, which would turn the whole host into
 * a router).
 *
 * Why more than the bridge: the kernel checks the forwarding switch of the
 * interface a packet ARRIVES on. VM egress arrives on the bridge; the replies
 * to masqueraded traffic arrive on the uplink (the default route's interface)
 * and are forwarded to the bridge after de-NAT, so the uplink needs it too. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "net/netint.h"
#include "util/fileio.h"

static int fwd_path(const char *ifname, char *out, size_t len)
{
	if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE || strchr(ifname, '/') ||
	    strcmp(ifname, "all") == 0 || strcmp(ifname, "default") == 0 ||
	    strcmp(ifname, ".") == 0 || strcmp(ifname, "..") == 0)
		return -EINVAL;
	snprintf(out, len, "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
	return 0;
}

int fwd_read(const char *ifname, int *val)
{
	char path[PATH_MAX], *s = NULL;
	size_t len;
	int r = fwd_path(ifname, path, sizeof(path));
	if (r == 0)
		r = file_read_all(path, 64, &s, &len);
	if (r < 0)
		return r;
	*val = atoi(s) ? 1 : 0;
	free(s);
	return 0;
}

int fwd_write(const char *ifname, int val)
{
	char path[PATH_MAX];
	int r = fwd_path(ifname, path, sizeof(path));
	if (r < 0)
		return r;
	/* A sysctl file, not a regular file: plain write, no atomic rename. */
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	const char *s = val ? "1\n" : "0\n";
	r = write(fd, s, 2) == 2 ? 0 : -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

bool fwd_shared(const char *root, const char *self, const char *ifname, int *original)
{
	char **paths;
	size_t n;
	bool found = false;
	if (record_list(root, &paths, &n) < 0)
		return false;
	for (size_t i = 0; i < n && !found; i++) {
		struct net_record r;
		if (record_load(paths[i], &r, NULL) < 0)
			continue;
		if (strcmp(r.bridge, self) != 0)
			for (size_t k = 0; k < r.nfwd && !found; k++)
				if (strcmp(r.fwd[k].ifname, ifname) == 0) {
					found = true;
					if (original)
						*original = r.fwd[k].original;
				}
		record_fini(&r);
	}
	record_list_free(paths, n);
	return found;
}
