/* cli/logs.c - `fleetbox logs [-f] [-n N] [--console|--holder] NAME`: the
 * member's serial console (<member dir>/serial.log, truncated at each boot)
 * and the lines of its holders' logs (<root>/runner-*.log) that name it.
 * Sources are shown like tail(1) shows several files: a "==> ... <==" header
 * whenever the source changes. -f follows both (polling; a truncated console
 * starts over) until the member is no longer served, or Ctrl-C. */
#include "client/cli/cli.h"
#include "client/store.h"
#include "rpc/wire.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOURCES 16
#define FOLLOW_POLL_MS 250
#define LINE_MAX_KEEP 8192

struct source {
	char path[PATH_MAX];
	bool holder;      /* only lines naming the member */
	off_t off;
	ino_t ino;
	char part[LINE_MAX_KEEP]; /* an incomplete last line (holder logs) */
	size_t plen;
};

struct logs {
	const char *root, *name;
	struct source src[MAX_SOURCES];
	size_t n;
	long tail;          /* -n: lines per source, -1 = all */
	bool console, holder;
	const struct source *last_shown;
};

/* The member's name as a word: not part of a longer name. */
static bool names_member(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = line; p + nl <= line + len; p++) {
		p = memmem(p, (size_t)(line + len - p), name, nl);
		if (!p)
			return false;
		char before = p > line ? p[-1] : ' ', after = p + nl < line + len ? p[nl] : ' ';
		bool wb = !(before == '-' || (before >= 'a' && before <= 'z') || (before >= '0' && before <= '9'));
		bool wa = !(after == '-' || (after >= 'a' && after <= 'z') || (after >= '0' && after <= '9'));
		if (wb && wa)
			return true;
	}
	return false;
}

static void header(struct logs *l, const struct source *s)
{
	if (l->last_shown == s)
		return;
	printf("%s==> %s%s <==\n", l->last_shown ? "\n" : "", s->path,
	       s->holder ? " (holder, lines about this member)" : " (console)");
	l->last_shown = s;
}

static void emit_line(struct logs *l, const struct source *s, const char *line, size_t len)
{
	if (s->holder && !names_member(line, len, l->name))
		return;
	header(l, s);
	fwrite(line, 1, len, stdout);
	if (!len || line[len - 1] != '\n')
		fputc('\n', stdout);
}

/* Start offset for -n N: the beginning of the Nth line from the end (of the
 * matching lines, for a holder log). */
static size_t tail_start(const struct logs *l, const struct source *s, const char *buf, size_t len)
{
	if (l->tail < 0)
		return 0;
	long seen = 0;
	size_t end = len;
	while (end > 0) {
		size_t b = end - 1;
		while (b > 0 && buf[b - 1] != '\n')
			b--;
		if (!s->holder || names_member(buf + b, end - b, l->name))
			seen++;
		if (seen > l->tail)
			return end;
		end = b;
	}
	return 0;
}

/* Prints what was added to s since the last call: 1, 0 when the file does
 * not exist (yet), -errno on a read error. */
static int drain(struct logs *l, struct source *s, bool first)
{
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || (!first && (st.st_ino != s->ino || st.st_size < s->off))) {
		s->off = 0; /* replaced or truncated: a new boot starts the log over */
		s->plen = 0;
	}
	s->ino = st.st_ino;
	size_t want = st.st_size > s->off ? (size_t)(st.st_size - s->off) : 0;
	char *buf = want ? malloc(want) : NULL;
	ssize_t got = buf ? pread(fd, buf, want, s->off) : 0;
	close(fd);
	if (got < 0) {
		free(buf);
		return -errno;
	}
	size_t start = first ? tail_start(l, s, buf, (size_t)got) : 0;
	s->off += got;
	if (!s->holder) {
		if ((size_t)got > start) {
			header(l, s);
			fwrite(buf + start, 1, (size_t)got - start, stdout);
		}
		free(buf);
		return 1;
	}
	for (size_t i = start; i < (size_t)got; i++) {
		if (s->plen < sizeof(s->part))
			s->part[s->plen++] = buf[i];
		if (buf[i] == '\n') {
			emit_line(l, s, s->part, s->plen);
			s->plen = 0;
		}
	}
	free(buf);
	return 1;
}

static bool has_source(const struct logs *l, const char *path)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->src[i].path, path))
			return true;
	return false;
}

/* Holder logs first (oldest first), then the console. New runner logs may
 * appear while following (the member restarted in another holder). */
static void find_sources(struct logs *l)
{
	DIR *d = l->holder ? opendir(l->root) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d)) && l->n < MAX_SOURCES - 1) {
		size_t len = strlen(de->d_name);
		if (strncmp(de->d_name, "runner-", 7) != 0 || len < 11 ||
		    strcmp(de->d_name + len - 4, ".log") != 0)
			continue;
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/%s", l->root, de->d_name) >= (int)sizeof(p) ||
		    has_source(l, p))
			continue;
		struct source *s = &l->src[l->n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->path, sizeof(s->path), "%s", p);
		s->holder = true;
	}
	if (d)
		closedir(d);
	char serial[PATH_MAX];
	if (l->console && store_member_file(l->root, l->name, "serial.log", serial, sizeof(serial)) == 0 &&
	    !has_source(l, serial) && l->n < MAX_SOURCES) {
		struct source *s = &l->src[l->n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->path, sizeof(s->path), "%s", serial);
	}
}

static int drain_all(struct logs *l, bool first, int *readable)
{
	for (size_t i = 0; i < l->n; i++) {
		int r = drain(l, &l->src[i], first);
		if (r < 0)
			cli_warn("cannot read %s: %s", l->src[i].path, strerror(-r));
		else if (r > 0 && readable)
			(*readable)++;
	}
	fflush(stdout);
	return 0;
}

static int follow(struct logs *l)
{
	for (;;) {
		bool alive = store_member_running(l->root, l->name, NULL);
		struct timespec ts = { 0, FOLLOW_POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
		size_t before = l->n;
		find_sources(l);
		for (size_t i = before; i < l->n; i++)
			drain(l, &l->src[i], false);
		drain_all(l, false, NULL);
		if (!alive) {
			cli_note("%s is not running: no more output", l->name);
			return 0;
		}
	}
}

/* The one member NAME refers to (an exact member, or a cluster of one). */
static int resolve(const char *root, const char *pat, char *out, size_t len)
{
	char **names = NULL;
	size_t n = 0;
	if (cli_expand(root, "logs", (char **)&pat, 1, false, true, &names, &n))
		return 1;
	int rc = 0;
	if (n != 1)
		rc = cli_usage_error("logs", "\"%s\" is a cluster of %zu members: name one (%s, ...)",
				     pat, n, names[0]);
	else
		snprintf(out, len, "%s", names[0]);
	store_names_free(names, n);
	return rc;
}

static int parse_logs(struct logs *l, int argc, char **argv, bool *fol, const char **pat)
{
	struct cli_parse p;
	cli_parse_init(&p, "logs", cli_command_find("logs")->opts, argc, argv);
	int c, n;
	l->tail = -1;
	l->console = l->holder = true;
	bool only_c = false, only_h = false;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (c == CLI_WORD && *pat)
			return cli_usage_error("logs", "unexpected argument \"%s\" (one NAME)", p.value);
		if (c == CLI_WORD)
			*pat = p.value;
		else if (c == 'f')
			*fol = true;
		else if (c == 'n' && cli_int(&p, 0, 1000000000, &n) == 0)
			l->tail = n;
		else if (c == 'n')
			return 1;
		else if (c == 'c')
			only_c = true;
		else if (c == 'H')
			only_h = true;
	}
	if (!*pat)
		return cli_usage_error("logs", "missing NAME");
	if (only_c && only_h)
		return cli_usage_error("logs", "--console and --holder exclude each other");
	l->console = !only_h;
	l->holder = !only_c;
	return 0;
}

int cmd_logs(const char *root, int argc, char **argv)
{
	static struct logs l; /* large (line buffers): not on the stack */
	memset(&l, 0, sizeof(l));
	bool fol = false;
	const char *pat = NULL;
	char name[FB_NAME_MAX + 1];
	if (parse_logs(&l, argc, argv, &fol, &pat) || resolve(root, pat, name, sizeof(name)))
		return 1;
	l.root = root;
	l.name = name;
	find_sources(&l);
	int readable = 0;
	drain_all(&l, true, &readable);
	if (!readable && !fol)
		return cli_error("no logs for %s yet (it has not booted)", name);
	if (!fol)
		return 0;
	return follow(&l);
}
