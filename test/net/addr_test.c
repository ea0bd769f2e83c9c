/* addr_test.c - the pure address pool and subnet picker (suite unit, no root). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"
#include "util/err.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

static uint32_t ip(const char *s)
{
	uint32_t a;
	CHECK(addr_parse(s, &a) == 0);
	return a;
}

static const char *reserve(struct addr_pool *p, const char *name, const char *hint)
{
	static char out[FB_IP_STRLEN];
	uint32_t a;
	struct err e = {0};
	int r = addr_pool_reserve(p, name, hint, &a, &e);
	if (r < 0) {
		fprintf(stderr, "reserve %s: %s\n", name, e.msg);
		return NULL;
	}
	addr_format(a, out);
	return out;
}

static void test_parse(void)
{
	uint32_t n;
	int len;
	char c[ADDR_CIDR_STRLEN];
	CHECK(addr_parse_cidr("192.168.0.0/16", &n, &len) == 0 && n == ip("192.168.0.0") && len == 16);
	addr_format_cidr(n, len, c);
	CHECK(strcmp(c, "192.168.0.0/16") == 0);
	CHECK(addr_parse_cidr("192.168.0.1/16", &n, &len) == -EINVAL);  /* host bits */
	CHECK(addr_parse_cidr("192.168.0.0/33", &n, &len) == -EINVAL);
	CHECK(addr_parse_cidr("192.168.0.0", &n, &len) == -EINVAL);
	CHECK(addr_parse_cidr("192.168.0.0/", &n, &len) == -EINVAL);
	CHECK(addr_parse_cidr("banana/24", &n, &len) == -EINVAL);
	CHECK(addr_parse_cidr(NULL, &n, &len) == -EINVAL);
	CHECK(addr_mask(24) == 0xffffff00u && addr_mask(0) == 0 && addr_mask(32) == 0xffffffffu);
	CHECK(addr_overlap(ip("10.0.0.0"), 8, ip("10.1.2.0"), 24));
	CHECK(addr_overlap(ip("192.168.1.0"), 24, ip("192.168.1.77"), 32));
	CHECK(!addr_overlap(ip("192.168.1.0"), 24, ip("192.168.2.1"), 24));
	CHECK(addr_overlap(ip("0.0.0.0"), 0, ip("1.2.3.4"), 32));
}

static void test_subnet_next(void)
{
	uint32_t out;
	struct addr_prefix busy[] = {
		{ip("127.0.0.1"), 8},
		{ip("192.168.0.7"), 24},   /* host address in .0 */
		{ip("192.168.1.0"), 24},   /* another fleetbox network */
		{ip("192.168.3.1"), 32},   /* a lone /32 still blocks its /24 */
	};
	CHECK(addr_subnet_next(ip("192.168.0.0"), 16, busy, 4, 0, &out) == 0);
	CHECK(out == ip("192.168.2.0"));
	CHECK(addr_subnet_next(ip("192.168.0.0"), 16, busy, 4, ip("192.168.3.0"), &out) == 0);
	CHECK(out == ip("192.168.4.0"));
	/* A range fully covered by a host /16: nothing free. */
	struct addr_prefix wide = {ip("192.168.200.1"), 16};
	CHECK(addr_subnet_next(ip("192.168.0.0"), 16, &wide, 1, 0, &out) == -ENOSPC);
	/* The last /24 of the address space does not wrap around. */
	CHECK(addr_subnet_next(ip("255.255.255.0"), 24, NULL, 0, 0, &out) == 0 &&
	      out == ip("255.255.255.0"));
	struct addr_prefix last = {ip("255.255.255.0"), 24};
	CHECK(addr_subnet_next(ip("255.255.254.0"), 23, &last, 1, ip("255.255.255.0"), &out) == -ENOSPC);
	CHECK(addr_subnet_next(ip("10.0.0.0"), 25, NULL, 0, 0, &out) == -EINVAL);
}

static void test_pool(void)
{
	struct addr_pool p;
	struct err e = {0};
	const char *r;
	CHECK(addr_pool_init(&p, "192.168.3.0/24", &e) == 0);
	CHECK(addr_pool_gateway(&p) == ip("192.168.3.1"));
	CHECK(addr_pool_broadcast(&p) == ip("192.168.3.255"));
	/* No hint: lowest from .2. */
	CHECK((r = reserve(&p, "web-1", NULL)) && strcmp(r, "192.168.3.2") == 0);
	/* Idempotent per name, whatever the hint says now. */
	CHECK((r = reserve(&p, "web-1", "192.168.3.77")) && strcmp(r, "192.168.3.2") == 0);
	/* A good hint is honoured. */
	CHECK((r = reserve(&p, "web-2", "192.168.3.50")) && strcmp(r, "192.168.3.50") == 0);
	/* Bad hints fall back to the lowest free address. */
	CHECK((r = reserve(&p, "out", "10.0.0.9")) && strcmp(r, "192.168.3.3") == 0);
	CHECK((r = reserve(&p, "gw", "192.168.3.1")) && strcmp(r, "192.168.3.4") == 0);
	CHECK((r = reserve(&p, "taken", "192.168.3.50")) && strcmp(r, "192.168.3.5") == 0);
	CHECK((r = reserve(&p, "netaddr", "192.168.3.0")) && strcmp(r, "192.168.3.6") == 0);
	CHECK((r = reserve(&p, "bcast", "192.168.3.255")) && strcmp(r, "192.168.3.7") == 0);
	CHECK((r = reserve(&p, "garbage", "not-an-ip")) && strcmp(r, "192.168.3.8") == 0);
	CHECK((r = reserve(&p, "empty", "")) && strcmp(r, "192.168.3.9") == 0);
	CHECK(addr_pool_lookup(&p, "web-2") == ip("192.168.3.50"));
	CHECK(addr_pool_lookup(&p, "nobody") == 0);
	/* Fill the rest: 253 usable addresses in a /24. */
	char name[32];
	int ok = 0;
	for (int i = 0; i < 300; i++) {
		uint32_t a;
		snprintf(name, sizeof(name), "fill-%d", i);
		if (addr_pool_reserve(&p, name, NULL, &a, &e) == 0)
			ok++;
		else
			break;
	}
	CHECK(ok == 253 - 9);  /* 9 names reserved above */
	CHECK(e.code == -ENOSPC && strcmp(e.msg, "no free address in 192.168.3.0/24") == 0);
	addr_pool_fini(&p);
}

static void test_tiny(void)
{
	struct addr_pool p;
	struct err e = {0};
	uint32_t a;
	const char *r;
	/* /30: network .0, gateway .1, one member .2, broadcast .3. */
	CHECK(addr_pool_init(&p, "10.9.0.0/30", &e) == 0);
	CHECK((r = reserve(&p, "a", "10.9.0.3")) && strcmp(r, "10.9.0.2") == 0);
	CHECK(addr_pool_reserve(&p, "b", "10.9.0.2", &a, &e) == -ENOSPC);
	CHECK(strcmp(e.msg, "no free address in 10.9.0.0/30") == 0);
	err_clear(&e);
	CHECK(addr_pool_reserve(&p, "a", NULL, &a, &e) == 0 && a == ip("10.9.0.2"));
	addr_pool_fini(&p);
	CHECK(addr_pool_init(&p, "10.9.0.0/31", &e) == -EINVAL);
	CHECK(addr_pool_init(&p, "10.9.0.1/30", &e) == -EINVAL);
	CHECK(addr_pool_init(&p, "nonsense", &e) == -EINVAL && strstr(e.msg, "invalid subnet"));
}

int main(void)
{
	test_parse();
	test_subnet_next();
	test_pool();
	test_tiny();
	printf("addr_test: ok\n");
	return 0;
}
