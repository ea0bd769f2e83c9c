/* orch/hosts.c - every member of a cluster resolves every other by name.
 *
 * The seed carries /etc/hosts (seed.c: localhost lines, then the cluster
 * between "# fleetbox cluster begin/end" markers), which covers the members
 * this `up` creates. Two kinds of member would keep an old list: siblings
 * already running in the holder when new members join (fb_cluster_add, or
 * `up web-4` next to web-1..3), and stopped members booted again (cloud-init
 * runs write_files once per instance, not per boot). Those get the block
 * replaced over SSH as root (sudo -n), the rest of their /etc/hosts kept.
 * A member that cannot be updated is reported, not fatal: the members this
 * call booted are up and correct. */
#include "client/orch/plan.h"
#include "client/seed.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "client/store.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYNC_CONNECT_MS 10000
#define SYNC_TIMEOUT_S 30
#define HOSTS_BLOCK_MAX 60000 /* below a pipe's buffer: written before the session starts */

/* Reads the new block on stdin and replaces the marked block of /etc/hosts
 * (appending it when the file has none), atomically in /etc. Fixed text:
 * the data never becomes part of a shell command. */
static const char SYNC_SCRIPT[] =
	"set -e\n"
	"f=/etc/hosts t=/etc/.hosts.fleetbox.$$\n"
	"[ -e $f ] || : > $f\n"
	"awk -v b='" SEED_HOSTS_BEGIN "' -v e='" SEED_HOSTS_END "' "
	"'$0 == b {s = 1; next} $0 == e {s = 0; next} !s' $f > $t\n"
	"cat >> $t\n"
	"chmod 644 $t\n"
	"mv -f $t $f\n";

static int hosts_add(struct up_hosts *h, size_t *cap, const char *name, const char *ip)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->names[i], name))
			return 0;
	if (h->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		char(*names)[FB_NAME_MAX + 1] = realloc(h->names, nc * sizeof(*names));
		if (names)
			h->names = names;
		char(*ips)[FB_IP_STRLEN] = realloc(h->ips, nc * sizeof(*ips));
		if (ips)
			h->ips = ips;
		if (!names || !ips)
			return -ENOMEM;
		*cap = nc;
	}
	snprintf(h->names[h->n], sizeof(h->names[0]), "%s", name);
	snprintf(h->ips[h->n], sizeof(h->ips[0]), "%s", ip);
	h->n++;
	return 0;
}

static bool in_plan(const struct up_plan *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (!strcmp(u->m[i].name, name))
			return true;
	return false;
}

/* Running members of the plan's holder that the plan does not name. */
static int add_siblings(struct up_plan *u, struct up_hosts *h, size_t *cap)
{
	char **all;
	size_t na;
	if (!u->holder_pid || store_list_members(u->root, &all, &na) < 0)
		return 0;
	int r = 0;
	for (size_t i = 0; r == 0 && i < na; i++) {
		pid_t pid;
		struct member_config c;
		struct err e = { 0 };
		if (in_plan(u, all[i]) || !store_member_running(u->root, all[i], &pid) ||
		    pid != u->holder_pid || store_config_read(u->root, all[i], &c, &e) < 0)
			continue;
		if (c.ip[0])
			r = hosts_add(h, cap, all[i], c.ip);
		store_config_fini(&c);
	}
	store_names_free(all, na);
	return r;
}

static int host_cmp(const void *a, const void *b)
{
	return strcmp(((const struct seed_host *)a)->name, ((const struct seed_host *)b)->name);
}

/* Sorted by name: every member's block is the same text. */
int up_hosts_collect(struct up_plan *u, struct up_hosts *h)
{
	memset(h, 0, sizeof(*h));
	size_t cap = 0;
	int r = 0;
	for (size_t i = 0; r == 0 && i < u->n; i++)
		if (u->m[i].ip[0])
			r = hosts_add(h, &cap, u->m[i].name, u->m[i].ip);
	if (r == 0)
		r = add_siblings(u, h, &cap);
	if (r == 0 && h->n && !(h->v = calloc(h->n, sizeof(*h->v))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < h->n; i++)
		h->v[i] = (struct seed_host){ h->names[i], h->ips[i] };
	if (r == 0 && h->n > 1)
		qsort(h->v, h->n, sizeof(*h->v), host_cmp);
	if (r < 0) {
		up_hosts_fini(h);
		return err_set(&u->e, r, "out of memory");
	}
	return 0;
}

void up_hosts_fini(struct up_hosts *h)
{
	free(h->v);
	free(h->names);
	free(h->ips);
	memset(h, 0, sizeof(*h));
}

/* The block on a pipe, fully written before the session reads it. */
static int block_pipe(const char *block, int *rfd, struct err *e)
{
	size_t len = strlen(block);
	if (len > HOSTS_BLOCK_MAX)
		return err_set(e, -E2BIG, "the cluster's hosts block is %zu bytes (at most %d)", len,
			       HOSTS_BLOCK_MAX);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, -errno, "pipe: %s", strerror(errno));
	ssize_t w = write(p[1], block, len);
	close(p[1]);
	if (w != (ssize_t)len) {
		close(p[0]);
		return err_set(e, -EIO, "pipe write: %s", w < 0 ? strerror(errno) : "short");
	}
	*rfd = p[0];
	return 0;
}

int orch_hosts_push(const struct ssh_target *t, const char *block, struct err *e)
{
	char *q = ssh_quote(SYNC_SCRIPT);
	char cmd[2048];
	if (!q || snprintf(cmd, sizeof(cmd), "sudo -n timeout %d sh -c %s", SYNC_TIMEOUT_S, q) >=
			  (int)sizeof(cmd)) {
		free(q);
		return err_set(e, -ENOMEM, "out of memory");
	}
	free(q);
	int fd = -1;
	int r = block_pipe(block, &fd, e);
	if (r < 0)
		return r;
	struct ssh_io io = { .stdin_fd = fd };
	struct ssh_status st;
	r = ssh_exec_stream(t, cmd, &io, &st, e);
	close(fd);
	if (r == 0 && (st.exit_status != 0 || st.exit_signal))
		r = err_set(e, -EIO, "updating /etc/hosts exited with status %d", st.exit_status);
	return r;
}

static int sync_one(const struct up_plan *u, const char *name, const char *block, struct err *e)
{
	struct ssh_target t;
	int r = target_resolve(u->root, name, &t, e);
	if (r < 0)
		return r;
	t.connect_timeout_ms = SYNC_CONNECT_MS;
	return orch_hosts_push(&t, block, e);
}

/* Members whose /etc/hosts this call's seeds did not write: running ones
 * (named or siblings) and stopped ones booted again. */
static bool needs_sync(const struct up_plan *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (!strcmp(u->m[i].name, name))
			return u->m[i].kind != MEMBER_NEW;
	return true;
}

void up_hosts_sync(struct up_plan *u)
{
	if (!u->to_boot || !up_confirms_ssh())
		return; /* nobody joined, or no real guest (fake VMM) */
	struct up_hosts h;
	if (up_hosts_collect(u, &h) < 0)
		return;
	char *block = seed_hosts_block(h.v, h.n);
	for (size_t i = 0; block && i < h.n; i++) {
		if (!needs_sync(u, h.v[i].name))
			continue;
		struct err e = { 0 };
		if (sync_one(u, h.v[i].name, block, &e) < 0)
			up_line(u, "warning: %s: /etc/hosts not updated: %s", h.v[i].name, e.msg);
	}
	if (!block)
		up_line(u, "warning: the cluster's /etc/hosts could not be rendered");
	free(block);
	up_hosts_fini(&h);
}
