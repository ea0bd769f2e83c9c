/* nstest.c - see nstest.h. */
#include "nstest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/netint.h"
#include "net/nl.h"
#include "net/ruleset.h"
#include "util/err.h"
#include "util/fileio.h"

void nstest_enter(void)
{
	struct stat before, after;
	CHECK(stat("/proc/self/ns/net", &before) == 0);
	if (unshare(CLONE_NEWNET) < 0) {
		int err = errno;
		fprintf(stderr, "refusing to run: cannot create a private network namespace: %s\n",
			strerror(err));
		exit(err == EPERM ? 77 : 1);
	}
	if (stat("/proc/self/ns/net", &after) < 0 || after.st_ino == before.st_ino) {
		fprintf(stderr, "refusing to run: still in the original network namespace\n");
		exit(1);
	}
	struct nl_link *links = NULL;
	size_t n = 0;
	CHECK(nl_link_list(&links, &n) == 0);
	if (n != 1 || strcmp(links[0].name, "lo") != 0) {
		fprintf(stderr, "refusing to run: the new namespace is not empty\n");
		exit(1);
	}
	CHECK(nl_link_up(links[0].index, 0) == 0);
	free(links);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

char *nstest_tmp_root(void)
{
	char tmpl[] = "/tmp/fbnet-XXXXXX";
	CHECK(mkdtemp(tmpl));
	char *s = strdup(tmpl);
	CHECK(s);
	return s;
}

bool nstest_link_exists(const char *name)
{
	struct nl_link l;
	int r = nl_link_get(name, &l);
	CHECK(r == 0 || r == -ENODEV);
	return r == 0;
}

bool nstest_table_exists(const char *table)
{
	bool ex = false;
	struct err e = {0};
	CHECK_OK(ruleset_exists(table, &ex, &e), e);
	return ex;
}

int nstest_table_count(void)
{
	char *out = NULL;
	struct err e = {0};
	CHECK_OK(ruleset_run("list tables", &out, &e), e);
	int n = 0;
	for (char *p = out; (p = strstr(p, "table ")); p++)
		n++;
	free(out);
	return n;
}

bool nstest_record_exists(const char *root, const char *bridge)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/networks/%s.json", root, bridge);
	return access(p, F_OK) == 0;
}

static int ack_cb(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_OK;
}

static void talk(struct nlmsghdr *nlh)
{
	struct mnl_socket *sk = mnl_socket_open(NETLINK_ROUTE);
	CHECK(sk && mnl_socket_bind(sk, 0, MNL_SOCKET_AUTOPID) == 0);
	/* (buffers are zeroed by the callers: valgrind checks the padding) */
	nlh->nlmsg_seq = (unsigned)time(NULL);
	CHECK(mnl_socket_sendto(sk, nlh, nlh->nlmsg_len) >= 0);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n = mnl_socket_recvfrom(sk, buf, sizeof(buf));
	CHECK(n > 0);
	int r = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, mnl_socket_get_portid(sk), ack_cb, NULL);
	if (r < 0)
		fprintf(stderr, "netlink: %s\n", strerror(errno));
	CHECK(r >= 0);
	mnl_socket_close(sk);
}

void nstest_veth(const char *name, const char *peer)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	struct nlattr *pa = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	struct ifinfomsg *pifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifi));
	pifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	mnl_attr_nest_end(nlh, pa);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	talk(nlh);
}

void nstest_link_move(const char *name, int nsfd)
{
	struct nl_link l;
	CHECK(nl_link_get(name, &l) == 0);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = l.index;
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)nsfd);
	talk(nlh);
}

void nstest_route(const char *dst, int len, const char *gw, const char *dev)
{
	struct nl_link l;
	struct in_addr in;
	CHECK(nl_link_get(dev, &l) == 0);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = (unsigned char)len;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_STATIC;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	if (len > 0) {
		CHECK(inet_pton(AF_INET, dst, &in) == 1);
		mnl_attr_put_u32(nlh, RTA_DST, in.s_addr);
	}
	CHECK(inet_pton(AF_INET, gw, &in) == 1);
	mnl_attr_put_u32(nlh, RTA_GATEWAY, in.s_addr);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)l.index);
	talk(nlh);
}

void nstest_addr_up(const char *dev, const char *addr, int len)
{
	struct nl_link l;
	struct in_addr in;
	CHECK(nl_link_get(dev, &l) == 0);
	CHECK(inet_pton(AF_INET, addr, &in) == 1);
	CHECK(nl_addr_add(l.index, ntohl(in.s_addr), len) == 0);
	CHECK(nl_link_up(l.index, 0) == 0);
}

void nstest_uplink(const char *name, const char *addr, int len, const char *gw, int fwd)
{
	/* veth (this kernel has no dummy driver); the peer is <name>p, up. */
	char peer[IF_NAMESIZE];
	struct nl_link l;
	snprintf(peer, sizeof(peer), "%sp", name);
	nstest_veth(name, peer);
	CHECK(nl_link_get(peer, &l) == 0);
	CHECK(nl_link_up(l.index, 0) == 0);
	nstest_addr_up(name, addr, len);
	nstest_route(NULL, 0, gw, name);
	CHECK(fwd_write(name, fwd) == 0);
}

int nstest_fwd(const char *ifname)
{
	int v = -1;
	CHECK(fwd_read(ifname, &v) == 0);
	return v;
}

double nstest_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
