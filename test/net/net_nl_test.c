/* net_nl_test.c - link lookups while links churn (issue 10 item 3): a child
 * process creates and deletes taps as fast as it can while we look a stable
 * bridge up by name and dump every link, thousands of times. A lookup must
 * never fail or miss, and dumps that the kernel reports interrupted
 * (NLM_F_DUMP_INTR) must be retried, not returned as EINTR. Plus the plain
 * lookup contract: found with kind/index/flags, -ENODEV, -EINVAL. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/nl.h"
#include "nstest.h"

#define STABLE_TAPS 150 /* enough links that a dump takes several messages */

static void churn(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (unsigned i = 0;; i++) {
		char name[IF_NAMESIZE];
		snprintf(name, sizeof(name), "fbz%u", i % 32);
		if (nl_tap_create(name) == 0)
			nl_link_del(name);
	}
}

static void test_lookup(void)
{
	static const uint8_t mac[6] = {0x02, 1, 2, 3, 4, 5};
	CHECK(nl_bridge_add("fbnltest", mac) == 0);
	struct nl_link l;
	CHECK(nl_link_get("fbnltest", &l) == 0);
	CHECK(!strcmp(l.name, "fbnltest") && !strcmp(l.kind, "bridge") && l.index > 0);
	CHECK(nl_tap_create("fbnltap") == 0);
	struct nl_link t;
	CHECK(nl_link_get("fbnltap", &t) == 0 && !strcmp(t.kind, "tun"));
	CHECK(nl_link_up(t.index, l.index) == 0);
	CHECK(nl_link_get("fbnltap", &t) == 0 && t.master == l.index && (t.flags & IFF_UP));
	CHECK(nl_link_get("fbnlnone", &l) == -ENODEV);
	CHECK(nl_link_get("", &l) == -EINVAL);
	CHECK(nl_link_get("0123456789abcdefg", &l) == -EINVAL);
	/* a prefix of an existing name is not that link */
	CHECK(nl_link_get("fbnltes", &l) == -ENODEV);
}

int main(void)
{
	nstest_enter();
	test_lookup();
	for (int i = 0; i < STABLE_TAPS; i++) {
		char name[IF_NAMESIZE];
		snprintf(name, sizeof(name), "fbs%d", i);
		CHECK(nl_tap_create(name) == 0);
	}
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0)
		churn();
	int lookups = 0, dumps = 0;
	double t0 = nstest_now_ms();
	while (nstest_now_ms() - t0 < 3000) { /* bounded: 3 s */
		struct nl_link l;
		int r = nl_link_get("fbnltest", &l);
		if (r != 0) {
			fprintf(stderr, "lookup %d failed: %s\n", lookups, strerror(-r));
			CHECK(0);
		}
		lookups++;
		struct nl_link *all = NULL;
		size_t n = 0;
		r = nl_link_list(&all, &n);
		if (r != 0) {
			fprintf(stderr, "dump %d failed: %s\n", dumps, strerror(-r));
			CHECK(0);
		}
		CHECK(n >= STABLE_TAPS + 3); /* lo, the bridge, the taps */
		free(all);
		dumps++;
	}
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	printf("churn: %d lookups, %d dumps, %u interrupted dumps retried, 0 failures\n", lookups,
	       dumps, nl_dump_retries);
	CHECK(nl_dump_retries > 0); /* the retry path really ran */
	return 0;
}
