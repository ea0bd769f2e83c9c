/* fake.c - a VMM driver that runs each "VM" as a real child process (our own
 * binary in --fleetbox-fake-vm mode) so spawn, supervision, reaping and
 * PDEATHSIG are exercised for real, without booting anything.
 *
 * FLEETBOX_FAKE_RECORD=<file>: one JSON line per driver call is appended
 *   ({"op":"reserve"|"create"|"stop"|"close", ...}); O_APPEND single writes.
 * FLEETBOX_FAKE_FAIL_CREATE=<name>: boot() of that member fails.
 * FLEETBOX_FAKE_BOOT_MS=<ms>: pretend booting takes that long (default 0).
 *
 * Readiness is real: the child writes its banner to the serial log and then
 * "ready\n" to a pipe; only that line makes the VM ready, so a test never sees
 * a "running" member whose process has not started yet. */
#include "vmm/vmm.h"
#include "vmm/fake.h"
#include "util/err.h"
#include "util/log.h"
#include "util/owner.h"

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
	char rbuf[16];
	size_t rlen;
	int open_handles;
	bool exited_proc, stop_requested, ready_sent, killed;
	int64_t exit_status;
	int term_signal;
	struct vmm_callbacks cb;
	void *data;
	char name[64];
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

static void vm_close_cb(uv_handle_t *h)
{
	struct vmm_vm *vm = h->data;
	if (--vm->open_handles > 0)
		return;
	char msg[160] = "";
	bool unexpected = !vm->stop_requested && !vm->killed;
	if (unexpected) {
		if (vm->term_signal)
			snprintf(msg, sizeof(msg), "fake vm %s killed by signal %d", vm->name,
				 vm->term_signal);
		else
			snprintf(msg, sizeof(msg), "fake vm %s exited with status %lld", vm->name,
				 (long long)vm->exit_status);
	}
	if (!vm->ready_sent && vm->cb.ready) {
		vm->ready_sent = true;
		vm->cb.ready(vm->data, -ECANCELED, unexpected ? msg : "stopped during boot");
	}
	vm->cb.exited(vm->data, unexpected, unexpected ? msg : NULL);
	free(vm);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct vmm_vm *vm = p->data;
	vm->exited_proc = true;
	vm->exit_status = status;
	vm->term_signal = sig;
	log_debug("fake vm %s exited (status %lld, signal %d)", vm->name, (long long)status, sig);
	uv_timer_stop(&vm->timer);
	uv_close((uv_handle_t *)&vm->proc, vm_close_cb);
	uv_close((uv_handle_t *)&vm->timer, vm_close_cb);
	if (!uv_is_closing((uv_handle_t *)&vm->ready_pipe))
		uv_close((uv_handle_t *)&vm->ready_pipe, vm_close_cb);
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
	if (!vm->ready_sent && strstr(vm->rbuf, "ready\n")) {
		vm->ready_sent = true;
		vm->cb.ready(vm->data, 0, NULL);
	}
	/* EOF (the child exited) or enough read: this pipe has done its job. */
	if (n < 0 || vm->ready_sent || vm->rlen >= sizeof(vm->rbuf) - 1) {
		uv_read_stop(st);
		if (!uv_is_closing((uv_handle_t *)st))
			uv_close((uv_handle_t *)st, vm_close_cb);
	}
}

static void free_vm_cb(uv_handle_t *h)
{
	free(h->data);
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

	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0) {
		int r = -errno;
		free(vm);
		return err_set(e, r, "fake VMM: pipe: %s", strerror(-r));
	}
	char boot_ms[24];
	const char *ms = getenv("FLEETBOX_FAKE_BOOT_MS");
	snprintf(boot_ms, sizeof(boot_ms), "%s", ms && *ms ? ms : "0");
	char *argv[] = { (char *)vmm_self_exe(), (char *)"--fleetbox-fake-vm", (char *)spec->name,
			 (char *)(spec->serial_log_path ? spec->serial_log_path : ""), boot_ms, NULL };
	vm->proc.data = vm;
	int r = vmm_spawn(loop, &vm->proc, argv, fds[1], on_exit_cb, spec);
	close(fds[1]);
	if (r < 0) {
		close(fds[0]);
		err_set(e, r, "fake VMM: spawn: %s", uv_strerror(r));
		/* uv_spawn registers the handle even when it fails: close it. */
		if (vm->proc.type == UV_PROCESS)
			uv_close((uv_handle_t *)&vm->proc, free_vm_cb);
		else
			free(vm);
		return r;
	}
	vm->open_handles = 3;
	uv_timer_init(loop, &vm->timer);
	vm->timer.data = vm;
	uv_pipe_init(loop, &vm->ready_pipe, 0);
	vm->ready_pipe.data = vm;
	if (uv_pipe_open(&vm->ready_pipe, fds[0]) < 0 ||
	    uv_read_start((uv_stream_t *)&vm->ready_pipe, ready_alloc, on_ready_read) < 0) {
		/* Without the pipe we cannot see readiness: stop the child; the exit
		 * path reports the failure through ready(). */
		vm->killed = true;
		uv_process_kill(&vm->proc, SIGKILL);
	}
	*out = vm;
	return 0;
}

static void on_escalate(uv_timer_t *t)
{
	struct vmm_vm *vm = t->data;
	if (vm->exited_proc)
		return;
	log_info("fake vm %s ignored SIGTERM for 5 s; sending SIGKILL", vm->name);
	uv_process_kill(&vm->proc, SIGKILL);
}

static void fake_stop(struct vmm_vm *vm)
{
	if (vm->stop_requested || vm->exited_proc)
		return;
	vm->stop_requested = true;
	json_t *o = json_pack("{s:s, s:s}", "op", "stop", "name", vm->name);
	record(o);
	uv_process_kill(&vm->proc, SIGTERM);
	uv_timer_stop(&vm->timer);
	uv_timer_start(&vm->timer, on_escalate, 5000, 0);
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

/* The fake VM process: prints a boot banner to its "serial log", then waits
 * for a signal. SIGTERM is a clean power-off. */
int vmm_fake_vm_main(int argc, char **argv)
{
	const char *name = argc > 2 ? argv[2] : "?";
	const char *serial = argc > 3 ? argv[3] : "";
	long boot_ms = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	FILE *log = *serial ? fopen(serial, "ae") : NULL;
	if (log) {
		(void)owner_claim_fd(fileno(log)); /* a log: best effort */
		fprintf(log, "fleetbox fake vm %s: booting\n", name);
		fflush(log);
	}
	int sig = 0;
	if (boot_ms > 0) {
		/* Pretend to boot; like a real VMM, a stop during boot ends it. */
		struct timespec ts = { boot_ms / 1000, (boot_ms % 1000) * 1000000L };
		do
			sig = sigtimedwait(&set, NULL, &ts);
		while (sig < 0 && errno == EINTR);
		if (sig > 0) {
			if (log)
				fclose(log);
			return 0;
		}
		sig = 0;
	}
	if (log) {
		fprintf(log, "fleetbox fake vm %s: booted\n", name);
		fflush(log);
	}
	printf("ready\n");
	fflush(stdout);
	sigwait(&set, &sig);
	if (log) {
		fprintf(log, "fleetbox fake vm %s: power off (signal %d)\n", name, sig);
		fclose(log);
	}
	return 0;
}
