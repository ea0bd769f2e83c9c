/* net_traffic_test.c - the ruleset does what it claims, with real TCP:
 *   the host reaches every VM; a VM reaches its gateway and the outside world
 *   (masqueraded behind the uplink address, which needs uplink forwarding);
 *   VMs of two clusters cannot open connections to each other; the outside
 *   cannot open connections to a VM.
 * "VMs" and "the outside" are extra network namespaces wired with veths (a
 * VM's tap is a bridge port just like the veth); the sockets of every namespace
 * live in this one process (a socket stays in the namespace it was made in). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/netint.h"
#include "net/nl.h"
#include "net/ruleset.h"
#include "nstest.h"
#include "util/err.h"
#include "util/fileio.h"

#define DROP_WAIT_MS 800

static int host_ns;

static int ns_new(void)
{
	CHECK(unshare(CLONE_NEWNET) == 0);
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	struct nl_link lo;
	CHECK(nl_link_get("lo", &lo) == 0 && nl_link_up(lo.index, 0) == 0);
	CHECK(setns(host_ns, CLONE_NEWNET) == 0);
	return fd;
}

static void enter(int ns)
{
	CHECK(setns(ns, CLONE_NEWNET) == 0);
}

/* A "VM": veth <name> on the bridge, peer <name>p as eth0-ish inside ns. */
static void vm_wire(const char *bridge, int ns, const char *name, const char *ip, const char *gw)
{
	char peer[16];
	snprintf(peer, sizeof(peer), "%sp", name);
	nstest_veth(name, peer);
	struct nl_link br, l;
	CHECK(nl_link_get(bridge, &br) == 0 && nl_link_get(name, &l) == 0);
	CHECK(nl_link_up(l.index, br.index) == 0);
	nstest_link_move(peer, ns);
	enter(ns);
	nstest_addr_up(peer, ip, 24);
	nstest_route(NULL, 0, gw, peer);
	enter(host_ns);
}

static int listen_in(int ns, const char *ip, int port)
{
	enter(ns);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	CHECK(inet_pton(AF_INET, ip, &sa.sin_addr) == 1);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 8) == 0);
	enter(host_ns);
	return fd;
}

/* 0 = connected, -ETIMEDOUT = no answer at all (dropped), else -errno. */
static int connect_from(int ns, const char *ip, int port, int wait_ms)
{
	enter(ns);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	enter(host_ns);
	CHECK(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	CHECK(inet_pton(AF_INET, ip, &sa.sin_addr) == 1);
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	if (r == -EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int pr = poll(&p, 1, wait_ms);
		if (pr == 0) {
			r = -ETIMEDOUT;
		} else {
			int err = 0;
			socklen_t l = sizeof(err);
			CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0);
			r = -err;
		}
	}
	close(fd);
	return r;
}

/* Accepts the pending connection and returns the peer's address. */
static const char *accept_peer(int lfd)
{
	static char out[INET_ADDRSTRLEN];
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	CHECK(poll(&p, 1, 2000) == 1);
	struct sockaddr_in sa;
	socklen_t l = sizeof(sa);
	int c = accept(lfd, (struct sockaddr *)&sa, &l);
	CHECK(c >= 0);
	close(c);
	CHECK(inet_ntop(AF_INET, &sa.sin_addr, out, sizeof(out)));
	return out;
}

int main(void)
{
	nstest_enter();
	host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	CHECK(host_ns >= 0);
	char *root = nstest_tmp_root();
	struct err e = {0};

	/* The outside world: uplink up0 (10.99.0.2) <-> up0p (10.99.0.1) in ns "out",
	 * which routes the cluster range back to us (so it could try to get in). */
	int out = ns_new();
	nstest_uplink("up0", "10.99.0.2", 24, "10.99.0.1", 0);
	nstest_link_move("up0p", out);
	enter(out);
	nstest_addr_up("up0p", "10.99.0.1", 24);
	nstest_route("10.30.0.0", 16, "10.99.0.2", "up0p");
	enter(host_ns);

	struct net *a, *b;
	CHECK_OK(net_create(&(struct net_config){.store_root = root, .range = "10.30.0.0/16"}, &a, &e), e);
	CHECK_OK(net_create(&(struct net_config){.store_root = root, .range = "10.30.0.0/16"}, &b, &e), e);
	CHECK(strcmp(net_subnet(a), "10.30.0.0/24") == 0 && strcmp(net_subnet(b), "10.30.1.0/24") == 0);
	int va = ns_new(), vb = ns_new();
	vm_wire(net_bridge(a), va, "vma", "10.30.0.2", "10.30.0.1");
	vm_wire(net_bridge(b), vb, "vmb", "10.30.1.2", "10.30.1.1");

	int la = listen_in(va, "0.0.0.0", 7001);
	int lb = listen_in(vb, "0.0.0.0", 7002);
	int lo_ = listen_in(out, "0.0.0.0", 7003);
	int lg = listen_in(host_ns, "10.30.0.1", 7004);

	/* Host -> every VM (output path, not forward). */
	CHECK(connect_from(host_ns, "10.30.0.2", 7001, 2000) == 0);
	CHECK(strcmp(accept_peer(la), "10.30.0.1") == 0);
	CHECK(connect_from(host_ns, "10.30.1.2", 7002, 2000) == 0);
	CHECK(strcmp(accept_peer(lb), "10.30.1.1") == 0);
	/* VM -> its gateway (input path). */
	CHECK(connect_from(va, "10.30.0.1", 7004, 2000) == 0);
	CHECK(strcmp(accept_peer(lg), "10.30.0.2") == 0);
	/* VM -> outside: masqueraded behind the uplink address. */
	CHECK(connect_from(va, "10.99.0.1", 7003, 2000) == 0);
	CHECK(strcmp(accept_peer(lo_), "10.99.0.2") == 0);
	CHECK(connect_from(vb, "10.99.0.1", 7003, 2000) == 0);
	CHECK(strcmp(accept_peer(lo_), "10.99.0.2") == 0);
	printf("host->vm ok, vm->gateway ok, vm->outside ok (seen as 10.99.0.2)\n");

	/* Cluster A <-> cluster B and outside -> VM: silently dropped. */
	CHECK(connect_from(va, "10.30.1.2", 7002, DROP_WAIT_MS) == -ETIMEDOUT);
	CHECK(connect_from(vb, "10.30.0.2", 7001, DROP_WAIT_MS) == -ETIMEDOUT);
	CHECK(connect_from(out, "10.30.0.2", 7001, DROP_WAIT_MS) == -ETIMEDOUT);
	printf("a->b dropped, b->a dropped, outside->vm dropped\n");
	/* Nothing sneaked through to the listeners either. */
	struct pollfd p[2] = {{.fd = la, .events = POLLIN}, {.fd = lb, .events = POLLIN}};
	CHECK(poll(p, 2, 0) == 0);
	/* Control: it is b's table that stops a, not routing (without it a gets in). */
	CHECK_OK(ruleset_delete(net_bridge(b), &e), e);
	CHECK(connect_from(va, "10.30.1.2", 7002, 2000) == 0);
	accept_peer(lb);
	CHECK_OK(ruleset_install(net_bridge(b), net_bridge(b), net_subnet(b), &e), e);
	CHECK(connect_from(va, "10.30.1.2", 7002, DROP_WAIT_MS) == -ETIMEDOUT);

	/* Without our uplink forwarding the replies could not come back: prove it. */
	CHECK(fwd_write("up0", 0) == 0);
	CHECK(connect_from(va, "10.99.0.1", 7003, DROP_WAIT_MS) == -ETIMEDOUT);
	CHECK(fwd_write("up0", 1) == 0);
	printf("uplink forwarding is required for egress replies: confirmed\n");

	close(la);
	close(lb);
	close(lo_);
	close(lg);
	CHECK_OK(net_destroy(a, &e), e);
	CHECK_OK(net_destroy(b, &e), e);
	CHECK(nstest_fwd("up0") == 0);
	close(va);
	close(vb);
	close(out);
	close(host_ns);
	rm_rf(root);
	free(root);
	printf("net_traffic_test: ok\n");
	return 0;
}
