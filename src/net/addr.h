/* addr.h - pure IPv4 address arithmetic and the per-network address pool.
 *
 * No netlink, no files: everything here is unit-tested without root. Addresses
 * are host-order uint32_t. A pool covers one subnet: the network address, the
 * gateway (network + 1) and the broadcast address are never handed out; every
 * other address is given to at most one name, and a name keeps its address
 * (reserve is idempotent per name). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/wire.h"

struct err;

#define ADDR_CIDR_STRLEN 19  /* "255.255.255.255/32" + NUL */

int addr_parse(const char *s, uint32_t *out);
void addr_format(uint32_t a, char out[FB_IP_STRLEN]);
/* "a.b.c.d/len" -> network (host bits must be zero) and len 0..32. */
int addr_parse_cidr(const char *s, uint32_t *net, int *len);
void addr_format_cidr(uint32_t net, int len, char out[ADDR_CIDR_STRLEN]);
uint32_t addr_mask(int len);
/* True when the two prefixes share at least one address. */
bool addr_overlap(uint32_t a, int alen, uint32_t b, int blen);

struct addr_prefix {
	uint32_t addr;
	int len;
};

/* First /24 of range (net/len, len <= 24) at or after `from` that overlaps none
 * of busy[]; -ENOSPC when there is none. */
int addr_subnet_next(uint32_t net, int len, const struct addr_prefix *busy, size_t nbusy,
		     uint32_t from, uint32_t *out);

struct addr_lease {
	char name[FB_NAME_MAX + 1];
	uint32_t ip;
};

struct addr_pool {
	uint32_t net;
	int len;  /* prefix length, 0..30 */
	struct addr_lease *leases;
	size_t n, cap;
};

/* cidr must leave room for at least one member (prefix <= 30). */
int addr_pool_init(struct addr_pool *p, const char *cidr, struct err *e);
void addr_pool_fini(struct addr_pool *p);
uint32_t addr_pool_gateway(const struct addr_pool *p);
uint32_t addr_pool_broadcast(const struct addr_pool *p);
/* The hint (may be NULL or garbage) is honoured when it is inside the subnet,
 * not network/gateway/broadcast and not held by another name; otherwise the
 * lowest free address from network + 2. Only exhaustion is an error:
 * -ENOSPC "no free address in <cidr>". */
int addr_pool_reserve(struct addr_pool *p, const char *name, const char *hint, uint32_t *ip,
		      struct err *e);
/* The address leased to name, or 0. */
uint32_t addr_pool_lookup(const struct addr_pool *p, const char *name);
