/* orch/progress.c - what fb_up tells its caller about each member: phase
 * changes as they happen, and once a second while a member boots or waits
 * for SSH, the last line of its serial console (sanitized: a guest's escape
 * sequences never reach the user's terminal). */
#include "client/orch/plan.h"
#include "client/store.h"
#include "util/text.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERIAL_TAIL 4096

static const char *const phase_names[] = {
	[FB_UP_WAITING] = "waiting",	       [FB_UP_CREATING] = "creating disk",
	[FB_UP_BOOTING] = "booting",	       [FB_UP_WAITING_SSH] = "waiting for SSH",
	[FB_UP_READY] = "ready",	       [FB_UP_FAILED] = "failed",
	[FB_UP_ROLLED_BACK] = "rolled back", [FB_UP_WAITING_CLOUD_INIT] = "waiting for cloud-init",
};

static void report(const struct up_plan *u, const struct up_member *m)
{
	if (!u->o->member_progress)
		return;
	fb_member_progress p = {
		.name = m->name,
		.phase = m->phase,
		.phase_name = phase_names[m->phase],
		.elapsed = (double)(uv_hrtime() / 1000000 - u->t0_ms) / 1000.0,
		.ip = m->ip,
		.detail = m->detail,
	};
	u->o->member_progress(u->o->progress_data, &p);
}

void up_set_phase(struct up_plan *u, struct up_member *m, fb_up_phase phase, const char *detail)
{
	m->phase = phase;
	if (detail) {
		snprintf(m->detail, sizeof(m->detail), "%s", detail);
		text_sanitize(m->detail, strlen(m->detail));
		for (char *c = m->detail; *c; c++)
			if (*c == '\n' || *c == '\t')
				*c = ' ';
	}
	report(u, m);
}

/* The last non-blank line of the member's serial.log (its last 4 KiB). */
static void serial_last_line(const struct up_plan *u, const struct up_member *m, char *out,
			     size_t len)
{
	char path[PATH_MAX], buf[SERIAL_TAIL];
	out[0] = '\0';
	if (store_member_file(u->root, m->name, "serial.log", path, sizeof(path)) < 0)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		off_t off = st.st_size > SERIAL_TAIL ? st.st_size - SERIAL_TAIL : 0;
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n > 0)
			text_last_line(buf, (size_t)n, out, len);
	}
	close(fd);
}

void up_progress_tick(struct up_plan *u)
{
	if (!u->o->member_progress)
		return;
	for (size_t i = 0; i < u->n; i++) {
		struct up_member *m = &u->m[i];
		if (m->phase != FB_UP_BOOTING && m->phase != FB_UP_WAITING_SSH &&
		    m->phase != FB_UP_WAITING_CLOUD_INIT)
			continue;
		serial_last_line(u, m, m->detail, sizeof(m->detail));
		report(u, m);
	}
}
