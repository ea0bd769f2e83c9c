/* test_fetch.c - downloads into a private image cache over loopback only: a
 * python3 http.server bound to 127.0.0.1 (its request log proves what was
 * fetched), a one-shot canned HTTP responder for malformed answers, and
 * file:// URLs. What is served are real (small) disk images with a kernel,
 * since only an image that validates is kept. */
#include "../unit/check.h"
#include "disk.h"

#include "client/image/image.h"
#include "client/image/remote.h"
#include "util/err.h"
#include "util/fileio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[PATH_MAX], root[PATH_MAX], srv[PATH_MAX], logp[PATH_MAX], cache[PATH_MAX];
static int port;
static pid_t server;

static const char *at(const char *fmt, const char *name)
{
	static char buf[8][PATH_MAX];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), fmt, name);
	return buf[i];
}

static void digest_file(const char *path, const EVP_MD *md, char *hex)
{
	char *data = NULL;
	size_t len = 0;
	CHECK_INT(file_read_all(path, 1u << 30, &data, &len), 0);
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	CHECK(EVP_Digest(data, len, out, &n, md, NULL) == 1);
	for (unsigned i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", out[i]);
	free(data);
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	socklen_t l = sizeof(a);
	CHECK(getsockname(s, (struct sockaddr *)&a, &l) == 0);
	close(s);
	return ntohs(a.sin_port);
}

static bool can_connect(int p)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

static void start_server(void)
{
	port = free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	server = fork();
	CHECK(server >= 0);
	if (server == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("python3", "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
		       "--directory", srv, ps, (char *)NULL);
		_exit(127);
	}
	/* bounded wait for the listener: 10 s */
	for (int i = 0; i < 200 && !can_connect(port); i++) {
		int st;
		CHECK(waitpid(server, &st, WNOHANG) == 0);
		usleep(50 * 1000);
	}
	CHECK(can_connect(port));
}

static void stop_server(void)
{
	kill(server, SIGTERM);
	int st;
	CHECK(waitpid(server, &st, 0) == server);
}

/* Requests for /name in the server log. */
static int requests(const char *name)
{
	char *log = NULL;
	size_t len = 0;
	CHECK_INT(file_read_all(logp, 1 << 20, &log, &len), 0);
	char pat[256];
	snprintf(pat, sizeof(pat), "\"GET /%s HTTP", name);
	int n = 0;
	for (const char *p = log; (p = strstr(p, pat)); p++)
		n++;
	free(log);
	return n;
}

struct lines {
	int n;
	char last[256];
	bool waited;
	char any_unpinned[256];
};

static void on_progress(void *data, const char *line)
{
	struct lines *l = data;
	l->n++;
	snprintf(l->last, sizeof(l->last), "%s", line);
	if (strstr(line, "waiting for another download"))
		l->waited = true;
	if (strstr(line, "unpinned"))
		snprintf(l->any_unpinned, sizeof(l->any_unpinned), "%s", line);
}

static char small_sha256[65], big_sha256[65], big_sha512[129];

static int fetch(const char *url, struct lines *l, char *path, struct err *e)
{
	struct image_info img;
	int r = image_resolve(root, url, on_progress, l, &img, e);
	if (r == 0)
		snprintf(path, PATH_MAX, "%s", img.base);
	return r;
}

/* Published images in the cache; never a temporary left behind. */
static int image_files(void)
{
	char d[PATH_MAX];
	snprintf(d, sizeof(d), "%s/tmp", cache);
	CHECK_INT(count_suffix(d, ""), 2);
	snprintf(d, sizeof(d), "%s/images", cache);
	return count_suffix(d, "") - 2;
}

static void test_ok_and_cached(void)
{
	char url[512], path[PATH_MAX];
	struct lines l = {0};
	struct err e = {0};
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/small.img#sha256=%s", port, small_sha256);
	CHECK_INT(fetch(url, &l, path, &e), 0);
	CHECK(strncmp(path, cache, strlen(cache)) == 0);
	CHECK(strstr(path, "/images/sha256-") != NULL);
	CHECK(files_equal(path, at("%s/small.img", srv)));
	CHECK(l.n >= 1);
	CHECK(strstr(l.last, "reading the kernel out of small.img") != NULL);
	CHECK_INT(requests("small.img"), 1);
	CHECK_INT(image_files(), 1);

	/* cached: no second request */
	char again[PATH_MAX];
	struct lines l2 = {0};
	CHECK_INT(fetch(url, &l2, again, &e), 0);
	CHECK_STR(again, path);
	CHECK_INT(l2.n, 0);
	CHECK_INT(requests("small.img"), 1);
}

static void test_mismatch_and_404(void)
{
	char url[512], path[PATH_MAX];
	struct lines l = {0};
	struct err e = {0};
	/* the big file's digest pinned on the small file */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/small.img#sha256=%s", port, big_sha256);
	CHECK_INT(fetch(url, &l, path, &e), -EBADMSG);
	CHECK(strstr(e.msg, "checksum mismatch") != NULL);
	CHECK(strstr(e.msg, small_sha256) != NULL);
	CHECK_INT(requests("small.img"), 2);
	CHECK_INT(image_files(), 1);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope.img", port);
	CHECK_INT(fetch(url, &l, path, &e), -EIO);
	CHECK(strstr(e.msg, "HTTP 404") != NULL);
	CHECK_INT(requests("nope.img"), 1);
	CHECK_INT(image_files(), 1);

	/* nothing listening */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x.img", free_port());
	CHECK_INT(fetch(url, &l, path, &e), -EIO);
	CHECK_INT(image_files(), 1);
}

static void test_unpinned_and_file(void)
{
	char url[PATH_MAX + 64], path[PATH_MAX];
	struct lines l = {0};
	struct err e = {0};
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/small.img", port);
	CHECK_INT(fetch(url, &l, path, &e), 0);
	CHECK(files_equal(path, at("%s/small.img", srv)));
	/* the digest to pin it with is reported; the same content is one image */
	CHECK(strstr(l.any_unpinned, small_sha256) != NULL);
	CHECK_INT(image_files(), 1);

	snprintf(url, sizeof(url), "file://%s/small.img#sha256=%s", srv, small_sha256);
	CHECK_INT(fetch(url, &l, path, &e), 0);
	CHECK(files_equal(path, at("%s/small.img", srv)));
	CHECK_INT(image_files(), 1);
	snprintf(url, sizeof(url), "file://%s/absent.img", srv);
	CHECK(fetch(url, &l, path, &e) < 0);
	CHECK_INT(image_files(), 1);
}

/* A download that is not a bootable image fails validation, is not kept,
 * and is fetched again next time (nothing recorded for its URL). */
static void test_invalid_not_kept(void)
{
	char url[512], path[PATH_MAX];
	struct lines l = {0};
	struct err e = {0};
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/junk.img", port);
	CHECK(fetch(url, &l, path, &e) < 0);
	CHECK(strstr(e.msg, "junk.img") != NULL);
	CHECK_INT(image_files(), 1);
	CHECK(fetch(url, &l, path, &e) < 0);
	CHECK_INT(requests("junk.img"), 2);
	CHECK_INT(image_files(), 1);
}

/* A store of an older fleetbox kept the download as <store>/images/<key>-<name>:
 * it is imported from there (verified again), with no request. */
static void test_legacy_store(void)
{
	char url[512], path[PATH_MAX], legacy[PATH_MAX];
	struct image_source src;
	struct err e = {0};
	struct lines l = {0};
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/gone.img#sha256=%s", port, big_sha256);
	CHECK_INT(image_source_parse(url, &src, &e), 0);
	snprintf(legacy, sizeof(legacy), "%s/images", root);
	CHECK_INT(mkdir_p(legacy, 0755), 0);
	snprintf(legacy, sizeof(legacy), "%s/images/%s", root, src.file);
	const char *cp[] = { "cp", "--sparse=always", at("%s/big.img", srv), legacy, NULL };
	run(cp);
	CHECK_INT(fetch(url, &l, path, &e), 0);
	CHECK_INT(requests("gone.img"), 0);
	CHECK(files_equal(path, legacy));
	CHECK(exists(legacy)); /* left in place: older member disks back onto it */
	/* a legacy file that does not match the pin is refused */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/gone2.img#sha256=%s", port, small_sha256);
	CHECK_INT(image_source_parse(url, &src, &e), 0);
	snprintf(legacy, sizeof(legacy), "%s/images/%s", root, src.file);
	const char *cp2[] = { "cp", at("%s/big.img", srv), legacy, NULL };
	run(cp2);
	CHECK_INT(fetch(url, &l, path, &e), -EBADMSG);
	CHECK(strstr(e.msg, "checksum mismatch") != NULL);
}

/* One-shot responder: accepts one connection, reads the request head,
 * writes the canned answer and closes. */
struct canned {
	int fd;
	const char *resp;
	size_t len;
};

static void *canned_run(void *arg)
{
	struct canned *c = arg;
	int s = accept(c->fd, NULL, NULL);
	if (s >= 0) {
		char buf[4096];
		size_t got = 0;
		while (got < sizeof(buf) - 1) {
			ssize_t n = read(s, buf + got, sizeof(buf) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			buf[got] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		ssize_t w = write(s, c->resp, c->len);
		(void)w;
		close(s);
	}
	return NULL;
}

static int canned_fetch(const char *resp, size_t len, struct err *e)
{
	struct canned c = { .resp = resp, .len = len };
	c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c.fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(bind(c.fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(c.fd, 4) == 0);
	socklen_t al = sizeof(a);
	CHECK(getsockname(c.fd, (struct sockaddr *)&a, &al) == 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, canned_run, &c) == 0);
	char url[128], path[PATH_MAX];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/canned.img", ntohs(a.sin_port));
	struct lines l = {0};
	int r = fetch(url, &l, path, e);
	CHECK(pthread_join(t, NULL) == 0);
	close(c.fd);
	return r;
}

static void test_short_and_redirect(void)
{
	struct err e = {0};
	static char resp[8192];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n");
	memset(resp + n, 'x', 5000);
	CHECK(canned_fetch(resp, (size_t)n + 5000, &e) < 0);
	CHECK(strstr(e.msg, "canned.img") != NULL);
	CHECK_INT(image_files(), 2);

	/* a redirect may not reach file:// */
	const char *redir = "HTTP/1.1 302 Found\r\nLocation: file:///etc/hostname\r\n"
			    "Content-Length: 0\r\nConnection: close\r\n\r\n";
	CHECK(canned_fetch(redir, strlen(redir), &e) < 0);
	CHECK_INT(image_files(), 2);
}

/* A full disk, simulated by RLIMIT_FSIZE in a child: nothing left behind. */
static void test_disk_full(void)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = { 1 << 20, 1 << 20 };
		CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
		char url[512], path[PATH_MAX];
		struct lines l = {0};
		struct err e = {0};
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/big.img#sha256=%s", port,
			 big_sha256);
		int r = fetch(url, &l, path, &e);
		if (r != -EFBIG)
			fprintf(stderr, "disk full: got %d: %s\n", r, e.msg);
		_exit(r == -EFBIG && strstr(e.msg, "writing") ? 0 : 1);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_INT(image_files(), 2);
}

/* Four processes fetch the same big image at once: one request, one file. */
static void test_concurrent(size_t big)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big.img#sha256=%s", port, big_sha256);
	int before = requests("big.img");
	int pipefd[2];
	CHECK(pipe(pipefd) == 0);
	double t0 = now_s();
	pid_t kids[4];
	for (int i = 0; i < 4; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0);
		if (kids[i] == 0) {
			close(pipefd[0]);
			char path[PATH_MAX];
			struct lines l = {0};
			struct err e = {0};
			int r = fetch(url, &l, path, &e);
			if (r < 0)
				fprintf(stderr, "child: %s\n", e.msg);
			ssize_t w = write(pipefd[1], path, strlen(path) + 1);
			(void)w;
			_exit(r == 0 ? 0 : 1);
		}
	}
	close(pipefd[1]);
	for (int i = 0; i < 4; i++) {
		int st;
		CHECK(waitpid(kids[i], &st, 0) == kids[i]);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	double dt = now_s() - t0;
	char paths[4 * PATH_MAX];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(pipefd[0], paths + got, sizeof(paths) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pipefd[0]);
	const char *p = paths;
	for (int i = 0; i < 4; i++) {
		CHECK(p < paths + got);
		CHECK_STR(p, paths);
		p += strlen(p) + 1;
	}
	CHECK(files_equal(paths, at("%s/big.img", srv)));
	CHECK_INT(requests("big.img") - before, 1);
	CHECK_INT(image_files(), 2);
	printf("concurrent: 4 fetches of %zu MiB in %.2f s (one download)\n", big >> 20, dt);
}

/* Throughput on loopback, with a sha512 pin. */
static void test_throughput(size_t big)
{
	char url[512], path[PATH_MAX];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big.img#sha512=%s", port, big_sha512);
	struct lines l = {0};
	struct err e = {0};
	double t0 = now_s();
	CHECK_INT(fetch(url, &l, path, &e), 0);
	double dt = now_s() - t0;
	CHECK(files_equal(path, at("%s/big.img", srv)));
	printf("throughput: %zu MiB in %.2f s = %.0f MiB/s (python http.server, sha512)\n",
	       big >> 20, dt, (double)(big >> 20) / dt);
	printf("last progress line: %s\n", l.last);
	CHECK(l.n >= 2);
}

/* small.img: a 4 MiB ext4 disk with a kernel; big.img: the same with big
 * MiB of incompressible data (dense: written out, as a download would be);
 * junk.img: random bytes. */
static void make_served(size_t big)
{
	char tree[PATH_MAX];
	snprintf(tree, sizeof(tree), "%s/tree", dir);
	mkdir_or_die(tree);
	mkdir_or_die(at("%s/tree/boot", dir));
	write_random(at("%s/tree/boot/vmlinuz-1", dir), 100 * 1024 + 3);
	symlink_or_die("boot/vmlinuz-1", at("%s/tree/vmlinuz", dir));
	disk_make_plain(at("%s/small.img", srv), 4, tree);
	write_random(at("%s/tree/blob", dir), big);
	disk_make_plain(at("%s/big.img", srv), (big >> 20) + (big >> 22) + 8, tree);
	char dense[PATH_MAX];
	snprintf(dense, sizeof(dense), "%s/big.dense", dir);
	const char *cp[] = { "cp", "--sparse=never", at("%s/big.img", srv), dense, NULL };
	run(cp);
	CHECK(rename(dense, at("%s/big.img", srv)) == 0);
	write_random(at("%s/junk.img", srv), (1 << 20) + 5);
}

int main(void)
{
	/* loopback only: never via a proxy from the environment */
	static const char *proxies[] = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
					 "all_proxy", "ALL_PROXY" };
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	char tmpl[] = "image-fetch-XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	CHECK(realpath(tmpl, dir) != NULL);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(srv, sizeof(srv), "%s/srv", dir);
	snprintf(logp, sizeof(logp), "%s/server.log", dir);
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	setenv("FLEETBOX_CACHE", cache, 1);
	mkdir_or_die(srv);
	const char *mb = getenv("FLEETBOX_IMAGE_BENCH_MB");
	size_t big = (size_t)(mb && atoi(mb) >= 16 ? atoi(mb) : 64) << 20;
	make_served(big);
	digest_file(at("%s/small.img", srv), EVP_sha256(), small_sha256);
	digest_file(at("%s/big.img", srv), EVP_sha256(), big_sha256);
	digest_file(at("%s/big.img", srv), EVP_sha512(), big_sha512);
	start_server();
	test_ok_and_cached();
	test_mismatch_and_404();
	test_unpinned_and_file();
	test_invalid_not_kept();
	test_legacy_store();
	test_short_and_redirect();
	test_disk_full();
	test_concurrent(big);
	test_throughput(big);
	stop_server();
	CHECK_INT(rm_rf(dir), 0);
	printf("ok\n");
	return 0;
}
