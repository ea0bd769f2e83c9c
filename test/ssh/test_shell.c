/* test_shell.c - the interactive shell through a real PTY: a child on the slave
 * side of a pty runs ssh_shell() against dropbear; we type into the master like
 * a user, check the remote sees our window size (and a resize), the output comes
 * back, the child exits with the remote status, and the tty is restored.
 * Then session liveness: a command on a pty (ssh -t), a server that stops
 * answering (frozen with SIGSTOP) ends the session after dead_after_s, and
 * the caller's gone() check ends it at once. */
#include "client/ssh/ssh.h"
#include "util/err.h"
#include "dropbear.h"
#include "t.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static struct tdb db;
static char out[65536];
static size_t out_len;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads from the master until needle shows up, EOF, or the deadline. */
static int read_until(int fd, const char *needle, double deadline)
{
	while (now_s() < deadline) {
		if (needle && memmem(out, out_len, needle, strlen(needle)))
			return 1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, 200);
		if (n <= 0)
			continue;
		ssize_t r = read(fd, out + out_len, sizeof(out) - 1 - out_len);
		if (r <= 0)
			return needle ? 0 : 1; /* EIO: the slave side closed */
		out_len += (size_t)r;
		out[out_len] = '\0';
	}
	return 0;
}

static void expect(int fd, const char *needle, double deadline)
{
	if (!read_until(fd, needle, deadline)) {
		fprintf(stderr, "did not see \"%s\"; output so far:\n%s\n", needle, out);
		CHECK(0);
	}
}

static void type(int fd, const char *s)
{
	CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

/* The per-connection dropbear processes (children of the listener). */
static int signal_sessions(pid_t listener, int sig)
{
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char p[300], buf[512];
		snprintf(p, sizeof(p), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		int ppid = 0;
		if (fgets(buf, sizeof(buf), f)) {
			char *rp = strrchr(buf, ')');
			if (rp)
				sscanf(rp + 2, "%*c %d", &ppid);
		}
		fclose(f);
		if (ppid == listener && kill(atoi(de->d_name), sig) == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

static volatile sig_atomic_t gone_flag;

static bool gone(void *data)
{
	(void)data;
	return gone_flag;
}

static void on_usr1(int sig)
{
	(void)sig;
	gone_flag = 1;
}

/* A child runs cmd on a pty with short liveness limits; returns its pid. */
static pid_t start_session(int *master, const char *cmd)
{
	pid_t pid = forkpty(master, NULL, NULL, NULL);
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGUSR1, on_usr1);
		struct ssh_session_opts o = { .cmd = cmd, .pty = true, .in_fd = 0, .out_fd = 1,
					      .err_fd = 2, .keepalive_s = 1, .dead_after_s = 3,
					      .gone = gone, .gone_why = "went away" };
		struct ssh_status st;
		struct err e = { 0 };
		int rc = ssh_session(&db.target, &o, &st, &e);
		if (rc == -ETIMEDOUT && strstr(e.msg, "no answer for 3 s"))
			_exit(110);
		if (rc == -ESHUTDOWN && strstr(e.msg, "went away: session closed"))
			_exit(111);
		fprintf(stderr, "ssh_session: %d %s\n", rc, e.msg);
		_exit(rc < 0 ? 100 : st.exit_status);
	}
	return pid;
}

static int wait_child(pid_t pid, int master, double deadline)
{
	read_until(master, NULL, deadline);
	int st = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 && now_s() < deadline)
		read_until(master, NULL, now_s() + 0.2);
	close(master);
	if (w != pid) { /* still running: the session did not end */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void t_liveness(void)
{
	int master;
	/* a command on a pty: the remote sees a terminal */
	out_len = 0;
	pid_t pid = start_session(&master, "tty; exit 4");
	CHECK(wait_child(pid, master, now_s() + 20) == 4);
	CHECK(memmem(out, out_len, "/dev/pts/", 9) != NULL);
	/* the server stops answering: the session ends after dead_after_s */
	out_len = 0;
	pid = start_session(&master, "echo started; sleep 60");
	expect(master, "started", now_s() + 20);
	double t0 = now_s();
	CHECK(signal_sessions(db.pid, SIGSTOP) > 0);
	int rc = wait_child(pid, master, now_s() + 20);
	signal_sessions(db.pid, SIGCONT);
	printf("dead peer noticed after %.1f s\n", now_s() - t0);
	CHECK(rc == 110);
	CHECK(now_s() - t0 < 8);
	/* the caller's check ends a session at once */
	out_len = 0;
	pid = start_session(&master, "echo started; sleep 60");
	expect(master, "started", now_s() + 20);
	t0 = now_s();
	CHECK(kill(pid, SIGUSR1) == 0);
	CHECK(wait_child(pid, master, now_s() + 20) == 111);
	CHECK(now_s() - t0 < 3);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int r = tdb_start(&db);
	if (r)
		return r;
	int master;
	struct winsize ws = { .ws_row = 30, .ws_col = 100 };
	pid_t pid = forkpty(&master, NULL, NULL, &ws);
	CHECK(pid >= 0);
	if (pid == 0) {
		struct termios before, after;
		tcgetattr(0, &before);
		struct ssh_status st;
		struct err e = { 0 };
		setenv("TERM", "xterm", 1);
		int rc = ssh_shell(&db.target, 0, 1, &st, &e);
		tcgetattr(0, &after);
		if (rc < 0) {
			fprintf(stderr, "ssh_shell: %s\n", e.msg);
			_exit(100);
		}
		/* the local terminal is back in cooked mode */
		if ((after.c_lflag & (ICANON | ECHO)) != (before.c_lflag & (ICANON | ECHO)))
			_exit(101);
		_exit(st.exit_status);
	}
	double deadline = now_s() + 20;
	/* the remote prompt means the shell runs; then type like a user */
	expect(master, "# ", deadline);
	type(master, "PS1='r''dy> '\r");
	expect(master, "rdy> ", deadline);
	type(master, "stty size; echo \"TERM=$TERM\"\r");
	expect(master, "30 100", deadline);
	expect(master, "TERM=xterm", deadline);
	/* a resize reaches the remote pty (SIGWINCH -> window-change) */
	struct winsize ws2 = { .ws_row = 40, .ws_col = 120 };
	CHECK(ioctl(master, TIOCSWINSZ, &ws2) == 0);
	type(master, "stty size\r");
	expect(master, "40 120", deadline);
	type(master, "echo h''i; exit 3\r");
	expect(master, "hi\r\n", deadline); /* not in the echoed "h''i" */
	read_until(master, NULL, deadline); /* to EOF */
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) {
		fprintf(stderr, "child status %d, output:\n%s\n", st, out);
		CHECK(0);
	}
	close(master);
	t_liveness();
	tdb_stop(&db);
	printf("ok\n");
	return 0;
}
