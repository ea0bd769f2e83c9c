/* nstest.h - helpers for the networking tests. Every test calls nstest_enter()
 * first: it moves the process into a fresh network namespace and refuses to go
 * on unless that namespace is really private (only `lo` in it), so no test can
 * ever touch the host's interfaces. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); exit(1); } } while (0)
#define CHECK_OK(call, e) do { int r_ = (call); if (r_ < 0) { fprintf(stderr, "%s:%d: %s failed: %d %s\n", __FILE__, __LINE__, #call, r_, (e).msg); exit(1); } } while (0)

/* Private netns + lo up; exit(77) (skip) without privileges, exit(1) otherwise. */
void nstest_enter(void);
/* mkdtemp under /tmp; caller rm_rf()s it. */
char *nstest_tmp_root(void);
bool nstest_link_exists(const char *name);
bool nstest_table_exists(const char *table);
/* Number of nftables tables in the namespace. */
int nstest_table_count(void);
bool nstest_record_exists(const char *root, const char *bridge);
/* A veth "uplink" (peer <name>p) with addr/len and a default route via gw, forwarding = fwd. */
void nstest_uplink(const char *name, const char *addr, int len, const char *gw, int fwd);
int nstest_fwd(const char *ifname);
void nstest_veth(const char *name, const char *peer);
/* Moves a link into the namespace nsfd refers to. */
void nstest_link_move(const char *name, int nsfd);
/* dst may be NULL with len 0 (default route). */
void nstest_route(const char *dst, int len, const char *gw, const char *dev);
void nstest_addr_up(const char *dev, const char *addr, int len);
double nstest_now_ms(void);
