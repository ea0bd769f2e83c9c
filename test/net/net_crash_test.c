/* net_crash_test.c - a holder SIGKILLed with a network, two taps and a 'VMM'
 * (sleep) leaves a record; reconcile kills the orphan, removes taps, table and
 * bridge, restores forwarding and the record; a second run is a no-op. Then a
 * holder dying at every step of net_create: reconcile still reclaims it all. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"
#include "net/netint.h"
#include "net/nl.h"
#include "net/record.h"
#include "nstest.h"
#include "util/err.h"
#include "util/fileio.h"

struct crash_info {
	char bridge[16], tap1[16], tap2[16];
	pid_t vmm, other;
};

static void holder_child(const char *root, int wfd)
{
	struct err e = {0};
	struct net_config cfg = {.store_root = root, .cluster = "crash"};
	struct net *n;
	struct crash_info ci = {0};
	char ip[FB_IP_STRLEN], mac[FB_MAC_STRLEN];
	if (net_create(&cfg, &n, &e) < 0 || net_reserve(n, "c-1", NULL, ip, mac, &e) < 0 ||
	    net_reserve(n, "c-2", NULL, ip, mac, &e) < 0 || net_tap_add(n, "c-1", ci.tap1, &e) < 0 ||
	    net_tap_add(n, "c-2", ci.tap2, &e) < 0) {
		fprintf(stderr, "child: %s\n", e.msg);
		_exit(2);
	}
	/* The fake VMM: bounded lifetime, no PDEATHSIG, so it survives us; marked
	 * as c-1's VMM the way vmm_spawn marks them (reconcile checks it). */
	char mark[600];
	snprintf(mark, sizeof(mark), "FLEETBOX_VMM_OF=%s/clusters/c/c-1", root);
	pid_t vmm = fork();
	if (vmm == 0) {
		char *envp[] = { mark, NULL };
		execle("/bin/sleep", "sleep", "60", (char *)NULL, envp);
		_exit(127);
	}
	/* An unrelated process a forged record could name as c-2's VMM: it has
	 * no mark, so reconcile must leave it alone. */
	pid_t other = fork();
	if (other == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	if (vmm < 0 || other < 0 || net_tap_set_pid(n, "c-1", vmm) < 0 ||
	    net_tap_set_pid(n, "c-2", other) < 0)
		_exit(3);
	ci.other = other;
	snprintf(ci.bridge, sizeof(ci.bridge), "%s", net_bridge(n));
	ci.vmm = vmm;
	if (write(wfd, &ci, sizeof(ci)) != sizeof(ci))
		_exit(4);
	pause();  /* until SIGKILLed by the parent */
	_exit(5);
}

static void test_crash_with_taps(const char *root)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		/* Dies with the test even if a CHECK below exits early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		holder_child(root, p[1]);
	}
	close(p[1]);
	struct crash_info ci;
	struct pollfd rp = {.fd = p[0], .events = POLLIN};
	CHECK(poll(&rp, 1, 20000) == 1);  /* bounded: the child needs milliseconds */
	CHECK(read(p[0], &ci, sizeof(ci)) == sizeof(ci));
	close(p[0]);
	unsigned long long vmm_start, other_start;
	CHECK(proc_start_time(ci.vmm, &vmm_start) == 0);
	CHECK(proc_start_time(ci.other, &other_start) == 0);
	CHECK(kill(child, SIGKILL) == 0);
	int st;
	CHECK(waitpid(child, &st, 0) == child && WIFSIGNALED(st));

	/* The dead holder's state is all still there, named by its record. */
	CHECK(nstest_record_exists(root, ci.bridge));
	CHECK(nstest_link_exists(ci.bridge) && nstest_link_exists(ci.tap1) &&
	      nstest_link_exists(ci.tap2) && nstest_table_exists(ci.bridge));
	CHECK(nstest_fwd("up0") == 1);
	CHECK(proc_same(ci.vmm, vmm_start));  /* the orphan VMM is alive */

	struct net_reconcile_report rep;
	struct err e = {0};
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	printf("reconcile: seen=%d reclaimed=%d kept=%d killed=%d taps=%d bridges=%d tables=%d\n",
	       rep.records_seen, rep.records_reclaimed, rep.records_kept, rep.processes_killed,
	       rep.taps_removed, rep.bridges_removed, rep.tables_removed);
	CHECK(rep.records_seen == 1 && rep.records_reclaimed == 1 && rep.records_kept == 0);
	CHECK(rep.processes_killed == 1 && rep.taps_removed == 2);
	CHECK(rep.bridges_removed == 1 && rep.tables_removed == 1);
	CHECK(!proc_same(ci.vmm, vmm_start));  /* VMM gone (exited; a zombie at most) */
	CHECK(proc_same(ci.other, other_start)); /* the unmarked process lives on */
	kill(ci.other, SIGKILL);
	CHECK(!nstest_link_exists(ci.bridge) && !nstest_link_exists(ci.tap1) &&
	      !nstest_link_exists(ci.tap2));
	CHECK(!nstest_table_exists(ci.bridge) && !nstest_record_exists(root, ci.bridge));
	CHECK(nstest_fwd("up0") == 0);

	/* Idempotent. */
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	CHECK(rep.records_seen == 0 && rep.records_reclaimed == 0 && rep.processes_killed == 0 &&
	      rep.taps_removed == 0 && rep.bridges_removed == 0 && rep.tables_removed == 0);
}

static const char *crash_stage;

static void crash_hook(const char *stage)
{
	if (strcmp(stage, crash_stage) == 0)
		_exit(42);
}

static void test_crash_in_create(const char *root, const char *stage)
{
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		struct err e = {0};
		struct net_config cfg = {.store_root = root, .cluster = "mid"};
		struct net *n;
		crash_stage = stage;
		net_create_hook = crash_hook;
		net_create(&cfg, &n, &e);
		fprintf(stderr, "child: stage %s never reached: %s\n", stage, e.msg);
		_exit(1);
	}
	int st;
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 42);
	/* Whatever stage it died at, the record names what may exist. */
	const char *br = "fbc0a80000";
	CHECK(nstest_record_exists(root, br));
	bool had_bridge = nstest_link_exists(br), had_table = nstest_table_exists(br);
	printf("crash at %-7s: bridge=%d table=%d up0 forwarding=%d\n", stage, had_bridge,
	       had_table, nstest_fwd("up0"));

	/* The dead holder's subnet is not handed out while its record is unreclaimable;
	 * here reconcile (run by net_create) reclaims it first, so the subnet is reused. */
	struct net_reconcile_report rep;
	struct err e = {0};
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	CHECK(rep.records_seen == 1 && rep.records_reclaimed == 1 && rep.records_kept == 0);
	CHECK(rep.bridges_removed == (had_bridge ? 1 : 0));
	CHECK(rep.tables_removed == (had_table ? 1 : 0));
	CHECK(!nstest_link_exists(br) && !nstest_table_exists(br));
	CHECK(!nstest_record_exists(root, br));
	CHECK(nstest_table_count() == 0);
	CHECK(nstest_fwd("up0") == 0);
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	CHECK(rep.records_seen == 0);
}

/* net_create's own reconcile reclaims a dead holder's network before picking. */
static void test_create_reconciles(const char *root)
{
	test_crash_in_create(root, "bridge");  /* leaves nothing after its reconcile */
	pid_t child = fork();
	if (child == 0) {
		crash_stage = "ready";
		net_create_hook = crash_hook;
		struct net *n;
		net_create(&(struct net_config){.store_root = root}, &n, NULL);
		_exit(1);
	}
	int st;
	CHECK(waitpid(child, &st, 0) == child && WEXITSTATUS(st) == 42);
	CHECK(nstest_link_exists("fbc0a80000"));
	struct net *n;
	struct err e = {0};
	CHECK_OK(net_create(&(struct net_config){.store_root = root}, &n, &e), e);
	CHECK(strcmp(net_subnet(n), "192.168.0.0/24") == 0);  /* reclaimed and reused */
	CHECK(nstest_table_count() == 1);
	CHECK_OK(net_destroy(n, &e), e);
	CHECK(nstest_table_count() == 0 && nstest_fwd("up0") == 0);
}

/* A live owner's network is left alone; the same pid with another start time
 * (a reused pid) counts as dead. */
static void test_owner_identity(const char *root)
{
	struct net *n;
	struct err e = {0};
	struct net_reconcile_report rep;
	CHECK_OK(net_create(&(struct net_config){.store_root = root}, &n, &e), e);
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	CHECK(rep.records_seen == 1 && rep.records_reclaimed == 0 && rep.records_kept == 0);
	CHECK(nstest_link_exists(net_bridge(n)));

	char path[4096];
	struct net_record r;
	CHECK(record_path(root, net_bridge(n), path, sizeof(path)) == 0);
	CHECK_OK(record_load(path, &r, &e), e);
	CHECK(r.owner_pid == getpid());
	r.owner_start_time += 1;  /* as if our pid had been reused */
	CHECK(record_save(root, &r) == 0);
	record_fini(&r);
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	CHECK(rep.records_reclaimed == 1 && rep.bridges_removed == 1 && rep.tables_removed == 1);
	CHECK(!nstest_link_exists(net_bridge(n)));
	/* Destroying a network whose state is already gone is fine. */
	CHECK_OK(net_destroy(n, &e), e);
}

/* A record naming something we never create (here the uplink) is not acted on. */
static void test_forged_record(const char *root)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/networks/up0.json", root);
	const char *js = "{\"bridge\": \"up0\", \"table\": \"up0\", \"subnet\": \"10.99.0.0/24\","
			 " \"owner\": {\"pid\": 999999999, \"start_time\": 1}, \"taps\": []}";
	CHECK(file_write_atomic(path, js, strlen(js), 0600) == 0);
	struct net_reconcile_report rep;
	struct err e = {0};
	CHECK(net_reconcile(root, &rep, &e) < 0);
	printf("forged record: %s\n", e.msg);
	CHECK(rep.records_seen == 1 && rep.records_kept == 1 && rep.records_reclaimed == 0);
	CHECK(strstr(e.msg, "not a fleetbox network record"));
	CHECK(nstest_link_exists("up0"));
	CHECK(unlink(path) == 0);
}

int main(void)
{
	nstest_enter();
	unsetenv("FLEETBOX_SUBNET_RANGE");
	nstest_uplink("up0", "10.99.0.2", 24, "10.99.0.1", 0);
	char *root = nstest_tmp_root();
	test_crash_with_taps(root);
	const char *stages[] = {"record", "bridge", "address", "table", "ready"};
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		test_crash_in_create(root, stages[i]);
	test_create_reconciles(root);
	test_owner_identity(root);
	test_forged_record(root);
	CHECK(nstest_fwd("up0") == 0 && nstest_table_count() == 0);
	rm_rf(root);
	free(root);
	printf("net_crash_test: ok\n");
	return 0;
}
