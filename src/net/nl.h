/* nl.h - the rtnetlink requests src/net needs, through libmnl, plus persistent
 * tap creation (the one ioctl interface). Each call opens its own socket, sends
 * one request and waits for the kernel's answer, so there is no shared state.
 * Addresses are host-order uint32_t; all return 0 or -errno. */
#pragma once
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct nl_link {
	int index;
	int master;        /* 0 = none */
	unsigned flags;    /* IFF_* */
	char name[IF_NAMESIZE];
	char kind[16];     /* IFLA_INFO_KIND or "" */
};

struct nl_addr {
	int ifindex;
	uint32_t addr;
	int len;
};

/* One link looked up by name (a non-dump request: never interrupted by other
 * links changing). -ENODEV when there is no such link. */
int nl_link_get(const char *name, struct nl_link *out);
/* Every link of the namespace (for guards and tests). Caller frees *out.
 * Dumps (links, addresses, neighbours, routes) are retried when the kernel
 * reports them interrupted by a concurrent change (NLM_F_DUMP_INTR). */
int nl_link_list(struct nl_link **out, size_t *n);
/* Interrupted dumps retried so far (tests show the retry path ran). */
extern unsigned nl_dump_retries;
/* A bridge without STP and forward delay, with a fixed MAC (so it does not
 * change as ports come and go). -EEXIST when the name is taken. */
int nl_bridge_add(const char *name, const uint8_t mac[6]);
/* 0, or -ENODEV when it does not exist (callers often treat that as done). */
int nl_link_del(const char *name);
/* Sets IFF_UP and, when master > 0, the master (bridge) of the link. */
int nl_link_up(int ifindex, int master);
int nl_addr_add(int ifindex, uint32_t addr, int len);
/* All IPv4 addresses of the namespace. Caller frees *out. */
int nl_addr_list(struct nl_addr **out, size_t *n);
/* Permanent neighbour entry ip -> mac on ifindex (created or replaced). */
int nl_neigh_set(int ifindex, uint32_t ip, const uint8_t mac[6]);
/* 0, or -ENOENT when there is no such entry. */
int nl_neigh_del(int ifindex, uint32_t ip);
/* -ENOENT when absent; state receives NUD_*. */
int nl_neigh_get(int ifindex, uint32_t ip, uint8_t mac[6], uint16_t *state);
/* Output interfaces of the IPv4 default routes of the main table (deduplicated,
 * at most max). */
int nl_default_route_ifs(int *ifindex, size_t max, size_t *n);
/* Persistent tap (TUNSETIFF + TUNSETPERSIST; the fd is closed again so a VMM can
 * open it by name). -EEXIST when a link with that name already exists. */
int nl_tap_create(const char *name);
/* Owner and group of an existing, unattached tap ((uid_t)-1 / (gid_t)-1 =
 * leave as is): a VMM running as that user may attach to it (TUNSETOWNER). */
int nl_tap_own(const char *name, uid_t owner, gid_t group);
/* An fd attached to the existing tap (IFF_VNET_HDR): handed to a VMM, which
 * then needs neither /dev/net/tun nor CAP_NET_ADMIN. */
int nl_tap_attach(const char *name);
/* "02:aa:.." -> bytes. */
int nl_mac_parse(const char *s, uint8_t mac[6]);
