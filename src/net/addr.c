/* addr.c - IPv4 arithmetic and the address pool (see addr.h). Pools are tiny
 * (at most a /24 in practice), so linear scans are the clearest choice. */
#include "net/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int addr_parse(const char *s, uint32_t *out)
{
	struct in_addr in;
	if (!s || inet_pton(AF_INET, s, &in) != 1)
		return -EINVAL;
	*out = ntohl(in.s_addr);
	return 0;
}

void addr_format(uint32_t a, char out[FB_IP_STRLEN])
{
	snprintf(out, FB_IP_STRLEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
		 a & 0xff);
}

uint32_t addr_mask(int len)
{
	return len <= 0 ? 0 : len >= 32 ? 0xffffffffu : ~(0xffffffffu >> len);
}

int addr_parse_cidr(const char *s, uint32_t *net, int *len)
{
	char buf[ADDR_CIDR_STRLEN + 1];
	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (!slash || slash[1] == '\0')
		return -EINVAL;
	*slash = '\0';
	char *end;
	long l = strtol(slash + 1, &end, 10);
	if (*end != '\0' || l < 0 || l > 32)
		return -EINVAL;
	uint32_t a;
	if (addr_parse(buf, &a) < 0)
		return -EINVAL;
	if (a & ~addr_mask((int)l))
		return -EINVAL;
	*net = a;
	*len = (int)l;
	return 0;
}

void addr_format_cidr(uint32_t net, int len, char out[ADDR_CIDR_STRLEN])
{
	char ip[FB_IP_STRLEN];
	addr_format(net, ip);
	snprintf(out, ADDR_CIDR_STRLEN, "%s/%d", ip, len);
}

bool addr_overlap(uint32_t a, int alen, uint32_t b, int blen)
{
	uint32_t m = addr_mask(alen < blen ? alen : blen);
	return (a & m) == (b & m);
}

int addr_subnet_next(uint32_t net, int len, const struct addr_prefix *busy, size_t nbusy,
		     uint32_t from, uint32_t *out)
{
	if (len > 24)
		return -EINVAL;
	uint64_t end = (uint64_t)net + ((uint64_t)1 << (32 - len));
	uint64_t c = from < net ? net : (from & 0xffffff00u);
	for (; c < end; c += 256) {
		bool free_ = true;
		for (size_t i = 0; i < nbusy && free_; i++)
			if (addr_overlap((uint32_t)c, 24, busy[i].addr, busy[i].len))
				free_ = false;
		if (free_) {
			*out = (uint32_t)c;
			return 0;
		}
	}
	return -ENOSPC;
}

int addr_pool_init(struct addr_pool *p, const char *cidr, struct err *e)
{
	memset(p, 0, sizeof(*p));
	if (addr_parse_cidr(cidr, &p->net, &p->len) < 0)
		return err_set(e, -EINVAL, "invalid subnet '%s'", cidr ? cidr : "");
	if (p->len > 30)
		return err_set(e, -EINVAL, "subnet %s is too small", cidr);
	return 0;
}

void addr_pool_fini(struct addr_pool *p)
{
	free(p->leases);
	memset(p, 0, sizeof(*p));
}

uint32_t addr_pool_gateway(const struct addr_pool *p)
{
	return p->net + 1;
}

uint32_t addr_pool_broadcast(const struct addr_pool *p)
{
	return p->net | ~addr_mask(p->len);
}

uint32_t addr_pool_lookup(const struct addr_pool *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->leases[i].name, name) == 0)
			return p->leases[i].ip;
	return 0;
}

static bool taken(const struct addr_pool *p, uint32_t ip)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->leases[i].ip == ip)
			return true;
	return false;
}

static bool assignable(const struct addr_pool *p, uint32_t ip)
{
	return (ip & addr_mask(p->len)) == p->net && ip != p->net &&
	       ip != addr_pool_gateway(p) && ip != addr_pool_broadcast(p) && !taken(p, ip);
}

int addr_pool_reserve(struct addr_pool *p, const char *name, const char *hint, uint32_t *ip,
		      struct err *e)
{
	if (!name || strlen(name) > FB_NAME_MAX)
		return err_set(e, -EINVAL, "invalid member name");
	uint32_t have = addr_pool_lookup(p, name);
	if (have) {
		*ip = have;
		return 0;
	}
	uint32_t pick = 0, h;
	if (hint && addr_parse(hint, &h) == 0 && assignable(p, h))
		pick = h;
	for (uint32_t a = p->net + 2; !pick && a < addr_pool_broadcast(p); a++)
		if (assignable(p, a))
			pick = a;
	if (!pick) {
		char c[ADDR_CIDR_STRLEN];
		addr_format_cidr(p->net, p->len, c);
		return err_set(e, -ENOSPC, "no free address in %s", c);
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct addr_lease *l = realloc(p->leases, cap * sizeof(*l));
		if (!l)
			return err_set(e, -ENOMEM, "out of memory");
		p->leases = l;
		p->cap = cap;
	}
	snprintf(p->leases[p->n].name, sizeof(p->leases[p->n].name), "%s", name);
	p->leases[p->n].ip = pick;
	p->n++;
	*ip = pick;
	return 0;
}
