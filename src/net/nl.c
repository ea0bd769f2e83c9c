/* nl.c - rtnetlink via libmnl (see nl.h). One socket per request keeps every
 * call independent; the cost (a few microseconds) is irrelevant next to the
 * kernel work itself. */
#include "net/nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NL_BUF 32768
/* An interrupted dump (links changed while the kernel walked them) is
 * retried; concurrent holders changing links make a few in a row plausible. */
#define DUMP_RETRIES 50

unsigned nl_dump_retries;

static unsigned next_seq(void)
{
	static unsigned seq;
	if (!seq)
		seq = (unsigned)time(NULL);
	return ++seq;
}

/* Sends nlh and runs cb over every answer until ACK/DONE. */
static int talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	struct mnl_socket *sk = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!sk)
		return -errno;
	int r = 0;
	if (mnl_socket_bind(sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	unsigned portid = mnl_socket_get_portid(sk);
	nlh->nlmsg_seq = next_seq();
	if (mnl_socket_sendto(sk, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	char *buf = malloc(NL_BUF);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	/* Bounded: a dump of a namespace never needs anywhere near this many reads. */
	for (int i = 0; i < 100000; i++) {
		ssize_t n = mnl_socket_recvfrom(sk, buf, NL_BUF);
		if (n < 0) {
			r = -errno;
			break;
		}
		int cr = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
		if (cr < 0) {
			r = errno ? -errno : -EIO;
			break;
		}
		if (cr == MNL_CB_STOP)
			break;
	}
	free(buf);
out:
	mnl_socket_close(sk);
	return r;
}

/* A dump: talk(), again from scratch (reset(data)) while the kernel reports
 * it interrupted (NLM_F_DUMP_INTR, which libmnl turns into EINTR). */
static int dump(struct nlmsghdr *nlh, mnl_cb_t cb, void *data, void (*reset)(void *))
{
	for (int i = 0;; i++) {
		int r = talk(nlh, cb, data);
		if (r != -EINTR || i == DUMP_RETRIES)
			return r;
		nl_dump_retries++;
		reset(data);
	}
}

/* buf must hold MNL_SOCKET_BUFFER_SIZE bytes; zeroed so padding never leaks. */
static struct nlmsghdr *msg_new(char *buf, int type, int flags)
{
	memset(buf, 0, MNL_SOCKET_BUFFER_SIZE);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (uint16_t)type;
	nlh->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
	return nlh;
}

/* ---- links ---- */

struct link_dump {
	struct nl_link *out;
	size_t n, cap;
	int err;
};

static int link_attr_cb(const struct nlattr *a, void *data)
{
	struct nl_link *l = data;
	switch (mnl_attr_get_type(a)) {
	case IFLA_IFNAME:
		if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
			snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
		break;
	case IFLA_MASTER:
		if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
			l->master = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_LINKINFO: {
		struct nlattr *in;
		mnl_attr_for_each_nested(in, a) {
			if (mnl_attr_get_type(in) == IFLA_INFO_KIND &&
			    mnl_attr_validate(in, MNL_TYPE_STRING) >= 0)
				snprintf(l->kind, sizeof(l->kind), "%.*s",
					 (int)mnl_attr_get_payload_len(in),
					 (const char *)mnl_attr_get_payload(in));
		}
		break;
	}
	}
	return MNL_CB_OK;
}

static void link_parse(const struct nlmsghdr *nlh, struct nl_link *l)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	*l = (struct nl_link){.index = ifi->ifi_index, .flags = ifi->ifi_flags};
	mnl_attr_parse(nlh, sizeof(*ifi), link_attr_cb, l);
	/* Some kinds pad IFLA_INFO_KIND with a NUL. */
	l->kind[strcspn(l->kind, "\n")] = '\0';
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_dump *d = data;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct nl_link *p = realloc(d->out, cap * sizeof(*p));
		if (!p) {
			d->err = -ENOMEM;
			return MNL_CB_OK;
		}
		d->out = p;
		d->cap = cap;
	}
	link_parse(nlh, &d->out[d->n++]);
	return MNL_CB_OK;
}

static void link_reset(void *data)
{
	struct link_dump *d = data;
	d->n = 0;
	d->err = 0;
}

int nl_link_list(struct nl_link **out, size_t *n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_GETLINK, NLM_F_DUMP);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	struct link_dump d = {0};
	int r = dump(nlh, link_cb, &d, link_reset);
	if (r == 0)
		r = d.err;
	if (r < 0) {
		free(d.out);
		return r;
	}
	*out = d.out;
	*n = d.n;
	return 0;
}

struct link_one {
	struct nl_link *out;
	bool found;
};

static int link_one_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_one *o = data;
	if (nlh->nlmsg_type == RTM_NEWLINK && !o->found) {
		link_parse(nlh, o->out);
		o->found = true;
	}
	return MNL_CB_OK;
}

/* One link by name: a single RTM_GETLINK with IFLA_IFNAME (no dump, so it is
 * never interrupted by other links changing), answered by the link and an ACK,
 * or by ENODEV. */
int nl_link_get(const char *name, struct nl_link *out)
{
	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_GETLINK, NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	struct nl_link l;
	struct link_one o = {.out = &l};
	int r = talk(nlh, link_one_cb, &o);
	if (r == 0 && !o.found)
		r = -ENODEV;
	if (r == 0 && strcmp(l.name, name) != 0)
		r = -EIO; /* the kernel answered about another link */
	if (r == 0)
		*out = l;
	return r;
}

static int ack_cb(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_OK;
}

int nl_bridge_add(const char *name, const uint8_t mac[6])
{
	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh =
		msg_new(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
	struct nlattr *bd = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, 0);
	mnl_attr_put_u32(nlh, IFLA_BR_FORWARD_DELAY, 0);
	mnl_attr_nest_end(nlh, bd);
	mnl_attr_nest_end(nlh, info);
	return talk(nlh, ack_cb, NULL);
}

int nl_link_del(const char *name)
{
	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_DELLINK, NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return talk(nlh, ack_cb, NULL);
}

int nl_link_up(int ifindex, int master)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_NEWLINK, NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	if (master > 0)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	return talk(nlh, ack_cb, NULL);
}

/* ---- addresses ---- */

int nl_addr_add(int ifindex, uint32_t addr, int len)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh =
		msg_new(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)len;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	uint32_t a = htonl(addr);
	uint32_t bc = htonl(addr | (len >= 32 ? 0 : 0xffffffffu >> len));
	mnl_attr_put_u32(nlh, IFA_LOCAL, a);
	mnl_attr_put_u32(nlh, IFA_ADDRESS, a);
	mnl_attr_put_u32(nlh, IFA_BROADCAST, bc);
	return talk(nlh, ack_cb, NULL);
}

struct addr_dump {
	struct nl_addr *out;
	size_t n, cap;
	int err;
};

static int addr_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int t = mnl_attr_get_type(a);
	if ((t == IFA_LOCAL || t == IFA_ADDRESS) && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
		tb[t] = a;
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_dump *d = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET)
		return MNL_CB_OK;
	const struct nlattr *tb[IFA_MAX + 1] = {0};
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
	const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a)
		return MNL_CB_OK;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct nl_addr *p = realloc(d->out, cap * sizeof(*p));
		if (!p) {
			d->err = -ENOMEM;
			return MNL_CB_OK;
		}
		d->out = p;
		d->cap = cap;
	}
	d->out[d->n++] = (struct nl_addr){.ifindex = (int)ifa->ifa_index,
					   .addr = ntohl(mnl_attr_get_u32(a)),
					   .len = ifa->ifa_prefixlen};
	return MNL_CB_OK;
}

static void addr_reset(void *data)
{
	struct addr_dump *d = data;
	d->n = 0;
	d->err = 0;
}

int nl_addr_list(struct nl_addr **out, size_t *n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_GETADDR, NLM_F_DUMP);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	struct addr_dump d = {0};
	int r = dump(nlh, addr_cb, &d, addr_reset);
	if (r == 0)
		r = d.err;
	if (r < 0) {
		free(d.out);
		return r;
	}
	*out = d.out;
	*n = d.n;
	return 0;
}

/* ---- neighbours ---- */

static int neigh_msg(int type, int flags, int ifindex, uint32_t ip, const uint8_t mac[6])
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, type, flags | NLM_F_ACK);
	struct ndmsg *nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
	nd->ndm_family = AF_INET;
	nd->ndm_ifindex = ifindex;
	nd->ndm_state = NUD_PERMANENT;
	uint32_t a = htonl(ip);
	mnl_attr_put(nlh, NDA_DST, 4, &a);
	if (mac)
		mnl_attr_put(nlh, NDA_LLADDR, 6, mac);
	return talk(nlh, ack_cb, NULL);
}

int nl_neigh_set(int ifindex, uint32_t ip, const uint8_t mac[6])
{
	return neigh_msg(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, ifindex, ip, mac);
}

int nl_neigh_del(int ifindex, uint32_t ip)
{
	return neigh_msg(RTM_DELNEIGH, 0, ifindex, ip, NULL);
}

struct neigh_find {
	int ifindex;
	uint32_t ip;
	bool found;
	uint8_t mac[6];
	uint16_t state;
};

static int neigh_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int t = mnl_attr_get_type(a);
	if (t == NDA_DST || t == NDA_LLADDR)
		tb[t] = a;
	return MNL_CB_OK;
}

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct neigh_find *f = data;
	const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
	if (nd->ndm_family != AF_INET || nd->ndm_ifindex != f->ifindex)
		return MNL_CB_OK;
	const struct nlattr *tb[NDA_MAX + 1] = {0};
	mnl_attr_parse(nlh, sizeof(*nd), neigh_attr_cb, tb);
	if (!tb[NDA_DST] || mnl_attr_get_payload_len(tb[NDA_DST]) != 4)
		return MNL_CB_OK;
	uint32_t a;
	memcpy(&a, mnl_attr_get_payload(tb[NDA_DST]), 4);
	if (ntohl(a) != f->ip)
		return MNL_CB_OK;
	f->found = true;
	f->state = nd->ndm_state;
	memset(f->mac, 0, 6);
	if (tb[NDA_LLADDR] && mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6)
		memcpy(f->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
	return MNL_CB_OK;
}

static void neigh_reset(void *data)
{
	struct neigh_find *f = data;
	f->found = false;
}

int nl_neigh_get(int ifindex, uint32_t ip, uint8_t mac[6], uint16_t *state)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_GETNEIGH, NLM_F_DUMP);
	struct ndmsg *nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
	nd->ndm_family = AF_INET;
	struct neigh_find f = {.ifindex = ifindex, .ip = ip};
	int r = dump(nlh, neigh_cb, &f, neigh_reset);
	if (r < 0)
		return r;
	if (!f.found)
		return -ENOENT;
	if (mac)
		memcpy(mac, f.mac, 6);
	if (state)
		*state = f.state;
	return 0;
}

/* ---- routes ---- */

struct route_dump {
	int *out;
	size_t max, n;
};

static void route_add_if(struct route_dump *d, int ifindex)
{
	if (ifindex <= 0)
		return;
	for (size_t i = 0; i < d->n; i++)
		if (d->out[i] == ifindex)
			return;
	if (d->n < d->max)
		d->out[d->n++] = ifindex;
}

static int route_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int t = mnl_attr_get_type(a);
	if (t == RTA_OIF || t == RTA_MULTIPATH || t == RTA_TABLE)
		tb[t] = a;
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_dump *d = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	if (rt->rtm_family != AF_INET || rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST)
		return MNL_CB_OK;
	const struct nlattr *tb[RTA_MAX + 1] = {0};
	mnl_attr_parse(nlh, sizeof(*rt), route_attr_cb, tb);
	unsigned table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rt->rtm_table;
	if (table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	if (tb[RTA_OIF])
		route_add_if(d, (int)mnl_attr_get_u32(tb[RTA_OIF]));
	if (tb[RTA_MULTIPATH]) {
		const struct rtnexthop *nh = mnl_attr_get_payload(tb[RTA_MULTIPATH]);
		int left = (int)mnl_attr_get_payload_len(tb[RTA_MULTIPATH]);
		while (left >= (int)sizeof(*nh) && nh->rtnh_len >= sizeof(*nh) &&
		       nh->rtnh_len <= left) {
			route_add_if(d, nh->rtnh_ifindex);
			left -= RTNH_ALIGN(nh->rtnh_len);
			nh = RTNH_NEXT(nh);
		}
	}
	return MNL_CB_OK;
}

static void route_reset(void *data)
{
	struct route_dump *d = data;
	d->n = 0;
}

int nl_default_route_ifs(int *ifindex, size_t max, size_t *n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = msg_new(buf, RTM_GETROUTE, NLM_F_DUMP);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
	rt->rtm_family = AF_INET;
	struct route_dump d = {.out = ifindex, .max = max};
	int r = dump(nlh, route_cb, &d, route_reset);
	if (r < 0)
		return r;
	*n = d.n;
	return 0;
}

/* ---- taps ---- */

/* Attaches to tap `name` (creating it when absent), sets persistence and
 * owner/group as asked, detaches again. */
static int tap_setup(const char *name, bool persist, uid_t owner, gid_t group, bool own)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int r = 0;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || (persist && ioctl(fd, TUNSETPERSIST, 1) < 0))
		r = -errno;
	/* The kernel has no "no owner" value to set: (uid_t)-1 leaves it alone. */
	if (r == 0 && own &&
	    ((owner != (uid_t)-1 && ioctl(fd, TUNSETOWNER, (unsigned long)owner) < 0) ||
	     (group != (gid_t)-1 && ioctl(fd, TUNSETGROUP, (unsigned long)group) < 0)))
		r = -errno;
	close(fd);
	return r;
}

int nl_tap_create(const char *name)
{
	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	struct nl_link l;
	int r = nl_link_get(name, &l);
	if (r == 0)
		return -EEXIST;
	if (r != -ENODEV)
		return r;
	return tap_setup(name, true, (uid_t)-1, (gid_t)-1, false);
}

int nl_tap_attach(const char *name)
{
	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	/* With the virtio-net header, as QEMU asks for it when it opens by name. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int nl_tap_own(const char *name, uid_t owner, gid_t group)
{
	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	struct nl_link l;
	int r = nl_link_get(name, &l);
	if (r < 0)
		return r;
	if (strcmp(l.kind, "tun") != 0)
		return -EEXIST;
	return tap_setup(name, false, owner, group, true);
}

int nl_mac_parse(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char tail;
	if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
			 &b[5], &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}
