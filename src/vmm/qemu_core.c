/* qemu_core.c - see qemu_core.h. One tick timer drives the boot: every
 * TICK_MS it checks the watchdog (reading only the console bytes that are
 * new since the last tick) and (re)starts a TCP probe of <ip>:22, each
 * attempt bounded by PROBE_MS. After readiness the timer stops. Stop escalates
 * graceful (control socket) -> grace -> SIGTERM -> TO_TERM_MS -> SIGKILL;
 * a halt starts at SIGTERM with TO_HALT_MS (util/timeouts.h). */
#include "vmm/qemu_core.h"
#include <limits.h>
#include "util/cmd.h"

#include "rpc/wire.h"
#include "util/err.h"
#include "util/log.h"
#include "util/owner.h"
#include "util/text.h"
#include "util/timeouts.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TICK_MS = 150, PROBE_MS = 2000, SCAN_CHUNK = 64 * 1024, SCAN_OVERLAP = 512,
       MARKER_MAX_MS = 60000 };

/* Logs are read by a (possibly root) holder in a directory others may
 * write: never through a symlink, except the /proc/self/fd/N the holder
 * itself made (a magic link to a file it opened under its path policy). */
static int open_log(const char *path)
{
	const char *p = strncmp(path, "/proc/self/fd/", 14) ? NULL : path + 14;
	bool fdlink = p && *p && strspn(p, "0123456789") == strlen(p);
	return open(path, O_RDONLY | O_CLOEXEC | (fdlink ? 0 : O_NOFOLLOW));
}

void vmcore_tail(const char *path, int lines, char *out, size_t len)
{
	out[0] = '\0';
	if (!path || !*path || len < 2)
		return;
	int fd = open_log(path);
	if (fd < 0)
		return;
	char buf[2048];
	off_t end = lseek(fd, 0, SEEK_END);
	off_t start = end > (off_t)sizeof(buf) - 1 ? end - ((off_t)sizeof(buf) - 1) : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, start);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* The console may hold escape sequences: none reach a message. */
	n = (ssize_t)text_sanitize(buf, (size_t)n);
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\t')
			buf[i] = ' ';
	char *p = buf + n;
	while (p > buf && (p[-1] == '\n' || p[-1] == ' '))
		*--p = '\0';
	int seen = 0;
	while (p > buf) {
		if (p[-1] == '\n' && ++seen == lines)
			break;
		p--;
	}
	/* Lines joined with " | " so the message stays on one line. */
	size_t o = 0;
	for (; *p && o + 4 < len; p++) {
		if (*p == '\n') {
			o += (size_t)snprintf(out + o, len - o, " | ");
			continue;
		}
		out[o++] = *p;
	}
	out[o < len ? o : len - 1] = '\0';
}

/* True when path contains needle within its first `max` bytes. */
static bool file_contains(const char *path, const char *needle, size_t max)
{
	int fd = open_log(path);
	if (fd < 0)
		return false;
	char *buf = malloc(max + 1);
	ssize_t n = buf ? read(fd, buf, max) : -1;
	close(fd);
	bool found = false;
	if (n > 0) {
		buf[n] = '\0';
		found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
	}
	free(buf);
	return found;
}

int vmcore_ctl_path(const struct vmm_boot_spec *spec, const char *file, const char *ext,
		    char *out, size_t len, struct err *e)
{
	/* Through the member dir's fd (the VMM inherits it): short, and the
	 * socket lands in that very directory even if a path component above it
	 * is swapped for a symlink. */
	int n = spec->member_dir_fd > 2
			? snprintf(out, len, "/proc/self/fd/%d/%s", spec->member_dir_fd, file)
			: snprintf(out, len, "%s/%s", spec->member_dir, file);
	if (n > 0 && (size_t)n < len && (size_t)n < WIRE_SUN_PATH_MAX)
		return 0;
	/* member_dir = <root>/clusters/<cluster>/<member>: use <root>/run/. */
	char root[PATH_MAX];
	snprintf(root, sizeof(root), "%s", spec->member_dir);
	for (int i = 0; i < 3; i++) {
		char *s = strrchr(root, '/');
		if (!s)
			return err_set(e, -ENAMETOOLONG, "control socket path too long: %s", spec->member_dir);
		*s = '\0';
	}
	char h[17];
	wire_name_hash(spec->name, h);
	n = snprintf(out, len, "%s/run/%s.%s", root, h, ext);
	if (n < 0 || (size_t)n >= len || (size_t)n >= WIRE_SUN_PATH_MAX)
		return err_set(e, -ENAMETOOLONG, "control socket path too long: %s", out);
	return 0;
}

static void on_close(uv_handle_t *h);

/* "; <vmm>: <last line of its stderr>; serial: <tail>" for failure messages. */
static void reasons(const struct vmcore *c, int lines, char *out, size_t len)
{
	char vl[512], tail[1024];
	vmcore_tail(c->vmm_log, 1, vl, sizeof(vl));
	vmcore_tail(c->serial, lines, tail, sizeof(tail));
	snprintf(out, len, "%s%s%s%s%s", vl[0] ? "; " : "", vl[0] ? c->ops->vmm_name : "",
		 vl[0] ? ": " : "", vl, "");
	size_t n = strlen(out);
	snprintf(out + n, len - n, "%s%s; console log: %s (`fleetbox logs %s`)",
		 tail[0] ? "; serial: " : "; serial log is empty", tail, c->serial_shown, c->name);
}

/* QEMU exits 0 both when the guest powers off and when it is sent SIGTERM
 * ("terminating on signal 15 from pid N" on its stderr): only the first is
 * the guest's own doing. */
static bool guest_powered_off(const struct vmcore *c)
{
	if (c->term_signal || c->exit_status != 0)
		return false;
	char vl[512];
	vmcore_tail(c->vmm_log, 3, vl, sizeof(vl));
	return !strstr(vl, "terminating on signal");
}

static void maybe_finish(struct vmcore *c)
{
	if (!c->proc_exited || c->open_handles > 0)
		return;
	if (!c->cb.exited) { /* spawn failed: boot() already returned the error */
		free(c);
		return;
	}
	bool unexpected = !c->stopping && !c->killing && !c->boot_failed;
	char msg[1400];
	if (c->boot_failed) {
		snprintf(msg, sizeof(msg), "%s", c->fail_msg);
	} else if (unexpected && guest_powered_off(c)) {
		unexpected = false; /* `poweroff` inside: stopped, not an error */
		snprintf(msg, sizeof(msg), "the guest powered itself off");
		log_info("vm %s: the guest powered itself off", c->name);
	} else if (c->stopping && !c->killing) {
		snprintf(msg, sizeof(msg), "%s exited %.1f s after the %s", c->ops->vmm_name,
			 (double)(uv_now(c->loop) - c->stop_ms) / 1000.0,
			 c->halting ? "halt" : "stop request");
	} else {
		char why[1200];
		reasons(c, 8, why, sizeof(why));
		if (c->term_signal)
			snprintf(msg, sizeof(msg), "%s killed by signal %d%s", c->ops->vmm_name,
				 c->term_signal, why);
		else
			snprintf(msg, sizeof(msg), "%s exited with status %lld%s", c->ops->vmm_name,
				 (long long)c->exit_status, why);
	}
	log_info("vm %s: %s is gone (%s)", c->name, c->ops->vmm_name, msg);
	struct vmm_callbacks cb = c->cb;
	void *data = c->data;
	free(c->ctl_wbuf);
	free(c); /* the core is the first member of the driver's vmm_vm */
	cb.exited(data, unexpected, msg);
}

static void close_handle(struct vmcore *c, uv_handle_t *h)
{
	if (!uv_is_closing(h)) {
		h->data = c;
		uv_close(h, on_close);
	}
}

static void on_close(uv_handle_t *h)
{
	struct vmcore *c = h->data;
	if (h == (uv_handle_t *)&c->probe)
		c->probe_busy = false;
	if (h == (uv_handle_t *)&c->ctl)
		c->ctl_open = false;
	c->open_handles--;
	maybe_finish(c);
}

static void close_all(struct vmcore *c)
{
	close_handle(c, (uv_handle_t *)&c->tick);
	close_handle(c, (uv_handle_t *)&c->esc);
	if (c->probe_busy)
		close_handle(c, (uv_handle_t *)&c->probe);
	if (c->ctl_open)
		close_handle(c, (uv_handle_t *)&c->ctl);
}

static void ready_once(struct vmcore *c, int status, const char *msg)
{
	if (c->ready_done)
		return;
	c->ready_done = true;
	c->cb.ready(c->data, status, msg);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct vmcore *c = p->data;
	c->proc_exited = true;
	c->exit_status = status;
	c->term_signal = sig;
	if (!c->ready_done) {
		char why[1200], msg[1400];
		reasons(c, 8, why, sizeof(why));
		if (c->stopping || c->killing)
			snprintf(msg, sizeof(msg), "stopped during boot");
		else if (sig)
			snprintf(msg, sizeof(msg), "%s killed by signal %d during boot%s",
				 c->ops->vmm_name, sig, why);
		else
			snprintf(msg, sizeof(msg), "%s exited with status %lld during boot%s",
				 c->ops->vmm_name, (long long)status, why);
		if (!c->stopping && !c->killing) {
			c->boot_failed = true;
			snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", msg);
		}
		ready_once(c, c->stopping || c->killing ? -ECANCELED : -EIO, msg);
	}
	close_handle(c, (uv_handle_t *)&c->proc);
	close_all(c);
}

/* Fails the boot: ready(-err) with the serial tail, then SIGKILL. */
static void boot_fail(struct vmcore *c, int code, const char *why)
{
	char more[1200];
	reasons(c, 10, more, sizeof(more));
	snprintf(c->fail_msg, sizeof(c->fail_msg), "%s%s", why, more);
	c->boot_failed = true;
	ready_once(c, code, c->fail_msg);
	uv_timer_stop(&c->tick);
	if (!c->proc_exited)
		uv_process_kill(&c->proc, SIGKILL);
}

static void on_probe(uv_connect_t *req, int status)
{
	struct vmcore *c = req->data;
	if (status == 0 && !c->stopping && !c->killing && !c->proc_exited) {
		log_debug("vm %s: %s:22 accepts; ready after %llu ms", c->name, c->ip,
			  (unsigned long long)(uv_now(c->loop) - c->t0_ms));
		uv_timer_stop(&c->tick);
		ready_once(c, 0, NULL);
	}
	close_handle(c, (uv_handle_t *)&c->probe);
}

static void probe_start(struct vmcore *c)
{
	struct sockaddr_in sa;
	if (uv_ip4_addr(c->ip, 22, &sa) != 0 || uv_tcp_init(c->loop, &c->probe) != 0)
		return;
	c->open_handles++;
	c->probe_busy = true;
	c->probe_started_ms = uv_now(c->loop);
	c->probe_req.data = c;
	if (uv_tcp_connect(&c->probe_req, &c->probe, (const struct sockaddr *)&sa, on_probe) != 0)
		close_handle(c, (uv_handle_t *)&c->probe);
}

static const struct {
	const char *needle, *why;
} fatal_lines[] = {
	{ "Kernel panic - not syncing", "the guest kernel panicked" },
	{ "ALERT!", "the guest dropped to an initramfs emergency shell" },
	{ "Dropping to a shell", "the guest dropped to an initramfs emergency shell" },
	{ "Give root password for maintenance", "the guest is in emergency mode" },
	{ "You are in emergency mode", "the guest is in emergency mode" },
	{ "Entering emergency mode", "the guest is in emergency mode" },
};

int vmcore_console_fatal(const char *buf, size_t len, char *out, size_t outlen)
{
	for (size_t i = 0; i < sizeof(fatal_lines) / sizeof(fatal_lines[0]); i++) {
		if (!memmem(buf, len, fatal_lines[i].needle, strlen(fatal_lines[i].needle)))
			continue;
		char line[300];
		text_line_with(buf, len, fatal_lines[i].needle, line, sizeof(line));
		snprintf(out, outlen, "%s (%s)", fatal_lines[i].why, line);
		return 1;
	}
	return 0;
}

/* Reads the console bytes written since the last tick (with some overlap,
 * so a line split across two reads is still seen whole) and checks them. */
static int console_scan(struct vmcore *c, char *why, size_t len)
{
	int fd = open_log(c->serial);
	if (fd < 0)
		return 0;
	uint64_t from = c->scan_off > SCAN_OVERLAP ? c->scan_off - SCAN_OVERLAP : 0;
	char *buf = malloc(SCAN_CHUNK + SCAN_OVERLAP);
	ssize_t n = buf ? pread(fd, buf, SCAN_CHUNK + SCAN_OVERLAP, (off_t)from) : -1;
	close(fd);
	int found = 0;
	if (n > 0 && from + (uint64_t)n > c->scan_off) {
		c->scan_off = from + (uint64_t)n;
		found = vmcore_console_fatal(buf, (size_t)n, why, len);
	}
	free(buf);
	return found;
}

/* The boot watchdog; true when it failed the boot. */
static bool watchdog(struct vmcore *c, uint64_t el)
{
	char why[400];
	if (console_scan(c, why, sizeof(why))) {
		boot_fail(c, -EIO, why);
		return true;
	}
	if (c->marker_ms && el > c->marker_ms) {
		if (!file_contains(c->serial, VMCORE_INIT_MARKER, 1u << 20)) {
			snprintf(why, sizeof(why), "the guest did not reach its init within %llu s",
				 (unsigned long long)(c->marker_ms / 1000));
			boot_fail(c, -ETIMEDOUT, why);
			return true;
		}
		c->marker_ms = 0; /* seen: stop looking */
	}
	if (el > c->deadline_ms) {
		snprintf(why, sizeof(why), "SSH on %s:22 did not answer within %llu s "
			 "(FLEETBOX_IP_WAIT_TIMEOUT widens this)", c->ip,
			 (unsigned long long)(c->deadline_ms / 1000));
		boot_fail(c, -ETIMEDOUT, why);
		return true;
	}
	return false;
}

static void on_tick(uv_timer_t *t)
{
	struct vmcore *c = t->data;
	if (c->ready_done || c->stopping || c->killing || c->proc_exited) {
		uv_timer_stop(t);
		return;
	}
	uint64_t now = uv_now(c->loop);
	if (watchdog(c, now - c->t0_ms))
		return;
	if (c->probe_busy && now - c->probe_started_ms > PROBE_MS)
		close_handle(c, (uv_handle_t *)&c->probe);
	else if (!c->probe_busy)
		probe_start(c);
}

int vmcore_start(struct vmcore *c, uv_loop_t *loop, char **argv, int log_fd,
		 const struct vmm_boot_spec *spec, bool expect_marker,
		 const struct vmm_callbacks *cb, void *data, struct err *e)
{
	c->loop = loop;
	c->cb = *cb;
	c->data = data;
	snprintf(c->name, sizeof(c->name), "%s", spec->name);
	snprintf(c->ip, sizeof(c->ip), "%s", spec->ip ? spec->ip : "");
	if (spec->serial_log_path)
		snprintf(c->serial, sizeof(c->serial), "%s", spec->serial_log_path);
	else
		snprintf(c->serial, sizeof(c->serial), "%s/serial.log", spec->member_dir);
	if (spec->serial_log_shown)
		snprintf(c->serial_shown, sizeof(c->serial_shown), "%s", spec->serial_log_shown);
	else if (strncmp(c->serial, "/proc/self/fd/", 14) != 0)
		snprintf(c->serial_shown, sizeof(c->serial_shown), "%s", c->serial);
	else
		snprintf(c->serial_shown, sizeof(c->serial_shown), "%s/serial.log", spec->member_dir);
	c->deadline_ms = timeouts_boot_ms();
	c->marker_ms = expect_marker ? c->deadline_ms / 2 : 0;
	if (c->marker_ms > MARKER_MAX_MS)
		c->marker_ms = MARKER_MAX_MS; /* the mini kernel reaches init in seconds */
	uv_timer_init(loop, &c->tick);
	uv_timer_init(loop, &c->esc);
	c->tick.data = c->esc.data = c;
	c->open_handles = 2;
	c->proc.data = c;
	int r = vmm_spawn(loop, &c->proc, argv, log_fd, on_exit_cb, spec);
	if (r < 0) {
		/* Nothing runs: close the timers; the core frees itself silently. */
		c->proc_exited = true;
		c->cb.exited = NULL;
		err_set(e, r, "start %s: %s", argv[0], uv_strerror(r));
		close_handle(c, (uv_handle_t *)&c->tick);
		close_handle(c, (uv_handle_t *)&c->esc);
		return r;
	}
	c->open_handles++;
	c->t0_ms = uv_now(loop);
	log_debug("vm %s: %s started, pid %d", c->name, c->ops->vmm_name, c->proc.pid);
	if (!c->ip[0]) {
		ready_once(c, 0, NULL);
		return 0;
	}
	uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
	return 0;
}

/* ---- stop escalation ------------------------------------------------ */

static void on_ctl_write(uv_write_t *w, int status)
{
	struct vmcore *c = w->data;
	free(c->ctl_wbuf);
	c->ctl_wbuf = NULL;
	if (status < 0 && c->ctl_open)
		close_handle(c, (uv_handle_t *)&c->ctl);
}

static void ctl_send(struct vmcore *c, const char *s)
{
	if (!s || !c->ctl_open || c->ctl_wbuf || uv_is_closing((uv_handle_t *)&c->ctl))
		return;
	c->ctl_wbuf = strdup(s);
	if (!c->ctl_wbuf)
		return;
	uv_buf_t b = uv_buf_init(c->ctl_wbuf, (unsigned)strlen(c->ctl_wbuf));
	c->ctl_wreq.data = c;
	if (uv_write(&c->ctl_wreq, (uv_stream_t *)&c->ctl, &b, 1, on_ctl_write) != 0) {
		free(c->ctl_wbuf);
		c->ctl_wbuf = NULL;
	}
}

static void ctl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char rbuf[4096]; /* single-threaded loop; consumed synchronously */
	buf->base = rbuf;
	buf->len = sizeof(rbuf);
}

static void ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct vmcore *c = s->data;
	if (n < 0) {
		close_handle(c, (uv_handle_t *)&c->ctl);
		return;
	}
	if (n > 0 && c->ops->stop_on_read)
		ctl_send(c, c->ops->stop_on_read(c, buf->base, (size_t)n));
}

static void on_ctl_connect(uv_connect_t *req, int status)
{
	struct vmcore *c = req->data;
	if (status < 0) {
		log_debug("vm %s: control socket %s: %s", c->name, c->ctl_path, uv_strerror(status));
		close_handle(c, (uv_handle_t *)&c->ctl);
		return;
	}
	c->ctl.data = c;
	uv_read_start((uv_stream_t *)&c->ctl, ctl_alloc, ctl_read);
	ctl_send(c, c->ops->stop_request(c));
}

static void on_esc(uv_timer_t *t);

static double since_stop_s(const struct vmcore *c)
{
	return (double)(uv_now(c->loop) - c->stop_ms) / 1000.0;
}

static void escalate_term(struct vmcore *c, uint64_t wait_ms)
{
	c->esc_stage = 2;
	uv_process_kill(&c->proc, SIGTERM);
	uv_timer_start(&c->esc, on_esc, wait_ms, 0);
}

static void on_esc(uv_timer_t *t)
{
	struct vmcore *c = t->data;
	if (c->proc_exited)
		return;
	if (c->esc_stage == 1) {
		log_warn("vm %s: the guest did not power off within %.1f s of the graceful stop; "
			 "sending SIGTERM (FLEETBOX_STOP_TIMEOUT widens this)", c->name,
			 since_stop_s(c));
		escalate_term(c, TO_TERM_MS);
	} else {
		log_warn("vm %s: %s still running %.1f s after SIGTERM (%.1f s after the %s); "
			 "sending SIGKILL", c->name, c->ops->vmm_name,
			 (double)(c->halting ? TO_HALT_MS : TO_TERM_MS) / 1000.0, since_stop_s(c),
			 c->halting ? "halt" : "stop request");
		uv_process_kill(&c->proc, SIGKILL);
	}
}

/* The graceful request over the control socket (QMP / CH API). */
static void ctl_open_and_send(struct vmcore *c)
{
	if (!c->ctl_path[0] || !c->ops->stop_request)
		return;
	if (uv_pipe_init(c->loop, &c->ctl, 0) != 0)
		return;
	c->open_handles++;
	c->ctl_open = true;
	c->ctl.data = c;
	c->ctl_req.data = c;
	uv_pipe_connect(&c->ctl_req, &c->ctl, c->ctl_path, on_ctl_connect);
}

/* No graceful phase: nobody waits for a clean power-off. */
static void halt(struct vmcore *c)
{
	c->halting = true;
	log_info("vm %s: halting (SIGTERM, SIGKILL after %.1f s)", c->name,
		 (double)TO_HALT_MS / 1000.0);
	escalate_term(c, TO_HALT_MS);
}

void vmcore_stop(struct vmcore *c, uint64_t grace_ms)
{
	if (c->proc_exited || c->halting || (c->stopping && grace_ms))
		return;
	bool first = !c->stopping;
	c->stopping = true;
	uv_timer_stop(&c->tick);
	/* Escalation deadlines count from now, not from the loop's cached time:
	 * a caller that blocked for seconds (an embedding test, a slow callback)
	 * would otherwise see the grace period already spent. */
	uv_update_time(c->loop);
	if (first)
		c->stop_ms = uv_now(c->loop);
	if (grace_ms == 0) {
		halt(c);
		return;
	}
	if (!c->ready_done) {
		/* Still booting: no init listens for ACPI yet, go straight to SIGTERM. */
		log_info("vm %s: stopped while booting: SIGTERM", c->name);
		escalate_term(c, TO_TERM_MS);
		return;
	}
	c->esc_stage = 1;
	c->grace_ms = grace_ms;
	log_info("vm %s: graceful stop, SIGTERM after %.1f s", c->name, (double)grace_ms / 1000.0);
	uv_timer_start(&c->esc, on_esc, grace_ms, 0);
	ctl_open_and_send(c);
}

void vmcore_kill(struct vmcore *c)
{
	if (c->proc_exited)
		return;
	c->killing = true;
	uv_timer_stop(&c->tick);
	uv_process_kill(&c->proc, SIGKILL);
}

pid_t vmcore_pid(const struct vmcore *c)
{
	return c->proc_exited ? 0 : c->proc.pid;
}

int vmcore_launch(struct vmcore *c, uv_loop_t *loop, struct cmd *cmd, const char *log_name,
		  const struct vmm_boot_spec *s, const struct vmm_callbacks *cb, void *data,
		  struct err *e)
{
	if (log_enabled(LOG_DEBUG)) {
		char *str = cmd_to_string(cmd);
		log_debug("vm %s: %s", s->name, str ? str : "(out of memory)");
		free(str);
	}
	unlink(c->ctl_path); /* stale control socket of a previous run */
	/* Truncate the console log so the watchdog only sees this boot. */
	int lf = open(s->serial_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (lf >= 0) {
		(void)owner_claim_fd(lf); /* a log: best effort */
		close(lf);
	}
	/* The VMM's own stderr (e.g. "could not open tap") goes next to the console. */
	char vlog[PATH_MAX];
	snprintf(vlog, sizeof(vlog), "%s/%s", s->member_dir, log_name);
	/* Relative to the member dir's fd when the holder gives one: a root
	 * holder must not follow a symlink planted as <member>/qemu.log. The log
	 * belongs to the user the VMM runs as (else, under sudo, the invoker). */
	int log_fd = s->member_dir_fd > 2
			     ? openat(s->member_dir_fd, log_name,
				      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)
			     : open(vlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (log_fd >= 0 && (s->run_uid != 0 ? fchown(log_fd, s->run_uid, s->run_gid) < 0
					    : owner_claim_fd(log_fd) < 0))
		log_warn("vm %s: chown %s: %s", s->name, vlog, strerror(errno));
	if (log_fd >= 0 && s->member_dir_fd > 2)
		snprintf(c->vmm_log, sizeof(c->vmm_log), "/proc/self/fd/%d/%s", s->member_dir_fd,
			 log_name);
	else if (log_fd >= 0)
		snprintf(c->vmm_log, sizeof(c->vmm_log), "%s", vlog);
	bool mini = s->cmdline && strstr(s->cmdline, "rdinit=/init");
	int r = vmcore_start(c, loop, cmd_argv(cmd), log_fd, s, mini, cb, data, e);
	if (log_fd >= 0)
		close(log_fd);
	cmd_fini(cmd);
	return r; /* on failure the core frees the vm once its timers are closed */
}

void vmcore_op_stop(struct vmm_vm *vm, uint64_t grace_ms)
{
	vmcore_stop((struct vmcore *)vm, grace_ms);
}

void vmcore_op_kill(struct vmm_vm *vm)
{
	vmcore_kill((struct vmcore *)vm);
}

pid_t vmcore_op_pid(const struct vmm_vm *vm)
{
	return vmcore_pid((const struct vmcore *)vm);
}
