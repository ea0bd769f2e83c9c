/* mini_guest_test.c - the guest contract of the mini image on a cluster
 * network (suite "vm"): two members booted from seeds that list both in
 * /etc/hosts, in a private network namespace. Checks the default route
 * from the v1 network-config, `/` 0755, ping of the sibling as the plain
 * user (ping_group_range), by address and by name, /etc/hosts (both
 * members, own name on its address), sudo without a name-resolution
 * warning, and the update of a running member's hosts block (what `up`
 * does to siblings when a member joins): block replaced, the rest kept. */
#include "vmtest.h"

#include "client/orch/plan.h"
#include "client/seed.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct run {
	bool ready_called, exited_called;
	int ready_status;
	char msg[2048];
};

static void on_ready(void *data, int status, const char *msg)
{
	struct run *r = data;
	r->ready_called = true;
	r->ready_status = status;
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
}

static void on_exited(void *data, bool unexpected, const char *msg)
{
	struct run *r = data;
	r->exited_called = true;
	snprintf(r->msg, sizeof(r->msg), "%s%s", unexpected ? "unexpected: " : "", msg ? msg : "");
}

static const struct vmm_callbacks cbs = {on_ready, on_exited};

static struct vmm_vm *boot(uv_loop_t *loop, const struct vt_env *env, const struct vt_member *m,
			   struct run *r)
{
	memset(r, 0, sizeof(*r));
	struct vmm_boot_spec spec;
	vt_spec(env, m, &spec);
	struct vmm_vm *vm = NULL;
	struct err e = {0};
	double t0 = vt_now();
	VT_CHECK(vmm_qemu_driver.boot(loop, &spec, &cbs, r, &vm, &e) == 0, "boot: %s", e.msg);
	vt_run_until(loop, &r->ready_called, 300);
	VT_CHECK(r->ready_status == 0, "boot failed: %s", r->msg);
	fprintf(stderr, "  %s ready after %.2f s\n", m->name, vt_now() - t0);
	return vm;
}

/* The command's stdout (first line) must be want, status 0. */
static void expect_out(const struct ssh_target *t, const char *cmd, const char *want)
{
	int st = -1;
	char *out = vt_ssh(t, cmd, &st);
	out[strcspn(out, "\n")] = '\0';
	VT_CHECK(st == 0 && strcmp(out, want) == 0, "'%s' gave status %d output \"%s\", want \"%s\"",
		 cmd, st, out, want);
	free(out);
}

static char *expect_ok(const struct ssh_target *t, const char *cmd)
{
	int st = -1;
	char *out = vt_ssh(t, cmd, &st);
	VT_CHECK(st == 0, "'%s' exited %d: %s", cmd, st, out);
	return out;
}

static void check_member(const struct ssh_target *t, const char *self_ip, const char *sib,
			 const char *sib_ip)
{
	char cmd[256], want[128];
	expect_out(t, "ip route | awk '/^default/ {print $2, $3, $4, $5}'", "via 192.168.77.1 dev eth0");
	expect_out(t, "stat -c %a /", "755");
	expect_out(t, "cat /proc/sys/net/ipv4/ping_group_range | tr -s '\\t ' ' '", "0 2147483647");
	expect_out(t, "id -u", "1000");
	expect_out(t, "command -v ping", "/bin/ping");
	snprintf(cmd, sizeof(cmd), "ping -c 1 -W 5 %s > /dev/null && echo ok", sib_ip);
	expect_out(t, cmd, "ok");
	snprintf(cmd, sizeof(cmd), "ping -c 1 -W 5 %s | head -n 1 | cut -d' ' -f2,3", sib);
	snprintf(want, sizeof(want), "%s (%s):", sib, sib_ip);
	expect_out(t, cmd, want);
	/* Own name on its own address; sudo resolves it without a warning. */
	expect_out(t, "awk -v h=$(hostname) '$2 == h {print $1}' /etc/hosts", self_ip);
	snprintf(cmd, sizeof(cmd), "awk '$2 == \"%s\" {print $1}' /etc/hosts", sib);
	expect_out(t, cmd, sib_ip);
	expect_out(t, "sudo -n true 2>&1 | wc -c", "0");
}

/* The running-member update: the marked block replaced, the rest kept. */
static void check_push(const struct ssh_target *t)
{
	free(expect_ok(t, "sudo sh -c 'echo 10.9.9.9 mine >> /etc/hosts'"));
	static const struct seed_host three[] = { {"hm-1", "192.168.77.2"}, {"hm-2", "192.168.77.3"},
						   {"hm-3", "192.168.77.4"} };
	char *block = seed_hosts_block(three, 3);
	VT_CHECK(block, "block");
	struct err e = {0};
	double t0 = vt_now();
	VT_CHECK(orch_hosts_push(t, block, &e) == 0, "push: %s", e.msg);
	fprintf(stderr, "  hosts block pushed in %.2f s\n", vt_now() - t0);
	char *hosts = expect_ok(t, "cat /etc/hosts");
	VT_CHECK(strstr(hosts, block) && strstr(hosts, "127.0.0.1 localhost\n") &&
		 strstr(hosts, "10.9.9.9 mine\n"), "after the push:\n%s", hosts);
	char *again = strstr(hosts, SEED_HOSTS_BEGIN);
	VT_CHECK(again && !strstr(again + 1, SEED_HOSTS_BEGIN), "two blocks:\n%s", hosts);
	free(hosts);
	free(block);
	expect_out(t, "stat -c %a /etc/hosts", "644");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--fleetbox-pdeath-exec") == 0)
		return vmm_pdeath_exec_main(argc, argv);
	if (geteuid() != 0) {
		fprintf(stderr, "needs root (network namespace, tap)\n");
		return 77;
	}
	setenv("FLEETBOX_ACCEL", getenv("FLEETBOX_ACCEL") ? getenv("FLEETBOX_ACCEL") : "auto", 1);
	struct vt_env env;
	vt_env_init(&env);
	vt_netns_setup();
	vt_tap_add("fbt2");
	vt_tap_add("fbt3");
	static const struct seed_host hosts[] = { {"hm-1", "192.168.77.2"}, {"hm-2", "192.168.77.3"} };
	env.hosts = hosts;
	env.n_hosts = 2;
	struct vt_member m1, m2;
	vt_member_init(&env, &m1, "hm-1", 2, NULL, NULL, 0);
	vt_member_init(&env, &m2, "hm-2", 3, NULL, NULL, 0);
	struct ssh_target t1, t2;
	vt_target(&env, &m1, &t1);
	vt_target(&env, &m2, &t2);
	uv_loop_t loop;
	VT_CHECK(uv_loop_init(&loop) == 0, "loop");
	struct run r1, r2;
	struct vmm_vm *vm1 = boot(&loop, &env, &m1, &r1);
	struct vmm_vm *vm2 = boot(&loop, &env, &m2, &r2);
	check_member(&t1, m1.ip, "hm-2", m2.ip);
	check_member(&t2, m2.ip, "hm-1", m1.ip);
	check_push(&t1);
	vmm_qemu_driver.stop(vm1, TO_GRACE_MINI_MS);
	vmm_qemu_driver.stop(vm2, TO_GRACE_MINI_MS);
	vt_run_until(&loop, &r1.exited_called, 60);
	vt_run_until(&loop, &r2.exited_called, 60);
	VT_CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0, "loop still busy");
	VT_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles leaked");
	vt_env_fini(&env);
	printf("ok\n");
	return 0;
}
