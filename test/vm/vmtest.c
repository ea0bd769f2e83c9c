/* vmtest.c - see vmtest.h. */
#include "vmtest.h"

#include "client/ssh/keys.h"
#include "client/seed.h"
#include "client/ssh/ssh.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double vt_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const char *first, ...)
{
	struct cmd c;
	cmd_init(&c, first);
	va_list ap;
	va_start(ap, first);
	for (const char *a; (a = va_arg(ap, const char *));)
		cmd_add(&c, a);
	va_end(ap);
	struct err e = {0};
	int r = cmd_run(&c, NULL, &e);
	VT_CHECK(r == 0, "%s", e.msg);
	cmd_fini(&c);
}

void vt_netns_setup(void)
{
	VT_CHECK(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (run as root)", strerror(errno));
	run("ip", "link", "set", "lo", "up", NULL);
	run("ip", "link", "add", "fbtbr0", "type", "bridge", NULL);
	run("ip", "addr", "add", "192.168.77.1/24", "dev", "fbtbr0", NULL);
	run("ip", "link", "set", "fbtbr0", "up", NULL);
}

void vt_tap_add(const char *tap)
{
	run("ip", "tuntap", "add", tap, "mode", "tap", NULL);
	run("ip", "link", "set", tap, "master", "fbtbr0", NULL);
	run("ip", "link", "set", tap, "up", NULL);
}

static void progress(void *data, const char *line)
{
	fprintf(stderr, "  [image] %s\n", line);
}

void vt_env_init(struct vt_env *env)
{
	memset(env, 0, sizeof(*env));
	snprintf(env->root, sizeof(env->root), "/var/tmp/fbvmtest-XXXXXX");
	VT_CHECK(mkdtemp(env->root), "mkdtemp: %s", strerror(errno));
	setenv("FLEETBOX_HOME", env->root, 1);
	struct err e = {0};
	/* The image cache: the suite's shared one (meson sets FLEETBOX_CACHE),
	 * an older FLEETBOX_TEST_IMAGE_DIR, else a private one: never the
	 * user's own. */
	const char *dir = getenv("FLEETBOX_TEST_IMAGE_DIR");
	if (!getenv("FLEETBOX_CACHE") && dir && *dir) {
		setenv("FLEETBOX_CACHE", dir, 1);
	} else if (!getenv("FLEETBOX_CACHE")) {
		char own[sizeof(env->root) + 8];
		snprintf(own, sizeof(own), "%s/cache", env->root);
		setenv("FLEETBOX_CACHE", own, 1);
	}
	double t0 = vt_now();
	VT_CHECK(image_resolve(env->root, "mini", progress, NULL, &env->img, &e) == 0, "%s", e.msg);
	fprintf(stderr, "  mini image ready in %.1f s\n", vt_now() - t0);
	char *priv = NULL;
	VT_CHECK(keys_generate("fleetbox-test", &priv, &env->auth_pub, &e) == 0, "%s", e.msg);
	snprintf(env->key_path, sizeof(env->key_path), "%s/id_ed25519", env->root);
	VT_CHECK(file_write_atomic(env->key_path, priv, strlen(priv), 0600) == 0, "write key");
	free(priv);
}

void vt_env_fini(struct vt_env *env)
{
	free(env->auth_pub);
	if (!getenv("FLEETBOX_TEST_KEEP"))
		rm_rf(env->root);
}

void vt_member_init(struct vt_env *env, struct vt_member *m, const char *name, int host,
		    const char *const *guest_paths, const char *const *fixture_imgs, size_t n)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	VT_CHECK(wire_member_dir(env->root, name, m->dir, sizeof(m->dir)) == 0, "member dir");
	VT_CHECK(mkdir_p(m->dir, 0755) == 0, "mkdir %s", m->dir);
	snprintf(m->disk, sizeof(m->disk), "%s/disk", m->dir);
	snprintf(m->seed, sizeof(m->seed), "%s/seed.iso", m->dir);
	snprintf(m->serial, sizeof(m->serial), "%s/serial.log", m->dir);
	snprintf(m->ip, sizeof(m->ip), "192.168.77.%d", host);
	snprintf(m->tap, sizeof(m->tap), "fbt%d", host);
	wire_mac(name, m->mac);
	struct err e = {0};
	VT_CHECK(disk_create(&env->img, m->disk, 2048, &e) == 0, "%s", e.msg);
	char *hpriv = NULL, *hpub = NULL;
	VT_CHECK(keys_generate(name, &hpriv, &hpub, &e) == 0, "%s", e.msg);
	snprintf(m->hostkey_pub, sizeof(m->hostkey_pub), "%.*s", (int)strcspn(hpub, "\n"), hpub);
	struct seed_mount mounts[4];
	for (size_t i = 0; i < n && i < 4; i++) {
		static char labels[4][16];
		snprintf(labels[i], sizeof(labels[i]), "FBFIX%zu", i);
		mounts[i].label = labels[i];
		mounts[i].guest_path = guest_paths[i];
		m->fixtures[i] = fixture_imgs[i];
	}
	m->n_fixtures = n;
	struct seed_params p = {
		.hostname = name, .instance_id = name, .user = "fleetbox",
		.authorized_key = env->auth_pub, .host_key_priv = hpriv, .host_key_pub = hpub,
		.mac = m->mac, .ip = m->ip, .prefix_len = 24, .gateway = "192.168.77.1",
		.mounts = mounts, .n_mounts = n, .hosts = env->hosts, .n_hosts = env->n_hosts,
	};
	VT_CHECK(seed_write(m->seed, &p, &e) == 0, "%s", e.msg);
	free(hpriv);
	free(hpub);
}

void vt_spec(const struct vt_env *env, const struct vt_member *m, struct vmm_boot_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->name = m->name;
	s->member_dir = m->dir;
	s->disk_path = m->disk;
	s->seed_path = m->seed;
	s->fixture_paths = m->fixtures;
	s->n_fixtures = m->n_fixtures;
	s->serial_log_path = m->serial;
	s->kernel_path = env->img.kernel;
	s->initrd_path = env->img.initrd;
	s->cmdline = env->img.cmdline;
	s->cpus = 1;
	s->memory_bytes = 512ull << 20;
	s->mac = m->mac;
	s->ip = m->ip;
	s->gateway = "192.168.77.1";
	s->prefix_len = 24;
	s->tap = m->tap;
}

void vt_target(const struct vt_env *env, const struct vt_member *m, struct ssh_target *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", m->name);
	snprintf(t->host, sizeof(t->host), "%s", m->ip);
	t->port = 22;
	snprintf(t->user, sizeof(t->user), "fleetbox");
	snprintf(t->key_path, sizeof(t->key_path), "%s", env->key_path);
	snprintf(t->hostkey_pub, sizeof(t->hostkey_pub), "%s", m->hostkey_pub);
	t->connect_timeout_ms = 30000;
}

char *vt_ssh(const struct ssh_target *t, const char *cmd, int *status)
{
	struct ssh_result res = {0};
	struct err e = {0};
	int r = ssh_exec(t, cmd, &res, &e);
	VT_CHECK(r == 0, "ssh %s: %s", cmd, e.msg);
	*status = res.st.exit_status;
	if (res.st.exit_status != 0)
		fprintf(stderr, "  ssh '%s' exited %d: %s\n", cmd, res.st.exit_status, res.combined);
	char *out = strdup(res.out);
	ssh_result_fini(&res);
	return out;
}

void vt_run_until(uv_loop_t *loop, bool *cond, double seconds)
{
	double end = vt_now() + seconds;
	while (!*cond && vt_now() < end)
		uv_run(loop, UV_RUN_ONCE);
	VT_CHECK(*cond, "timed out after %.0f s", seconds);
}
