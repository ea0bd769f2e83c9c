/* test_shell.c - the interactive shell through a real PTY: a child on the slave
 * side of a pty runs ssh_shell() against dropbear; we type into the master like
 * a user, check the remote sees our window size (and a resize), the output comes
 * back, the child exits with the remote status, and the tty is restored. */
#include "client/ssh/ssh.h"
#include "util/err.h"
#include "dropbear.h"
#include "t.h"

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
	tdb_stop(&db);
	printf("ok\n");
	return 0;
}
