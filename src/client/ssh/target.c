#include "client/ssh/target.h"
#include "client/ctl.h"
#include "client/ssh/ssh.h"
#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int target_check_running(const char *root, const char *name, struct err *e)
{
	if (!wire_name_valid(name))
		return err_set(e, -EINVAL, "invalid name \"%s\"", name);
	if (!store_member_exists(root, name) && !store_member_running(root, name, NULL))
		return err_set(e, -ENOENT, "no such member: %s", name);
	if (!store_member_running(root, name, NULL))
		return err_set(e, -ENOTCONN, "%s is not running (stopped)", name);
	return 0;
}

int target_from_status(const char *root, const char *name, const struct rpc_status *st,
		       struct ssh_target *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (st->state != FB_STATE_RUNNING || !st->ip || !*st->ip)
		return err_set(e, -ENOTCONN, "%s is %s%s%s", name, wire_state_name(st->state),
			       st->error && *st->error ? ": " : "", st->error ? st->error : "");
	snprintf(out->name, sizeof(out->name), "%s", name);
	snprintf(out->host, sizeof(out->host), "%s", st->ip);
	out->port = 22;
	snprintf(out->user, sizeof(out->user), "fleetbox");
	snprintf(out->key_path, sizeof(out->key_path), "%s/id_ed25519", root);
	char pub[PATH_MAX];
	store_member_file(root, name, "ssh_host_ed25519_key.pub", pub, sizeof(pub));
	char *s;
	int r;
	if ((r = file_read_trimmed(pub, 4096, &s, NULL)) < 0)
		return err_set(e, r, "%s: no pinned host key (%s: %s)", name, pub, strerror(-r));
	snprintf(out->hostkey_pub, sizeof(out->hostkey_pub), "%s", s);
	free(s);
	out->connect_timeout_ms = SSH_DEFAULT_CONNECT_TIMEOUT_MS;
	return 0;
}

int target_resolve(const char *root, const char *name, struct ssh_target *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	int r = target_check_running(root, name, e);
	if (r < 0)
		return r;
	struct rpc_status *st = NULL;
	if ((r = ctl_status(root, name, &st, e)) < 0)
		return r;
	r = target_from_status(root, name, st, out, e);
	rpc_status_free(st);
	return r;
}

static long mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool transient(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -ECONNRESET || r == -EHOSTUNREACH ||
	       r == -ENETUNREACH || r == -EAGAIN || r == -EPIPE || r == -ECONNABORTED;
}

int target_wait_ssh(const struct ssh_target *t, int timeout_ms, struct err *e)
{
	long deadline = mono_ms() + timeout_ms;
	struct ssh_target tt = *t;
	for (;;) {
		long left = deadline - mono_ms();
		tt.connect_timeout_ms = left < 5000 ? (int)(left > 100 ? left : 100) : 5000;
		struct ssh_result res = { 0 };
		struct err le = { 0 };
		int r = ssh_exec(&tt, "true", &res, &le);
		ssh_result_fini(&res);
		if (r == 0)
			return 0;
		if (!transient(r) || mono_ms() >= deadline) {
			if (e)
				*e = le;
			return r;
		}
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL); /* the guest is still booting: retry at a gentle pace */
	}
}
