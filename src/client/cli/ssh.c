/* cli/ssh.c - `fleetbox ssh`, `fleetbox cp`, `fleetbox ssh-config`.
 * Exit codes of ssh follow OpenSSH: the remote command's status (128+N when
 * it was killed by signal N), 255 for every fleetbox or connection error. cp
 * and ssh-config exit 0/1. Errors print "error: <msg>". */
#include "client/cli/cli.h"
#include "client/ssh/config.h"
#include "client/ssh/copy.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "client/store.h"
#include "rpc/wire.h"
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SSH_ERR 255

/* ---- ssh ---- */

struct ssh_args {
	const char *name;
	char **words; /* the remote command, NULL for a shell */
	int nwords;
	int tty;      /* 1 -t, -1 -T, 0 automatic */
	const char *user; /* --root / -u */
};

/* Options may come before and after NAME; the first word after NAME (or
 * everything after "--") is the remote command, as with OpenSSH. */
static int parse_ssh(int argc, char **argv, struct ssh_args *a)
{
	memset(a, 0, sizeof(*a));
	struct cli_parse p;
	cli_parse_init(&p, "ssh", cli_command_find("ssh")->opts, argc, argv);
	int c;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (c == CLI_WORD && !a->name) {
			a->name = p.value;
		} else if (c == CLI_WORD) {
			p.i--; /* the command starts at this word */
			a->words = cli_rest(&p, &a->nwords);
			break;
		} else if (c == 't' || c == 'T') {
			a->tty = c == 't' ? 1 : -1;
		} else if (c == 'r') {
			a->user = "root";
		} else if (c == 'u') {
			a->user = p.value;
		}
	}
	if (!a->name)
		return cli_usage_error("ssh", "missing NAME");
	return 0;
}

/* The remote command line: the words (see ssh_command_join), run as the
 * requested user through the guest's sudo; NULL words = a login shell. */
static char *remote_command(const struct ssh_args *a)
{
	char *line = a->nwords ? ssh_command_join(a->nwords, a->words) : NULL;
	if (!a->user || !strcmp(a->user, "fleetbox"))
		return line ? line : NULL;
	char *qu = ssh_quote(a->user), *ql = line ? ssh_quote(line) : NULL, *out = NULL;
	int n = qu ? (ql ? asprintf(&out, "sudo -n -u %s -- sh -c %s", qu, ql)
			 : asprintf(&out, "sudo -n -i -u %s", qu))
		   : -1;
	free(qu);
	free(ql);
	free(line);
	return n < 0 ? NULL : out;
}

struct watch {
	const char *root, *name;
};

static bool member_stopped(void *data)
{
	const struct watch *w = data;
	return !store_member_running(w->root, w->name, NULL);
}

int cli_ssh(const char *root, int argc, char **argv)
{
	struct ssh_args a;
	if (parse_ssh(argc, argv, &a))
		return SSH_ERR;
	struct ssh_target t;
	struct err e = { 0 };
	if (target_resolve(root, a.name, &t, &e) < 0)
		return cli_error("%s", e.msg), SSH_ERR;
	char *cmd = remote_command(&a);
	if ((a.nwords || (a.user && strcmp(a.user, "fleetbox"))) && !cmd)
		return cli_error("out of memory"), SSH_ERR;
	bool pty = a.tty > 0 || (a.tty == 0 && isatty(0) && (a.nwords == 0 || isatty(1)));
	log_debug("ssh %s@%s (%s:%d)%s: %s", t.user, a.name, t.host, t.port, pty ? " with a pty" : "",
		  cmd ? cmd : "(login shell)");
	struct watch w = { root, a.name };
	struct ssh_session_opts o = {
		.cmd = cmd, .pty = pty, .in_fd = 0, .out_fd = 1, .err_fd = 2,
		.gone = member_stopped, .data = &w, .gone_why = "was stopped",
	};
	struct ssh_status st = { 0 };
	int r = ssh_session(&t, &o, &st, &e);
	free(cmd);
	if (r < 0 && pty && isatty(2))
		fputc('\n', stderr); /* the cursor may sit after a remote prompt */
	if (r < 0)
		return cli_error("%s", e.msg), SSH_ERR;
	return st.exit_status & 0xff;
}

/* ---- cp ---- */

/* "NAME:/path" -> name and path; 0 when arg is not of that form. */
static int split_remote(const char *arg, char *name, size_t nlen, const char **path)
{
	const char *colon = strchr(arg, ':');
	if (!colon || (size_t)(colon - arg) >= nlen || colon == arg)
		return 0;
	memcpy(name, arg, (size_t)(colon - arg));
	name[colon - arg] = '\0';
	if (!wire_name_valid(name))
		return 0;
	*path = colon + 1;
	return 1;
}

/* Bytes and rate on stderr, redrawn in place at most 5 times a second, from
 * half a second on (quick copies print nothing). */
struct meter {
	const char *what;
	double t0, last;
	bool shown;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void human(double b, char *out, size_t len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;
	while (b >= 1024 && i < 4)
		b /= 1024, i++;
	snprintf(out, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void on_progress(void *data, uint64_t bytes, uint64_t total, bool done)
{
	struct meter *m = data;
	double now = now_s();
	if (!done && (now - m->t0 < 0.5 || now - m->last < 0.2))
		return;
	if (done && !m->shown)
		return;
	m->last = now;
	m->shown = true;
	char b[32], rate[32], pct[16] = "";
	human((double)bytes, b, sizeof(b));
	human(now > m->t0 ? (double)bytes / (now - m->t0) : 0, rate, sizeof(rate));
	if (total && !done)
		snprintf(pct, sizeof(pct), "  %3d%%", (int)(bytes * 100 / (total + 1)));
	fprintf(stderr, "\r\033[K%s  %s  %s/s%s%s", m->what, b, rate, pct,
		done ? "  done\n" : "");
	fflush(stderr);
}

struct cp_args {
	const char *src, *dst, *user;
	bool quiet;
};

static int parse_cp(int argc, char **argv, struct cp_args *a)
{
	memset(a, 0, sizeof(*a));
	struct cli_parse p;
	cli_parse_init(&p, "cp", cli_command_find("cp")->opts, argc, argv);
	int c, n = 0;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (c == CLI_WORD && n >= 2)
			return cli_usage_error("cp", "unexpected argument \"%s\" (SRC DST)", p.value);
		if (c == CLI_WORD)
			*(n++ ? &a->dst : &a->src) = p.value;
		else if (c == 'r')
			a->user = "root";
		else if (c == 'u')
			a->user = p.value;
		else if (c == 'q')
			a->quiet = true;
	}
	if (n < 2)
		return cli_usage_error("cp", "want SRC DST (exactly one is NAME:/abs/path)");
	return 0;
}

int cli_cp(const char *root, int argc, char **argv)
{
	struct cp_args a;
	if (parse_cp(argc, argv, &a))
		return 1;
	char n1[FB_NAME_MAX + 1], n2[FB_NAME_MAX + 1];
	const char *p1 = NULL, *p2 = NULL;
	int r1 = split_remote(a.src, n1, sizeof(n1), &p1);
	int r2 = split_remote(a.dst, n2, sizeof(n2), &p2);
	if (r1 == r2)
		return cli_error("cp: exactly one of SRC and DST must be NAME:/abs/path");
	const char *gpath = r1 ? p1 : p2;
	if (gpath[0] != '/')
		return cli_error("cp: guest path must be absolute: \"%s\"", gpath);
	struct ssh_target t;
	struct err e = { 0 };
	if (target_resolve(root, r1 ? n1 : n2, &t, &e) < 0)
		return cli_error("%s", e.msg);
	struct meter m = { .what = r1 ? a.src : a.dst, .t0 = now_s() };
	struct copy_opts o = {
		.sudo_user = a.user && strcmp(a.user, t.user) ? a.user : NULL,
		.progress = !a.quiet && isatty(2) ? on_progress : NULL,
		.progress_data = &m,
	};
	log_debug("cp %s -> %s as %s", a.src, a.dst, o.sudo_user ? o.sudo_user : t.user);
	int r = r1 ? copy_from_guest(&t, p1, a.dst, &o, &e) : copy_to_guest(&t, a.src, p2, &o, &e);
	if (r < 0 && m.shown)
		fputc('\n', stderr);
	return r < 0 ? cli_error("%s", e.msg) : 0;
}

/* ---- ssh-config ---- */

struct sshcfg {
	char **names;
	size_t n;
	struct sshconfig_member *m;
	struct ssh_target *t;
	char (*keys)[256];
};

static void sshcfg_free(struct sshcfg *s)
{
	free(s->m);
	free(s->t);
	free(s->keys);
	store_names_free(s->names, s->n);
	memset(s, 0, sizeof(*s));
}

/* Host key and address of every member (the key is in the store whether or
 * not the member runs; the address only while it runs). */
static int sshcfg_load(const char *root, struct sshcfg *s)
{
	memset(s, 0, sizeof(*s));
	int r = store_list_members(root, &s->names, &s->n);
	if (r < 0)
		return cli_error("cannot list members in %s: %s", root, strerror(-r));
	size_t k = s->n ? s->n : 1;
	s->m = calloc(k, sizeof(*s->m));
	s->t = calloc(k, sizeof(*s->t));
	s->keys = calloc(k, sizeof(*s->keys));
	if (!s->m || !s->t || !s->keys)
		return cli_error("out of memory");
	for (size_t i = 0; i < s->n; i++) {
		struct err e = { 0 };
		s->m[i].name = s->names[i];
		char pub[PATH_MAX];
		FILE *f = NULL;
		if (store_member_file(root, s->names[i], "ssh_host_ed25519_key.pub", pub, sizeof(pub)) == 0)
			f = fopen(pub, "re");
		if (f && fgets(s->keys[i], sizeof(s->keys[i]), f))
			s->m[i].hostkey_pub = s->keys[i];
		if (f)
			fclose(f);
		if (store_member_running(root, s->names[i], NULL) &&
		    target_resolve(root, s->names[i], &s->t[i], &e) == 0)
			s->m[i].ip = s->t[i].host;
	}
	return 0;
}

/* <root>/ssh_config with every member, and known_hosts. */
static int sshcfg_write(const char *root, const struct sshcfg *s)
{
	struct err e = { 0 };
	if (sshconfig_write_known_hosts(root, s->m, s->n, &e) < 0 ||
	    sshconfig_write_file(root, s->m, s->n, &e) < 0)
		return cli_error("%s", e.msg);
	return 0;
}

void cli_ssh_config_refresh(const char *root)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/ssh_config", root);
	if (access(p, F_OK) != 0)
		return; /* the user never asked for it */
	struct sshcfg s;
	if (sshcfg_load(root, &s) == 0)
		(void)sshcfg_write(root, &s);
	sshcfg_free(&s);
}

int cli_ssh_config(const char *root, int argc, char **argv)
{
	struct cli_parse p;
	cli_parse_init(&p, "ssh-config", cli_command_find("ssh-config")->opts, argc, argv);
	char **pats = calloc((size_t)argc + 1, sizeof(char *)), **keep = NULL;
	size_t npats = 0, nkeep = 0;
	int c, rc = pats ? 0 : cli_error("out of memory");
	while (rc == 0 && (c = cli_next(&p)) != CLI_END)
		if (c == CLI_BAD)
			rc = 1;
		else
			pats[npats++] = (char *)p.value;
	if (rc == 0 && npats)
		rc = cli_expand(root, "ssh-config", pats, npats, false, false, &keep, &nkeep);
	free(pats);
	struct sshcfg s = { 0 };
	if (rc == 0 && (rc = sshcfg_load(root, &s)) == 0 && (rc = sshcfg_write(root, &s)) == 0) {
		/* stdout: only the selected members */
		size_t o = 0;
		for (size_t i = 0; i < s.n; i++) {
			bool in = !npats;
			for (size_t j = 0; j < nkeep && !in; j++)
				in = !strcmp(keep[j], s.names[i]);
			if (in)
				s.m[o++] = s.m[i];
		}
		char *txt = sshconfig_render(root, s.m, o);
		if (!txt)
			rc = cli_error("out of memory");
		else
			fputs(txt, stdout);
		free(txt);
		if (rc == 0 && isatty(2))
			cli_note("wrote %s/ssh_config for every member; include it once from ~/.ssh/config "
				 "(Include %s/ssh_config) instead of copying this output: addresses change "
				 "across restarts and up rewrites the file", root, root);
	}
	sshcfg_free(&s);
	store_names_free(keep, nkeep);
	return rc;
}
