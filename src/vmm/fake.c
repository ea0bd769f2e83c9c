/* fake.c - a VMM driver that runs each "VM" as a real child process (our own
 * binary in --fleetbox-fake-vm mode) so spawn, supervision, reaping and
 * PDEATHSIG are exercised for real, without booting anything.
 *
 * FLEETBOX_FAKE_RECORD=<file>: one JSON line per driver call is appended
 *   ({"op":"reserve"|"create"|"stop"|"close", ...}); O_APPEND single writes.
 * FLEETBOX_FAKE_FAIL_CREATE=<name>: boot() of that member fails.
 * FLEETBOX_FAKE_BOOT_MS=<ms>: pretend booting takes that long (default 0).
 * FLEETBOX_FAKE_POWEROFF_MS=<ms>: a graceful stop takes the guest that long
 *   to power off (default 0); FLEETBOX_FAKE_IGNORE_TERM=1: the "VMM" ignores
 *   SIGTERM, so only SIGKILL ends it (the whole escalation runs).
 * FLEETBOX_FAKE_SELF_POWEROFF_MS=<ms>: the guest powers itself off that long
 *   after it booted (exit 0, as QEMU does on a guest `poweroff`).
 * FLEETBOX_FAKE_CONSOLE=<text>: written to the console after the banner
 *   instead of booting (the guest hangs there, as one stuck in an emergency
 *   shell does); the same watchdog as the QEMU driver's reads it.
 *
 * Stop follows the QEMU driver's escalation with the same timings: graceful
 * (SIGUSR1 here, the ACPI button) -> grace -> SIGTERM -> TO_TERM_MS ->
 * SIGKILL; a halt (grace 0) starts at SIGTERM. Each step is recorded
 * ({"op":"stop"|"halt"|"term"|"kill","name":...}) and escalations are logged
 * at WARNING like the QEMU driver's.
 *
 * Readiness is real: the child writes its banner to the serial log and then
 * "ready\n" to a pipe; only that line makes the VM ready, so a test never sees
 * a "running" member whose process has not started yet. */
#include "vmm/vmm.h"
#include "vmm/fake.h"
#include "util/err.h"
#include "util/log.h"
#include "util/owner.h"
#include "util/timeouts.h"
#include "vmm/qemu_core.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vmm_vm {
	uv_process_t proc;
	uv_pipe_t ready_pipe;   /* child's stdout: "ready\n" once booted */
	uv_timer_t timer;       /* stop escalation */
	uv_timer_t watch;       /* boot watchdog: console + deadline */
	char rbuf[16];
	size_t rlen;
	int open_handles;
	bool exited_proc, stop_requested, ready_sent, killed, halting, boot_failed;
	int esc_stage;          /* 1: graceful, 2: SIGTERM sent */
	uint64_t stop_ms, boot_t0, boot_deadline_ms;
	int64_t exit_status;
	int term_signal;
	struct vmm_callbacks cb;
	void *data;
	char name[64];
	char serial[PATH_MAX];
	char serial_shown[PATH_MAX];
	char fail_msg[1024];
};

static void record(json_t *o)
{
	const char *path = getenv("FLEETBOX_FAKE_RECORD");
	if (!path || !*path || !o) {
		json_decref(o);
		return;
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)owner_claim_fd(fd); /* a test record: best effort */
		size_t n = strlen(s);
		s[n] = '\n'; /* overwrite NUL; write n+1 bytes in one call */
		ssize_t w = write(fd, s, n + 1);
		if (w < 0)
			log_errno(LOG_WARN, -errno, "fake record %s", path);
		close(fd);
	}
	free(s);
}

void vmm_fake_record_reserve(const char *name, const char *ip_hint, const char *mac,
			     const char *ip)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "reserve", "name", name, "ip_hint",
			      ip_hint ? ip_hint : "", "mac", mac, "assigned_ip", ip ? ip : "");
	record(o);
}

void vmm_fake_record_close(void)
{
	record(json_pack("{s:s}", "op", "close"));
}

/* The file behind a /proc/self/fd/N the holder handed over (what it opened),
 * so the record shows real paths; other paths as they are. */
static const char *real_path(const char *p, char *buf, size_t len)
{
	if (!p)
		return "";
	if (strncmp(p, "/proc/self/fd/", 14) != 0)
		return p;
	ssize_t n = readlink(p, buf, len - 1);
	if (n < 0)
		return p;
	buf[n] = '\0';
	return buf;
}

static void record_create(const struct vmm_boot_spec *s)
{
	char disk[PATH_MAX], seed[PATH_MAX], fxp[PATH_MAX];
	json_t *fx = json_array();
	for (size_t i = 0; fx && i < s->n_fixtures; i++)
		json_array_append_new(fx, json_string(real_path(s->fixture_paths[i], fxp, sizeof(fxp))));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "op", "create", "name",
			      s->name, "disk_path", real_path(s->disk_path, disk, sizeof(disk)),
			      "seed_path", real_path(s->seed_path, seed, sizeof(seed)),
			      "fixture_paths", fx ? fx : json_array(),
			      "mac", s->mac ? s->mac : "", "assigned_ip", s->ip ? s->ip : "", "tap",
			      s->tap ? s->tap : "");
	record(o);
}

static void record_op(const char *op, const char *name)
{
	record(json_pack("{s:s, s:s}", "op", op, "name", name));
}

/* Why the "VM" is gone, for exited(): NULL when it was asked to go. */
static const char *exit_reason(struct vmm_vm *vm, bool *unexpected, char *msg, size_t len)
{
	*unexpected = !vm->stop_requested && !vm->killed && !vm->boot_failed;
	if (vm->boot_failed)
		return vm->fail_msg;
	if (!*unexpected)
		return NULL;
	if (!vm->term_signal && vm->exit_status == 0) {
		*unexpected = false; /* the guest's own `poweroff` */
		log_info("fake vm %s: the guest powered itself off", vm->name);
		return "the guest powered itself off";
	}
	if (vm->term_signal)
		snprintf(msg, len, "fake vm %s killed by signal %d", vm->name, vm->term_signal);
	else
		snprintf(msg, len, "fake vm %s exited with status %lld", vm->name,
			 (long long)vm->exit_status);
	return msg;
}

static void vm_close_cb(uv_handle_t *h)
{
	struct vmm_vm *vm = h->data;
	if (--vm->open_handles > 0)
		return;
	char buf[160] = "";
	bool unexpected;
	const char *msg = exit_reason(vm, &unexpected, buf, sizeof(buf));
	if (!vm->ready_sent && vm->cb.ready) {
		vm->ready_sent = true;
		vm->cb.ready(vm->data, -ECANCELED, unexpected ? msg : "stopped during boot");
	}
	vm->cb.exited(vm->data, unexpected, msg);
	free(vm);
}

static void close_if_open(struct vmm_vm *vm, uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, vm_close_cb);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct vmm_vm *vm = p->data;
	vm->exited_proc = true;
	vm->exit_status = status;
	vm->term_signal = sig;
	log_debug("fake vm %s exited (status %lld, signal %d)", vm->name, (long long)status, sig);
	if (vm->stop_requested)
		log_info("fake vm %s: gone %.1f s after the %s", vm->name,
			 (double)(uv_now(p->loop) - vm->stop_ms) / 1000.0,
			 vm->halting ? "halt" : "stop request");
	uv_timer_stop(&vm->timer);
	uv_timer_stop(&vm->watch);
	close_if_open(vm, (uv_handle_t *)&vm->proc);
	close_if_open(vm, (uv_handle_t *)&vm->timer);
	close_if_open(vm, (uv_handle_t *)&vm->watch);
	close_if_open(vm, (uv_handle_t *)&vm->ready_pipe);
}

static void ready_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	struct vmm_vm *vm = h->data;
	(void)s;
	*b = uv_buf_init(vm->rbuf + vm->rlen, (unsigned)(sizeof(vm->rbuf) - 1 - vm->rlen));
}

static void on_ready_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct vmm_vm *vm = st->data;
	(void)b;
	if (n > 0) {
		vm->rlen += (size_t)n;
		vm->rbuf[vm->rlen] = '\0';
	}
	if (!vm->ready_sent && !vm->boot_failed && strstr(vm->rbuf, "ready\n")) {
		vm->ready_sent = true;
		uv_timer_stop(&vm->watch);
		vm->cb.ready(vm->data, 0, NULL);
	}
	/* EOF (the child exited) or enough read: this pipe has done its job. */
	if (n < 0 || vm->ready_sent || vm->rlen >= sizeof(vm->rbuf) - 1) {
		uv_read_stop(st);
		close_if_open(vm, (uv_handle_t *)st);
	}
}

/* Fails the boot at once, as the QEMU driver's watchdog does. */
static void fake_boot_fail(struct vmm_vm *vm, int code, const char *why)
{
	snprintf(vm->fail_msg, sizeof(vm->fail_msg), "%s; console log: %s (`fleetbox logs %s`)",
		 why, vm->serial_shown, vm->name);
	vm->boot_failed = vm->ready_sent = true;
	uv_timer_stop(&vm->watch);
	vm->cb.ready(vm->data, code, vm->fail_msg);
	uv_process_kill(&vm->proc, SIGKILL);
}

/* The console so far (the fake's is small): fatal lines end the boot. */
static void on_watch(uv_timer_t *t)
{
	struct vmm_vm *vm = t->data;
	if (vm->ready_sent || vm->stop_requested || vm->exited_proc)
		return;
	char buf[16384], why[400];
	int fd = vm->serial[0] ? open(vm->serial, O_RDONLY | O_CLOEXEC) : -1;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0 && vmcore_console_fatal(buf, (size_t)n, why, sizeof(why)))
		fake_boot_fail(vm, -EIO, why);
	else if (uv_now(t->loop) - vm->boot_t0 > vm->boot_deadline_ms)
		fake_boot_fail(vm, -ETIMEDOUT, "the fake guest did not boot in time "
			       "(FLEETBOX_IP_WAIT_TIMEOUT widens this)");
}

static void free_vm_cb(uv_handle_t *h)
{
	free(h->data);
}

static int spawn_child(uv_loop_t *loop, struct vmm_vm *vm, const struct vmm_boot_spec *spec,
		       int out_fd, struct err *e)
{
	char boot_ms[24];
	const char *ms = getenv("FLEETBOX_FAKE_BOOT_MS");
	snprintf(boot_ms, sizeof(boot_ms), "%s", ms && *ms ? ms : "0");
	char *argv[] = { (char *)vmm_self_exe(), (char *)"--fleetbox-fake-vm", (char *)spec->name,
			 (char *)(spec->serial_log_path ? spec->serial_log_path : ""), boot_ms, NULL };
	vm->proc.data = vm;
	int r = vmm_spawn(loop, &vm->proc, argv, out_fd, on_exit_cb, spec);
	if (r < 0) {
		err_set(e, r, "fake VMM: spawn: %s", uv_strerror(r));
		/* uv_spawn registers the handle even when it fails: close it. */
		if (vm->proc.type == UV_PROCESS)
			uv_close((uv_handle_t *)&vm->proc, free_vm_cb);
		else
			free(vm);
	}
	return r;
}

static void start_supervision(uv_loop_t *loop, struct vmm_vm *vm, int ready_fd)
{
	vm->open_handles = 4;
	uv_timer_init(loop, &vm->timer);
	uv_timer_init(loop, &vm->watch);
	vm->timer.data = vm->watch.data = vm;
	vm->boot_t0 = uv_now(loop);
	vm->boot_deadline_ms = timeouts_boot_ms();
	uv_timer_start(&vm->watch, on_watch, 100, 100);
	uv_pipe_init(loop, &vm->ready_pipe, 0);
	vm->ready_pipe.data = vm;
	if (uv_pipe_open(&vm->ready_pipe, ready_fd) < 0 ||
	    uv_read_start((uv_stream_t *)&vm->ready_pipe, ready_alloc, on_ready_read) < 0) {
		/* Without the pipe we cannot see readiness: stop the child; the exit
		 * path reports the failure through ready(). */
		vm->killed = true;
		uv_process_kill(&vm->proc, SIGKILL);
	}
}

static int fake_boot(uv_loop_t *loop, const struct vmm_boot_spec *spec,
		     const struct vmm_callbacks *cb, void *data, struct vmm_vm **out, struct err *e)
{
	record_create(spec);
	const char *fail = getenv("FLEETBOX_FAKE_FAIL_CREATE");
	if (fail && !strcmp(fail, spec->name))
		return err_set(e, -EIO, "fake VMM: forced create failure for %s", spec->name);

	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, -ENOMEM, "out of memory");
	vm->cb = *cb;
	vm->data = data;
	snprintf(vm->name, sizeof(vm->name), "%s", spec->name);
	snprintf(vm->serial, sizeof(vm->serial), "%s",
		 spec->serial_log_path ? spec->serial_log_path : "");
	snprintf(vm->serial_shown, sizeof(vm->serial_shown), "%s",
		 spec->serial_log_shown ? spec->serial_log_shown : vm->serial);

	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0) {
		int r = -errno;
		free(vm);
		return err_set(e, r, "fake VMM: pipe: %s", strerror(-r));
	}
	int r = spawn_child(loop, vm, spec, fds[1], e);
	close(fds[1]);
	if (r < 0) {
		close(fds[0]);
		return r;
	}
	start_supervision(loop, vm, fds[0]);
	*out = vm;
	return 0;
}

static void on_escalate(uv_timer_t *t)
{
	struct vmm_vm *vm = t->data;
	double waited = (double)(uv_now(t->loop) - vm->stop_ms) / 1000.0;
	if (vm->exited_proc)
		return;
	if (vm->esc_stage == 1) {
		log_warn("vm %s: the guest did not power off within %.1f s of the graceful stop; "
			 "sending SIGTERM (FLEETBOX_STOP_TIMEOUT widens this)", vm->name, waited);
		vm->esc_stage = 2;
		record_op("term", vm->name);
		uv_process_kill(&vm->proc, SIGTERM);
		uv_timer_start(&vm->timer, on_escalate, TO_TERM_MS, 0);
		return;
	}
	log_warn("vm %s: fake VMM still running %.1f s after the %s; sending SIGKILL", vm->name,
		 waited, vm->halting ? "halt" : "stop request");
	record_op("kill", vm->name);
	uv_process_kill(&vm->proc, SIGKILL);
}

static void fake_stop(struct vmm_vm *vm, uint64_t grace_ms)
{
	if (vm->exited_proc || vm->halting || (vm->stop_requested && grace_ms))
		return;
	uv_loop_t *loop = vm->timer.loop;
	uv_update_time(loop);
	if (!vm->stop_requested)
		vm->stop_ms = uv_now(loop);
	vm->stop_requested = true;
	uv_timer_stop(&vm->timer);
	uv_timer_stop(&vm->watch);
	if (grace_ms == 0 || !vm->ready_sent) {
		/* A halt, or still booting (nothing listens for ACPI yet). */
		vm->halting = grace_ms == 0;
		vm->esc_stage = 2;
		record_op(vm->halting ? "halt" : "term", vm->name);
		uv_process_kill(&vm->proc, SIGTERM);
		uv_timer_start(&vm->timer, on_escalate, vm->halting ? TO_HALT_MS : TO_TERM_MS, 0);
		return;
	}
	vm->esc_stage = 1;
	record_op("stop", vm->name);
	uv_process_kill(&vm->proc, SIGUSR1);
	uv_timer_start(&vm->timer, on_escalate, grace_ms, 0);
}

static void fake_kill(struct vmm_vm *vm)
{
	if (vm->exited_proc)
		return;
	vm->killed = true;
	uv_process_kill(&vm->proc, SIGKILL);
}

static pid_t fake_pid(const struct vmm_vm *vm)
{
	return vm->exited_proc ? 0 : vm->proc.pid;
}

const struct vmm_driver vmm_fake_driver = {
	.name = "fake",
	.needs_network = false,
	.boot = fake_boot,
	.stop = fake_stop,
	.kill = fake_kill,
	.pid = fake_pid,
};

/* --- the fake VM process --------------------------------------------- */

struct fake_guest {
	const char *name;
	FILE *log;
	sigset_t set;
	bool ignore_term;
};

static long env_ms(const char *name)
{
	const char *v = getenv(name);
	long ms = v && *v ? strtol(v, NULL, 10) : 0;
	return ms > 0 ? ms : 0;
}

static void guest_say(struct fake_guest *g, const char *fmt, const char *arg)
{
	if (!g->log)
		return;
	fprintf(g->log, "fleetbox fake vm %s: ", g->name);
	fprintf(g->log, fmt, arg);
	fputc('\n', g->log);
	fflush(g->log);
}

/* Waits up to ms (< 0: forever) for a signal of the set; 0 on timeout. */
static int guest_wait(struct fake_guest *g, long ms)
{
	int sig;
	if (ms < 0) {
		while (sigwait(&g->set, &sig) != 0)
			;
		return sig;
	}
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	do
		sig = sigtimedwait(&g->set, NULL, &ts);
	while (sig < 0 && errno == EINTR);
	return sig > 0 ? sig : 0;
}

/* SIGTERM ends the "VMM" (status 143: not a guest power-off) unless it is
 * told to ignore it; returns only when ignored. */
static void guest_term(struct fake_guest *g)
{
	if (g->ignore_term) {
		guest_say(g, "%s", "ignoring SIGTERM");
		return;
	}
	guest_say(g, "%s", "terminating on signal 15");
	exit(143);
}

/* The ACPI button: the guest takes FLEETBOX_FAKE_POWEROFF_MS to power off;
 * SIGTERM meanwhile ends the VMM like QEMU's. */
static int guest_power_off(struct fake_guest *g)
{
	guest_say(g, "%s", "power button pressed: shutting down");
	long left = env_ms("FLEETBOX_FAKE_POWEROFF_MS");
	uint64_t t0 = uv_hrtime();
	while (left > 0) {
		int sig = guest_wait(g, left);
		if (sig == 0)
			break;
		if (sig == SIGTERM)
			guest_term(g);
		left -= (long)((uv_hrtime() - t0) / 1000000);
		t0 = uv_hrtime();
	}
	guest_say(g, "%s", "reboot: Power down");
	return 0;
}

static int guest_run(struct fake_guest *g)
{
	long self_off = env_ms("FLEETBOX_FAKE_SELF_POWEROFF_MS");
	for (;;) {
		int sig = guest_wait(g, self_off > 0 ? self_off : -1);
		if (sig == 0) {
			guest_say(g, "%s", "poweroff from inside: reboot: Power down");
			return 0;
		}
		if (sig == SIGUSR1)
			return guest_power_off(g);
		if (sig == SIGTERM || sig == SIGINT)
			guest_term(g);
	}
}

/* The fake VM process: prints a boot banner to its "serial log", says
 * "ready" on stdout, then behaves as the FLEETBOX_FAKE_* knobs say. */
int vmm_fake_vm_main(int argc, char **argv)
{
	struct fake_guest g = { .name = argc > 2 ? argv[2] : "?" };
	const char *serial = argc > 3 ? argv[3] : "";
	long boot_ms = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
	const char *it = getenv("FLEETBOX_FAKE_IGNORE_TERM");
	g.ignore_term = it && *it == '1';
	sigemptyset(&g.set);
	sigaddset(&g.set, SIGTERM);
	sigaddset(&g.set, SIGINT);
	sigaddset(&g.set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &g.set, NULL);
	g.log = *serial ? fopen(serial, "ae") : NULL;
	if (g.log)
		(void)owner_claim_fd(fileno(g.log)); /* a log: best effort */
	guest_say(&g, "%s", "booting");
	const char *console = getenv("FLEETBOX_FAKE_CONSOLE");
	if (console && *console) {
		if (g.log) {
			fputs(console, g.log);
			fflush(g.log);
		}
		for (;;) /* stuck, as a guest in an emergency shell is */
			if (guest_wait(&g, -1) == SIGTERM)
				guest_term(&g);
	}
	/* Pretend to boot; like a real VMM, a stop during boot ends it. */
	if (boot_ms > 0 && guest_wait(&g, boot_ms) != 0)
		return 0;
	guest_say(&g, "%s", "booted");
	printf("ready\n");
	fflush(stdout);
	int r = guest_run(&g);
	if (g.log)
		fclose(g.log);
	return r;
}
