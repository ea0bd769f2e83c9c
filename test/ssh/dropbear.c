/* dropbear.c - see dropbear.h. */
#include "dropbear.h"
#include <sys/ioctl.h>
#include <net/if.h>
#include "client/ssh/keys.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* A connect() that succeeds means dropbear listens. Bounded: 10 s. */
static int wait_listening(int port, pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return 0;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		poll(NULL, 0, 50);
	}
	return -1;
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	CHECK(file_write_atomic(path, data, strlen(data), mode) == 0);
}

static struct tdb *active;
static pid_t owner;

/* A failed CHECK exits the test: still stop dropbear and remove the scratch dir
 * (only in the process that started them, not in forked children). */
static void cleanup_at_exit(void)
{
	if (active && getpid() == owner)
		tdb_stop(active);
}

/* <dir>/passwd = /etc/passwd + "<user>:x:0:0::<home>:/bin/sh", bound over
 * /etc/passwd (the mount namespace is already private). */
static void add_user(struct tdb *d, const char *user, const char *home)
{
	char *pw = NULL, path[PATH_MAX];
	size_t n;
	CHECK(file_read_all("/etc/passwd", 1 << 20, &pw, &n) == 0);
	size_t cap = n + strlen(user) + strlen(home) + 64;
	char *out = malloc(cap);
	CHECK(out);
	CHECK(snprintf(out, cap, "%s%s%s:x:0:0:fleetbox test:%s:/bin/sh\n", pw,
		       n && pw[n - 1] != '\n' ? "\n" : "", user, home) < (int)cap);
	FMT(path, "%s/passwd", d->dir);
	write_file(path, out, 0644);
	free(out);
	free(pw);
	CHECK(mount(path, "/etc/passwd", "none", MS_BIND, NULL) == 0);
	d->passwd_bound = 1;
}

int tdb_start(struct tdb *d)
{
	return tdb_start_as(d, 0, NULL);
}

int tdb_start_as(struct tdb *d, int port, const char *user)
{
	struct err e = { 0 };
	memset(d, 0, sizeof(*d));
	if (geteuid() != 0) {
		fprintf(stderr, "skip: needs root (private mount namespace for dropbear)\n");
		return TEST_SKIP;
	}
	if (access("/usr/sbin/dropbear", X_OK) != 0) {
		fprintf(stderr, "skip: dropbear not installed\n");
		return TEST_SKIP;
	}
	struct passwd *pw = getpwuid(0);
	CHECK(pw && pw->pw_dir && pw->pw_dir[0] == '/');
	if (unshare(CLONE_NEWNS) < 0) {
		fprintf(stderr, "skip: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return TEST_SKIP;
	}
	CHECK(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0);

	FMT(d->dir, "/tmp/fbssh-XXXXXX");
	CHECK(mkdtemp(d->dir) != NULL);
	active = d;
	owner = getpid();
	atexit(cleanup_at_exit);
	FMT(d->store, "%s/store", d->dir);
	FMT(d->hostdir, "%s/host", d->dir);
	CHECK(mkdir(d->hostdir, 0700) == 0);
	CHECK_OK(keys_ensure_installation(d->store, &e), &e);
	CHECK_OK(keys_ensure_host(d->hostdir, "fleetbox-test", &e), &e);

	char home[PATH_MAX], sshdir[PATH_MAX], ak[PATH_MAX], pub[PATH_MAX], hk[PATH_MAX],
		hkdb[PATH_MAX], log[PATH_MAX];
	FMT(home, "%s/home", d->dir);
	FMT(sshdir, "%s/.ssh", home);
	FMT(ak, "%s/authorized_keys", sshdir);
	FMT(pub, "%s/id_ed25519.pub", d->store);
	FMT(hk, "%s/ssh_host_ed25519_key", d->hostdir);
	FMT(hkdb, "%s/dropbear_ed25519", d->hostdir);
	FMT(log, "%s/dropbear.log", d->dir);
	CHECK(mkdir(home, 0700) == 0 && mkdir(sshdir, 0700) == 0);
	char *pubs = NULL;
	size_t n;
	CHECK(file_read_all(pub, 4096, &pubs, &n) == 0);
	write_file(ak, pubs, 0600);
	free(pubs);
	CHECK(mount(home, pw->pw_dir, "none", MS_BIND, NULL) == 0);
	if (user && strcmp(user, "root") != 0)
		add_user(d, user, pw->pw_dir);

	struct cmd c;
	cmd_init(&c, "dropbearconvert");
	cmd_add(&c, "openssh");
	cmd_add(&c, "dropbear");
	cmd_add(&c, hk);
	cmd_add(&c, hkdb);
	CHECK_OK(cmd_run(&c, NULL, &e), &e);
	cmd_fini(&c);

	d->port = port > 0 ? port : free_port();
	char listen[64];
	FMT(listen, "127.0.0.1:%d", d->port);
	pid_t parent = getpid();
	d->pid = fork();
	CHECK(d->pid >= 0);
	if (d->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		char pidf[PATH_MAX + 8];
		snprintf(pidf, sizeof(pidf), "%s/pid", d->dir);
		execl("/usr/sbin/dropbear", "dropbear", "-F", "-E", "-s", "-m", "-r", hkdb, "-p",
		      listen, "-P", pidf, (char *)NULL);
		_exit(127);
	}
	if (wait_listening(d->port, d->pid) < 0) {
		char *l = NULL;
		if (file_read_all(log, 65536, &l, &n) == 0)
			fprintf(stderr, "dropbear log:\n%s\n", l);
		CHECK(!"dropbear did not start listening");
	}

	struct ssh_target *t = &d->target;
	FMT(t->name, "dropbear");
	FMT(t->host, "127.0.0.1");
	t->port = d->port;
	FMT(t->user, "%s", user ? user : "root");
	FMT(t->key_path, "%s/id_ed25519", d->store);
	char hkpub[PATH_MAX], *line = NULL;
	FMT(hkpub, "%s.pub", hk);
	CHECK(file_read_all(hkpub, 4096, &line, &n) == 0);
	line[strcspn(line, "\n")] = '\0';
	FMT(t->hostkey_pub, "%s", line);
	free(line);
	t->connect_timeout_ms = 5000;
	return 0;
}

void tdb_stop(struct tdb *d)
{
	if (d == active)
		active = NULL;
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		int st;
		waitpid(d->pid, &st, 0);
		d->pid = 0;
	}
	if (d->dir[0]) {
		struct passwd *pw = getpwuid(0);
		if (pw)
			umount2(pw->pw_dir, MNT_DETACH);
		if (d->passwd_bound)
			umount2("/etc/passwd", MNT_DETACH);
		d->passwd_bound = 0;
		rm_rf(d->dir);
		d->dir[0] = '\0';
	}
}

void tdb_other_key(struct tdb *d, char *out, size_t len)
{
	struct err e = { 0 };
	char *pem = NULL, *line = NULL;
	(void)d;
	CHECK_OK(keys_generate("other", &pem, &line, &e), &e);
	CHECK(snprintf(out, len, "%s", line) < (int)len);
	free(pem);
	free(line);
}

int tdb_private_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return r < 0 ? -1 : 0;
}
