/* stoptest.c - how members stop and how boots fail (suite "integration",
 * real holder, fake VMM with its FLEETBOX_FAKE_* guest behaviours):
 *   stop-escalation  graceful -> grace -> SIGTERM -> SIGKILL, in that order,
 *                    each step a WARNING in the holder log naming the member
 *                    and the time waited; `down` waits it out and succeeds
 *   stop-slow        a guest that takes longer than the old 5 s to power off
 *                    is waited for (no SIGTERM); a stop that carries
 *                    FLEETBOX_STOP_TIMEOUT overrides the member's grace
 *   down-parallel    4 members with 2 s power-offs each: down < 4 x 2 s
 *   self-poweroff    a guest's own power-off is `stopped`, not `error`
 *   emergency-shell  a console in an emergency shell fails `up` at once with
 *                    the excerpt, escape sequences removed, naming the log
 *   halt-on-parent   a bound harness SIGKILLed: its VMs are halted (no
 *                    graceful phase), however slow their power-off is
 *   close-graceful   fb_cluster_close of a live harness: persistent members
 *                    get a graceful power-off, ephemeral ones are halted */
#include "harness.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/fileio.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static bool member_gone(void *m)
{
	const char *name = m;
	return !h_sock_exists(name) && (h_pidfile(name) == 0 || !h_pid_alive(h_pidfile(name)));
}

static char *runner_log(const char *first)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/runner-%s.log", h_root, first);
	return h_read_file(p);
}

static char *record_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/record.ndjson", h_root);
	setenv("FLEETBOX_FAKE_RECORD", buf, 1);
	return buf;
}

/* Index of needle in s, or -1: the order of recorded driver steps. */
static long pos(const char *s, const char *needle)
{
	const char *p = s ? strstr(s, needle) : NULL;
	return p ? p - s : -1;
}

static json_t *status_json(const char *m)
{
	char *r = h_req(m, "{\"cmd\":\"status\"}\n", 2000);
	json_t *o = r ? json_loads(r, 0, NULL) : NULL;
	free(r);
	return o;
}

static const char *status_str(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(json_object_get(o, "status"), k));
	return v ? v : "";
}

static void t_escalation(void)
{
	h_setup("stopesc");
	char rec[400];
	record_path(rec, sizeof(rec));
	setenv("FLEETBOX_FAKE_POWEROFF_MS", "60000", 1); /* never in time */
	setenv("FLEETBOX_FAKE_IGNORE_TERM", "1", 1);     /* only SIGKILL ends it */
	setenv("FLEETBOX_STOP_TIMEOUT", "1s", 1);        /* sent in boot-member's spec */
	CHECK_INT(h_run(NULL, "up", "es-1", "--image", h_image(), NULL), 0);
	unsetenv("FLEETBOX_STOP_TIMEOUT");               /* down relies on the member's */
	long t0 = h_now_ms();
	char *out = NULL;
	CHECK_INT(h_run(&out, "down", "es-1", NULL), 0);
	long took = h_now_ms() - t0;
	fprintf(stderr, "down: %s (%ld ms)\n", out ? out : "", took);
	free(out);
	/* 1 s grace + 5 s SIGTERM phase: the client outwaited both */
	CHECK(took >= 6000 && took < 20000);
	CHECK(member_gone((void *)"es-1"));
	char *s = h_read_file(rec);
	fprintf(stderr, "record:\n%s", s ? s : "");
	long st = pos(s, "{\"op\":\"stop\",\"name\":\"es-1\"}");
	long te = pos(s, "{\"op\":\"term\",\"name\":\"es-1\"}");
	long ki = pos(s, "{\"op\":\"kill\",\"name\":\"es-1\"}");
	CHECK(st >= 0 && te > st && ki > te);
	free(s);
	char *log = runner_log("es-1");
	CHECK(log != NULL);
	/* the times waited are in the lines (at least 1 s and 6 s: timers may be late) */
	const char *w1 = strstr(log, "warn: vm es-1: the guest did not power off within ");
	const char *w2 = strstr(log, "warn: vm es-1: fake VMM still running ");
	CHECK(w1 && w2 && w2 > w1);
	CHECK(strtod(w1 + strlen("warn: vm es-1: the guest did not power off within "), NULL) >= 1.0);
	CHECK(strtod(w2 + strlen("warn: vm es-1: fake VMM still running "), NULL) >= 6.0);
	CHECK(strstr(w1, "s of the graceful stop; sending SIGTERM") &&
	      strstr(w2, "s after the stop request; sending SIGKILL"));
	free(log);
	unsetenv("FLEETBOX_FAKE_POWEROFF_MS");
	unsetenv("FLEETBOX_FAKE_IGNORE_TERM");
	unsetenv("FLEETBOX_FAKE_RECORD");
	h_teardown();
}

static void t_slow(void)
{
	h_setup("stopslow");
	char rec[400];
	record_path(rec, sizeof(rec));
	/* 7 s: past the old 5 s SIGTERM, well inside the image's default grace */
	setenv("FLEETBOX_FAKE_POWEROFF_MS", "7000", 1);
	CHECK_INT(h_run(NULL, "up", "sl-1", "sl-2", "--image", h_image(), NULL), 0);
	long t0 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "sl-1", NULL), 0);
	long took = h_now_ms() - t0;
	fprintf(stderr, "down of a 7 s power-off: %ld ms\n", took);
	CHECK(took >= 7000 && took < 20000);
	char *s = h_read_file(rec);
	CHECK(pos(s, "{\"op\":\"stop\",\"name\":\"sl-1\"}") >= 0);
	CHECK(pos(s, "{\"op\":\"term\",\"name\":\"sl-1\"}") < 0); /* never cut off */
	free(s);
	char *log = runner_log("sl-1");
	CHECK(log && strstr(log, "sl-1: stopping (graceful power-off, SIGTERM after 60.0 s)") &&
	      !strstr(log, "warn: vm sl-1"));
	free(log);
	/* FLEETBOX_STOP_TIMEOUT at down time rides on the stop request */
	setenv("FLEETBOX_STOP_TIMEOUT", "500ms", 1);
	t0 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "sl-2", NULL), 0);
	took = h_now_ms() - t0;
	unsetenv("FLEETBOX_STOP_TIMEOUT");
	fprintf(stderr, "down with FLEETBOX_STOP_TIMEOUT=500ms: %ld ms\n", took);
	CHECK(took < 6000);
	s = h_read_file(rec);
	CHECK(pos(s, "{\"op\":\"term\",\"name\":\"sl-2\"}") > pos(s, "{\"op\":\"stop\",\"name\":\"sl-2\"}"));
	free(s);
	unsetenv("FLEETBOX_FAKE_POWEROFF_MS");
	unsetenv("FLEETBOX_FAKE_RECORD");
	h_teardown();
}

static void t_parallel(void)
{
	h_setup("stoppar");
	setenv("FLEETBOX_FAKE_POWEROFF_MS", "2000", 1);
	CHECK_INT(h_run(NULL, "up", "pa", "-n", "4", "--image", h_image(), NULL), 0);
	long t0 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "pa", NULL), 0);
	long took = h_now_ms() - t0;
	printf("bench down_4x2s_poweroff_ms=%ld\n", took);
	CHECK(took >= 2000 && took < 4 * 2000); /* in parallel, not one after another */
	for (int i = 1; i <= 4; i++) {
		char n[16];
		snprintf(n, sizeof(n), "pa-%d", i);
		CHECK(member_gone(n));
	}
	unsetenv("FLEETBOX_FAKE_POWEROFF_MS");
	h_teardown();
}

static bool is_stopped(void *m)
{
	json_t *o = status_json(m);
	bool stopped = o && !strcmp(status_str(o, "state"), "stopped");
	json_decref(o);
	return stopped;
}

static void t_self_poweroff(void)
{
	h_setup("selfoff");
	setenv("FLEETBOX_FAKE_SELF_POWEROFF_MS", "300", 1);
	CHECK_INT(h_run(NULL, "up", "so-1", "so-2", "--image", h_image(), NULL), 0);
	unsetenv("FLEETBOX_FAKE_SELF_POWEROFF_MS");
	CHECK(h_wait_until(is_stopped, (void *)"so-1", 10000));
	json_t *o = status_json("so-1");
	CHECK_STR(status_str(o, "state"), "stopped");
	CHECK_STR(status_str(o, "error"), "");
	CHECK(json_is_false(json_object_get(json_object_get(o, "status"), "running")));
	json_decref(o);
	char *log = runner_log("so-1");
	CHECK(log && strstr(log, "the guest powered itself off") && !strstr(log, "unexpectedly"));
	free(log);
	/* a VMM killed from outside is still an error, with its reason */
	CHECK_INT(h_run(NULL, "up", "so-3", "--image", h_image(), NULL), 0);
	pid_t v = h_fake_vm_pid("so-3");
	CHECK(v > 0 && kill(v, SIGTERM) == 0);
	json_t *e = NULL;
	for (int i = 0; i < 400; i++) {
		json_decref(e);
		e = status_json("so-3");
		if (e && !strcmp(status_str(e, "state"), "error"))
			break;
		nap_ms(10);
	}
	CHECK_STR(status_str(e, "state"), "error");
	CHECK(strstr(status_str(e, "error"), "exited with status 143") != NULL);
	json_decref(e);
	CHECK_INT(h_run(NULL, "down", "so", NULL), 0);
	h_teardown();
}

static void t_emergency(void)
{
	h_setup("emerg");
	setenv("FLEETBOX_FAKE_CONSOLE",
	       "Begin: Running /scripts/local-block ... done.\r\n"
	       "\033[1;31mALERT!\033[0m  UUID=0b1e-feed does not exist.  Dropping to a shell!\r\n"
	       "\033]0;title\007(initramfs) ", 1);
	long t0 = h_now_ms();
	char *out = NULL;
	int rc = h_run(&out, "up", "em-1", "--image", h_image(), NULL);
	long took = h_now_ms() - t0;
	unsetenv("FLEETBOX_FAKE_CONSOLE");
	fprintf(stderr, "up (%ld ms): %s\n", took, out ? out : "");
	CHECK(rc != 0);
	CHECK(took < 15000); /* at once, not after the boot timeout */
	CHECK(out && strstr(out, "emergency shell") && strstr(out, "UUID=0b1e-feed does not exist"));
	CHECK(!strchr(out, '\033') && !strstr(out, "[1;31m") && !strstr(out, "]0;title"));
	CHECK(strstr(out, "serial.log") && strstr(out, "fleetbox logs em-1"));
	free(out);
	h_teardown();
}

static void t_halt_on_parent(void)
{
	h_setup("halt");
	char rec[400];
	record_path(rec, sizeof(rec));
	setenv("FLEETBOX_FAKE_POWEROFF_MS", "20000", 1); /* a graceful stop would take 20 s */
	const char *names[] = { "ha-1", "ha-2" };
	pid_t holder;
	pid_t child = h_bound_child(names, 2, h_image(), NULL, &holder);
	unsetenv("FLEETBOX_FAKE_POWEROFF_MS");
	long t0 = h_now_ms();
	CHECK_INT(kill(child, SIGKILL), 0);
	waitpid(child, NULL, 0);
	long gone = h_wait_pid_gone(holder, 15000);
	long took = h_now_ms() - t0;
	printf("bench halt_teardown_ms=%ld\n", took);
	CHECK(gone >= 0 && took < 5000);
	CHECK(member_gone((void *)"ha-1") && member_gone((void *)"ha-2"));
	char *s = h_read_file(rec);
	fprintf(stderr, "record:\n%s", s ? s : "");
	CHECK(pos(s, "{\"op\":\"halt\",\"name\":\"ha-1\"}") >= 0 &&
	      pos(s, "{\"op\":\"halt\",\"name\":\"ha-2\"}") >= 0);
	/* the .ctl EOF may start a graceful stop a moment before the parent
	 * watch fires; the halt overtakes it either way (took < 5 s above) */
	free(s);
	unsetenv("FLEETBOX_FAKE_RECORD");
	h_teardown();
}

/* One bound cluster closed by its (living) owner; returns the ms it took. */
static long bound_close(const char *name, int ephemeral)
{
	const char *names[] = { name };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image(),
			    .ephemeral = ephemeral };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	long t0 = h_now_ms();
	CHECK_INT(fb_cluster_close(c, &e), 0);
	return h_now_ms() - t0;
}

static void t_close_graceful(void)
{
	h_setup("closegr");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	char rec[400];
	record_path(rec, sizeof(rec));
	setenv("FLEETBOX_FAKE_POWEROFF_MS", "1500", 1);
	long took = bound_close("cg-1", 0);
	fprintf(stderr, "close of a persistent member: %ld ms\n", took);
	CHECK(took >= 1500); /* it waited for the power-off */
	took = bound_close("ce-1", 1);
	fprintf(stderr, "close of an ephemeral member: %ld ms\n", took);
	CHECK(took < 1500);
	unsetenv("FLEETBOX_FAKE_POWEROFF_MS");
	char *s = h_read_file(rec);
	fprintf(stderr, "record:\n%s", s ? s : "");
	CHECK(pos(s, "{\"op\":\"stop\",\"name\":\"cg-1\"}") >= 0 &&
	      pos(s, "{\"op\":\"halt\",\"name\":\"cg-1\"}") < 0);
	CHECK(pos(s, "{\"op\":\"halt\",\"name\":\"ce-1\"}") >= 0 &&
	      pos(s, "{\"op\":\"stop\",\"name\":\"ce-1\"}") < 0);
	free(s);
	unsetenv("FLEETBOX_FAKE_RECORD");
	h_teardown();
}

static const struct h_case cases[] = {
	{ "stop-escalation", t_escalation },   { "stop-slow", t_slow },
	{ "down-parallel-timing", t_parallel }, { "self-poweroff", t_self_poweroff },
	{ "emergency-shell", t_emergency },     { "halt-on-parent", t_halt_on_parent },
	{ "close-graceful", t_close_graceful },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
