/* holder_bench - control-plane costs of the holder, with the fake VMM:
 *   - status round trip (connect, request, reply, close) on a member socket,
 *     against a minimal blocking unix-socket responder as the baseline;
 *   - holder idle RSS with N members;
 *   - bound-mode teardown after SIGKILL of the owning process.
 * Prints one JSON object per line. Not a test: no thresholds.
 * usage: holder_bench FLEETBOX_BINARY [rounds] */
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/fileio.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int dial(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static double one_rtt(const char *path)
{
	static const char req[] = "{\"cmd\":\"status\"}\n";
	char buf[1024];
	double t0 = now_us();
	int fd = dial(path);
	if (fd < 0)
		return -1;
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < sizeof(buf)) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	close(fd);
	return now_us() - t0;
}

static void report_rtt(const char *name, const char *path, int rounds)
{
	double *v = calloc((size_t)rounds, sizeof(double));
	int ok = 0;
	for (int i = 0; i < rounds; i++) {
		double d = one_rtt(path);
		if (d >= 0)
			v[ok++] = d;
	}
	qsort(v, (size_t)ok, sizeof(double), cmp_d);
	printf("{\"bench\":\"%s\",\"rounds\":%d,\"median_us\":%.1f,\"p99_us\":%.1f,\"min_us\":%.1f}\n",
	       name, ok, ok ? v[ok / 2] : 0, ok ? v[(ok * 99) / 100] : 0, ok ? v[0] : 0);
	free(v);
}

/* The baseline: the least a unix-socket request/reply can cost here. */
static pid_t start_baseline(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 64) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		static const char rep[] = "{\"status\":{\"name\":\"x\",\"pid\":1,\"running\":true,\"state\":\"running\"}}\n";
		char buf[512];
		for (;;) {
			int c = accept(s, NULL, NULL);
			if (c < 0)
				continue;
			ssize_t n = read(c, buf, sizeof(buf));
			if (n > 0 && write(c, rep, sizeof(rep) - 1) < 0)
				_exit(1);
			close(c);
		}
	}
	close(s);
	return pid;
}

static long rss_kb(pid_t pid)
{
	char p[64], *s;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	if (file_read_all(p, 1 << 16, &s, NULL) < 0)
		return -1;
	char *r = strstr(s, "VmRSS:");
	long v = r ? strtol(r + 6, NULL, 10) : -1;
	free(s);
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: holder_bench FLEETBOX_BINARY [rounds]\n");
		return 2;
	}
	int rounds = argc > 2 ? atoi(argv[2]) : 2000;
	char root[] = "/tmp/fb-bench-XXXXXX";
	if (!mkdtemp(root))
		return 1;
	setenv("FLEETBOX_HOME", root, 1);
	setenv("FLEETBOX_VMM", "fake", 1);
	setenv("FLEETBOX_HELPER", argv[1], 1);
	char img[128], k[160];
	snprintf(img, sizeof(img), "%s/tiny.img", root);
	snprintf(k, sizeof(k), "%s.vmlinuz", img);
	file_write_atomic(img, "\0\0\0\0", 4, 0644);
	file_write_atomic(k, "k", 1, 0644);

	/* RTT: holder vs baseline, interleaved in the same run. */
	const char *names[] = { "bench-1", "bench-2", "bench-3", "bench-4" };
	fb_up_options o = { .names = names, .n_names = 4, .bound = 1, .image = img };
	fb_cluster *c;
	fb_error e;
	double t0 = now_us();
	if (fb_up(&o, &c, &e) < 0) {
		fprintf(stderr, "fb_up: %s\n", e.message);
		return 1;
	}
	printf("{\"bench\":\"up_4_fake_members\",\"ms\":%.1f}\n", (now_us() - t0) / 1000);
	char sock[128], base[160];
	wire_sock_path(root, "bench-1", sock, sizeof(sock));
	snprintf(base, sizeof(base), "%s/baseline.sock", root);
	pid_t bp = start_baseline(base);
	report_rtt("status_rtt_holder", sock, rounds);
	report_rtt("status_rtt_baseline_blocking_server", base, rounds);
	kill(bp, SIGKILL);
	waitpid(bp, NULL, 0);
	pid_t holder = fb_cluster_holder_pid(c);
	printf("{\"bench\":\"holder_idle_rss\",\"members\":4,\"rss_kb\":%ld}\n", rss_kb(holder));
	fb_cluster_close(c, &e);

	/* Bound teardown after SIGKILL of the owner. */
	int pfd[2];
	if (pipe(pfd) < 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		fb_cluster *cc;
		if (fb_up(&o, &cc, &e) < 0)
			_exit(1);
		pid_t hp = fb_cluster_holder_pid(cc);
		if (write(pfd[1], &hp, sizeof(hp)) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	pid_t hp = 0;
	if (read(pfd[0], &hp, sizeof(hp)) != sizeof(hp))
		return 1;
	int pidfd = (int)syscall(SYS_pidfd_open, hp, 0);
	t0 = now_us();
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	poll(&p, 1, 30000);
	printf("{\"bench\":\"bound_teardown_after_sigkill\",\"members\":4,\"ms\":%.2f}\n",
	       (now_us() - t0) / 1000);
	rm_rf(root);
	return 0;
}
