/* Integration tests: the real fleetbox binary as CLI and holder, the fake VMM
 * (real child processes), real unix sockets, a private FLEETBOX_HOME.
 * Usage: itest <case>; meson runs each case as its own test. Member names
 * are unique per case because cases run in parallel. */
#include "harness.h"
#include "fleetbox/uv.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool member_gone(void *arg)
{
	const char *m = arg;
	return !h_sock_exists(m) && h_pidfile(m) == 0;
}

static json_t *status_json(const char *member)
{
	char *line = h_req(member, "{\"cmd\":\"status\"}\n", 2000);
	if (!line)
		return NULL;
	json_t *o = json_loads(line, 0, NULL);
	free(line);
	return o;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	return json_string_value(v);
}

/* up, status, ls, down (socket + pidfile removed, holder exits), rm. */
static void t_happy(void)
{
	h_setup("happy");
	char *out;
	CHECK_INT(h_run(&out, "up", "hp", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  hp-1  IP: 203.0.113.") != NULL);
	CHECK(strstr(out, "SSH: fleetbox ssh hp-2") != NULL);
	free(out);
	pid_t holder = h_pidfile("hp-1");
	CHECK(holder > 0);
	CHECK_INT(h_pidfile("hp-2"), holder);
	CHECK(h_sock_exists("hp-1") && h_sock_exists("hp-2"));
	/* sockets are 0600, run/ is 0700 */
	char p[128];
	struct stat st;
	wire_sock_path(h_root, "hp-1", p, sizeof(p));
	CHECK_INT(stat(p, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s/run", h_root);
	CHECK_INT(stat(p, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);

	json_t *o = status_json("hp-1");
	CHECK(o != NULL);
	CHECK_STR(jstr(o, "status", "name"), "hp-1");
	CHECK_STR(jstr(o, "status", "state"), "running");
	CHECK(json_is_true(json_object_get(json_object_get(o, "status"), "running")));
	CHECK_INT(json_integer_value(json_object_get(json_object_get(o, "status"), "pid")), holder);
	CHECK(strncmp(jstr(o, "status", "ip"), "203.0.113.", 10) == 0);
	json_decref(o);

	CHECK_INT(h_run(&out, "status", "hp-2", NULL), 0);
	o = json_loads(out, 0, NULL);
	CHECK(o != NULL);
	CHECK_STR(jstr(o, "state", NULL), "running");
	json_decref(o);
	free(out);

	CHECK_INT(h_run(&out, "ls", "-o", "json", NULL), 0);
	o = json_loads(out, 0, NULL);
	CHECK(json_is_array(o) && json_array_size(o) == 2);
	CHECK_STR(jstr(json_array_get(o, 0), "name", NULL), "hp-1");
	CHECK_STR(jstr(json_array_get(o, 0), "image", NULL), h_image());
	CHECK_INT(json_integer_value(json_object_get(json_array_get(o, 1), "cpus")), 2);
	json_decref(o);
	free(out);
	CHECK_INT(h_run(&out, "ls", NULL), 0);
	CHECK(strstr(out, "NAME") && strstr(out, "running"));
	free(out);
	CHECK_INT(h_run(&out, "ls", "-q", NULL), 0);
	CHECK_STR(out, "hp-1\nhp-2\n");
	free(out);

	/* up again is idempotent: running members are returned as they are */
	CHECK_INT(h_run(&out, "up", "hp", "-n", "2", NULL), 0);
	free(out);
	CHECK_INT(h_pidfile("hp-1"), holder);

	/* down one: the holder keeps serving the other */
	CHECK_INT(h_run(NULL, "down", "hp-1", NULL), 0);
	CHECK(member_gone("hp-1"));
	CHECK(h_pid_alive(holder));
	CHECK(h_sock_exists("hp-2"));
	/* down the last: the holder exits */
	CHECK_INT(h_run(NULL, "down", "hp", NULL), 0);
	CHECK(member_gone("hp-2"));
	CHECK(h_wait_pid_gone(holder, 5000) >= 0);
	CHECK_INT(h_run(&out, "ls", NULL), 0);
	CHECK(strstr(out, "stopped") != NULL);
	free(out);
	char disk[512];
	snprintf(disk, sizeof(disk), "%s/clusters/hp/hp-1/disk", h_root);
	CHECK(path_exists(disk)); /* down keeps disks */

	/* up boots the stopped members from their stored config */
	CHECK_INT(h_run(&out, "up", "hp-1", "--cpus", "4", NULL), 0);
	CHECK(strstr(out, "create options are ignored") != NULL);
	free(out);
	o = status_json("hp-1");
	CHECK_STR(jstr(o, "status", "state"), "running");
	json_decref(o);

	/* rm asks first on a terminal; "n" keeps everything */
	CHECK_INT(h_run_pty("Continue? [y/N]", "n\n", &out, "rm", "hp", NULL), 1);
	CHECK(strstr(out, "This deletes 2 members and their disks: hp-1 hp-2") != NULL);
	free(out);
	CHECK(path_exists(disk));
	/* without a terminal there is nobody to ask: refused, nothing deleted */
	CHECK_INT(h_run_input("y\n", &out, "rm", "hp", NULL), 1);
	CHECK(strstr(out, "use rm -f") != NULL);
	free(out);
	CHECK(path_exists(disk));
	CHECK_INT(h_run_pty("Continue? [y/N]", "y\n", &out, "rm", "hp", NULL), 0);
	CHECK(strstr(out, "removed hp-1") && strstr(out, "removed hp-2"));
	free(out);
	CHECK(!path_exists(disk));
	char cdir[300];
	snprintf(cdir, sizeof(cdir), "%s/clusters/hp", h_root);
	CHECK(!path_exists(cdir));
	CHECK(member_gone("hp-1"));
	/* rm is idempotent */
	CHECK_INT(h_run(NULL, "rm", "-f", "hp", NULL), 0);
	h_teardown();
}

/* The error strings and exit codes of the CLI surface. */
static void t_cli_errors(void)
{
	h_setup("clierr");
	char *out;
	CHECK_INT(h_run(&out, "up", "Bad_Name", NULL), 1);
	CHECK(strstr(out, "error: invalid name \"Bad_Name\"") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "frobnicate", NULL), 1);
	CHECK(strstr(out, "error: unknown command \"frobnicate\"") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "down", NULL), 1);
	CHECK(strstr(out, "error: down: give NAME... or --all") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "down", "ghost", NULL), 1);
	CHECK(strstr(out, "error: no such member: ghost") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "status", "ghost", NULL), 1);
	CHECK(strstr(out, "error: no such member: ghost") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "up", "x", "-n", "0", NULL), 1);
	CHECK(strstr(out, "error: up: -n:") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "up", "a", "b", "-n", "2", NULL), 1);
	CHECK(strstr(out, "error: -n takes one NAME") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "up", "ce", "--image", "/nonexistent/img", NULL), 1);
	CHECK(strstr(out, "error: ") != NULL);
	free(out);
	/* a failed up leaves nothing behind */
	char d[300];
	snprintf(d, sizeof(d), "%s/clusters/ce", h_root);
	CHECK(!path_exists(d));
	CHECK(!h_sock_exists("ce"));
	CHECK_INT(h_run(&out, "--version", NULL), 0);
	CHECK(strstr(out, "fleetbox ") && strstr(out, "protocol 2"));
	free(out);
	CHECK_INT(h_run(&out, "--help", NULL), 0);
	CHECK(strstr(out, "usage: fleetbox"));
	free(out);
	CHECK_INT(h_run(&out, "help", "rm", NULL), 0);
	CHECK(strstr(out, "usage: fleetbox rm"));
	free(out);
	CHECK_INT(h_run(&out, "up", "--help", NULL), 0);
	CHECK(strstr(out, "usage: fleetbox up"));
	free(out);
	CHECK_INT(h_run(&out, "--fleetbox-runner", "", NULL), 2);
	free(out);
	CHECK_INT(h_run(&out, (const char *)NULL, NULL), 1);
	CHECK(strstr(out, "error: no command given") && strstr(out, "usage: fleetbox"));
	free(out);
	h_teardown();
}

/* A bound client killed with SIGKILL: holder, VMs, sockets, pidfiles gone. */
static void t_bound_sigkill(void)
{
	h_setup("sigkill");
	const char *names[] = { "sk-1", "sk-2" };
	pid_t holder;
	pid_t child = h_bound_child(names, 2, h_image(), NULL, &holder);
	pid_t vm1 = h_fake_vm_pid("sk-1"), vm2 = h_fake_vm_pid("sk-2");
	CHECK(vm1 > 0 && vm2 > 0);
	CHECK(h_sock_exists("sk-1"));
	char ctl[128];
	wire_ctl_path(h_root, "sk-1", ctl, sizeof(ctl));
	CHECK(path_exists(ctl));

	long t0 = h_now_ms();
	CHECK_INT(kill(child, SIGKILL), 0);
	waitpid(child, NULL, 0);
	long gone = h_wait_pid_gone(holder, 10000);
	CHECK(gone >= 0);
	long total = h_now_ms() - t0;
	CHECK(!h_pid_alive(vm1) && !h_pid_alive(vm2));
	CHECK(member_gone("sk-1") && member_gone("sk-2"));
	CHECK(!path_exists(ctl));
	printf("bench bound_teardown_ms=%ld\n", total);
	h_teardown();
}

struct async_seen {
	int status_calls, request_calls;
	char state[16], reply[256], err[512];
};

static void on_async_status(void *data, int status, const fb_member_info *info, const fb_error *err)
{
	struct async_seen *s = data;
	s->status_calls++;
	if (status == 0)
		snprintf(s->state, sizeof(s->state), "%s", info->state);
	else
		snprintf(s->err, sizeof(s->err), "%s", err->message);
}

static void on_async_request(void *data, int status, const char *reply, const fb_error *err)
{
	struct async_seen *s = data;
	s->request_calls++;
	snprintf(s->reply, sizeof(s->reply), "%s", status == 0 ? reply : err->message);
}

/* A bound cluster closed by its owner through the API. */
static void t_bound_close(void)
{
	h_setup("bclose");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	const char *names[] = { "bc-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_cluster *c;
	fb_error e = { 0 };
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK_INT(fb_cluster_size(c), 1);
	CHECK_STR(fb_cluster_name(c, 0), "bc-1");
	CHECK(strncmp(fb_cluster_ip(c, 0), "203.0.113.", 10) == 0);
	pid_t holder = fb_cluster_holder_pid(c);
	pid_t vm = h_fake_vm_pid("bc-1");
	CHECK(holder > 0 && vm > 0);
	const char *wn[] = { "bc-1" };
	CHECK_INT(fb_wait_running(NULL, wn, 1, 5000, &e), 0);
	const char *ghost[] = { "bc-9" };
	CHECK(fb_wait_running(NULL, ghost, 1, 1000, &e) < 0);
	CHECK(strstr(e.message, "bc-9 is not running") != NULL);
	/* the async API on our own loop, which must close cleanly afterwards */
	uv_loop_t loop;
	CHECK_INT(uv_loop_init(&loop), 0);
	struct async_seen ok = { 0 }, ghost_seen = { 0 }, raw = { 0 };
	CHECK_INT(fb_status_async(&loop, NULL, "bc-1", on_async_status, &ok), 0);
	CHECK_INT(fb_status_async(&loop, NULL, "bc-8", on_async_status, &ghost_seen), 0);
	CHECK_INT(fb_request_async(&loop, NULL, "bc-1", "{\"cmd\":\"createnetwork\"}", 1000, 1000,
				   on_async_request, &raw), 0);
	CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
	CHECK_INT(uv_loop_close(&loop), 0);
	CHECK_INT(ok.status_calls, 1);
	CHECK_STR(ok.state, "running");
	CHECK_INT(ghost_seen.status_calls, 1);
	CHECK(strstr(ghost_seen.err, "bc-8 is not running") != NULL);
	CHECK_INT(raw.request_calls, 1);
	CHECK_STR(raw.reply, "{}");

	fb_member_info info;
	CHECK_INT(fb_status(NULL, "bc-1", &info, &e), 0);
	CHECK_STR(info.state, "running");
	CHECK_INT(info.holder_pid, holder);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK(!h_pid_alive(holder) && !h_pid_alive(vm));
	CHECK(member_gone("bc-1"));
	CHECK_INT(fb_status(NULL, "bc-1", &info, &e), 0);
	CHECK_STR(info.state, "stopped");
	h_teardown();
}

/* A holder that answers the bind handshake with another version. */
static void t_version_mismatch(void)
{
	h_setup("vers");
	const char *fake = getenv("FAKE_HOLDER");
	CHECK(fake != NULL);
	setenv("FLEETBOX_HELPER", fake, 1);
	const char *names[] = { "vm-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_cluster *c = NULL;
	fb_error e = { 0 };
	CHECK(fb_up(&o, &c, &e) < 0);
	CHECK_STR(e.message, "fleetbox helper protocol \"1\" does not match client \"2\"");
	/* the impostor was killed and reaped: its pid file says which pid it had */
	char p[300];
	snprintf(p, sizeof(p), "%s/fake-holder.pid", h_root);
	char *s = h_read_file(p);
	CHECK(s != NULL);
	pid_t fp = (pid_t)atoi(s);
	free(s);
	CHECK(fp > 0);
	CHECK(!h_pid_alive(fp));
	CHECK(kill(fp, 0) < 0); /* reaped, not a zombie */
	h_teardown();
}

static pid_t start_raw_holder(const char *names)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char ppid[32];
		snprintf(ppid, sizeof(ppid), "%d", (int)getppid());
		setenv("FLEETBOX_PARENT_PID", ppid, 1);
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		execl(h_bin, h_bin, "--fleetbox-runner", names, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The holder opens .ctl shortly after start (seconds under valgrind on a
 * loaded machine): bounded at 60 s. */
static int dial_ctl(const char *first)
{
	char ctl[128];
	wire_ctl_path(h_root, first, ctl, sizeof(ctl));
	return h_dial(ctl, 60000);
}

static void read_version(int fd)
{
	char buf[8] = { 0 };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 5000) == 1);
	CHECK_INT(read(fd, buf, sizeof(buf) - 1), 1);
	CHECK_STR(buf, "2");
}

/* .ctl closed after ack -> teardown; closed before ack -> nothing happens. */
static void t_ctl_ack(void)
{
	h_setup("ctlack");
	/* before ack */
	pid_t h1 = start_raw_holder("ca-1");
	int fd = dial_ctl("ca-1");
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "bind", 4), 4);
	read_version(fd);
	close(fd);
	/* a probe that only connects */
	fd = dial_ctl("ca-1");
	CHECK(fd >= 0);
	close(fd);
	json_t *o = status_json("ca-1");
	CHECK(o != NULL); /* still serving after both closes */
	CHECK_STR(jstr(o, "status", "state"), "starting"); /* registered, never booted */
	CHECK_STR(jstr(o, "status", "ip"), "");             /* always present */
	CHECK(json_is_true(json_object_get(json_object_get(o, "status"), "running")));
	json_decref(o);
	CHECK(h_pid_alive(h1));
	/* after ack: a new acknowledged connection, then EOF */
	fd = dial_ctl("ca-1");
	CHECK_INT(write(fd, "bind", 4), 4);
	read_version(fd);
	CHECK_INT(write(fd, "ack", 3), 3);
	/* the holder must still be alive while the connection stays open */
	o = status_json("ca-1");
	CHECK(o != NULL);
	json_decref(o);
	long t0 = h_now_ms();
	close(fd);
	int st;
	CHECK(waitpid(h1, &st, 0) == h1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("bench ctl_eof_teardown_ms=%ld\n", h_now_ms() - t0);
	CHECK(member_gone("ca-1"));
	h_teardown();
}

/* FLEETBOX_FAKE_RECORD shows exact spec paths, then stop and close. */
static void t_fake_record(void)
{
	h_setup("record");
	char rec[300], fxdir[300];
	snprintf(rec, sizeof(rec), "%s/record.ndjson", h_root);
	setenv("FLEETBOX_FAKE_RECORD", rec, 1);
	snprintf(fxdir, sizeof(fxdir), "%s/fixture dir", h_root);
	CHECK_INT(mkdir_p(fxdir, 0755), 0);
	char fxarg[400];
	snprintf(fxarg, sizeof(fxarg), "%s:/srv/data", fxdir);
	char *out;
	int rc = h_run(&out, "up", "fr-1", "--image", h_image(), "--fixture", fxarg, NULL);
	free(out);
	CHECK_INT(rc, 0);
	CHECK_INT(h_run(NULL, "down", "fr-1", NULL), 0);
	CHECK(h_wait_until(member_gone, "fr-1", 5000));
	/* the holder appends "close" as its last act; wait for the holder to exit */
	char *s = NULL;
	for (int i = 0; i < 400; i++) {
		free(s);
		s = h_read_file(rec);
		if (s && strstr(s, "\"op\":\"close\""))
			break;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	CHECK(s != NULL);
	fprintf(stderr, "record:\n%s", s);
	char *lines[8];
	int n = 0;
	for (char *l = strtok(s, "\n"); l && n < 8; l = strtok(NULL, "\n"))
		lines[n++] = l;
	CHECK_INT(n, 4);
	char mac[FB_MAC_STRLEN];
	wire_mac("fr-1", mac);
	char want[2048];
	snprintf(want, sizeof(want),
		 "{\"op\":\"reserve\",\"name\":\"fr-1\",\"ip_hint\":\"\",\"mac\":\"%s\",\"assigned_ip\":\"203.0.113.2\"}",
		 mac);
	CHECK_STR(lines[0], want);
	snprintf(want, sizeof(want),
		 "{\"op\":\"create\",\"name\":\"fr-1\",\"disk_path\":\"%s/clusters/fr/fr-1/disk\","
		 "\"seed_path\":\"%s/clusters/fr/fr-1/seed.iso\",\"fixture_paths\":[\"%s/clusters/fr/fr-1/fixture-0.img\"],"
		 "\"mac\":\"%s\",\"assigned_ip\":\"203.0.113.2\",\"tap\":\"\"}",
		 h_root, h_root, h_root, mac);
	CHECK_STR(lines[1], want);
	CHECK_STR(lines[2], "{\"op\":\"stop\",\"name\":\"fr-1\"}");
	CHECK_STR(lines[3], "{\"op\":\"close\"}");
	free(s);
	/* the files the spec points at exist */
	char p[400];
	snprintf(p, sizeof(p), "%s/clusters/fr/fr-1/seed.iso", h_root);
	CHECK(path_exists(p));
	snprintf(p, sizeof(p), "%s/clusters/fr/fr-1/fixture-0.img", h_root);
	CHECK(path_exists(p));
	snprintf(p, sizeof(p), "%s/clusters/fr/fr-1/config.json", h_root);
	s = h_read_file(p);
	CHECK(s && strstr(s, "\"label\": \"FBFIX0\"") && strstr(s, "\"guest_path\": \"/srv/data\""));
	free(s);
	unsetenv("FLEETBOX_FAKE_RECORD");
	h_teardown();
}

/* A forced create failure rolls back only the members this call created. */
static void t_rollback(void)
{
	h_setup("rollback");
	char *out;
	CHECK_INT(h_run(NULL, "up", "rb-1", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "rb-1", NULL), 0);
	char disk1[300], marker[300];
	snprintf(disk1, sizeof(disk1), "%s/clusters/rb/rb-1/disk", h_root);
	CHECK(path_exists(disk1));
	snprintf(marker, sizeof(marker), "%s/clusters/rb/rb-1/keep-me", h_root);
	CHECK_INT(file_write_atomic(marker, "x", 1, 0600), 0);
	/* A pre-existing disk in a member dir without config must survive too. */
	char d3[300], disk3[320];
	snprintf(d3, sizeof(d3), "%s/clusters/rb/rb-3", h_root);
	CHECK_INT(mkdir_p(d3, 0700), 0);
	snprintf(disk3, sizeof(disk3), "%s/disk", d3);
	CHECK_INT(file_write_atomic(disk3, "precious", 8, 0600), 0);

	setenv("FLEETBOX_FAKE_FAIL_CREATE", "rb-4", 1);
	CHECK_INT(h_run(&out, "up", "rb-1", "rb-2", "rb-4", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "error: create rb-4: fake VMM: forced create failure for rb-4") != NULL);
	free(out);
	unsetenv("FLEETBOX_FAKE_FAIL_CREATE");
	/* rb-1 existed: stopped again, disk and files kept */
	CHECK(path_exists(disk1) && path_exists(marker));
	CHECK(member_gone("rb-1"));
	/* rb-2 and rb-4 were created by the call: gone */
	char p[300];
	snprintf(p, sizeof(p), "%s/clusters/rb/rb-2", h_root);
	CHECK(!path_exists(p));
	snprintf(p, sizeof(p), "%s/clusters/rb/rb-4", h_root);
	CHECK(!path_exists(p));
	CHECK(member_gone("rb-2") && member_gone("rb-4"));
	CHECK(!h_fake_vm_pid("rb-1") && !h_fake_vm_pid("rb-2"));

	/* creating over a foreign disk fails and keeps it */
	CHECK_INT(h_run(&out, "up", "rb-3", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "already exists") != NULL);
	free(out);
	char *s = h_read_file(disk3);
	CHECK(s && !strcmp(s, "precious"));
	free(s);
	h_teardown();
}

/* web-4 joins the running holder of web-1..3; a new cluster gets its own. */
static void t_join(void)
{
	h_setup("join");
	CHECK_INT(h_run(NULL, "up", "jn", "-n", "3", "--image", h_image(), NULL), 0);
	pid_t holder = h_pidfile("jn-1");
	CHECK(holder > 0);
	char *out;
	CHECK_INT(h_run(&out, "up", "jn-4", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  jn-4  IP: 203.0.113.5") != NULL);
	free(out);
	CHECK_INT(h_pidfile("jn-4"), holder);
	json_t *o = status_json("jn-4");
	CHECK_STR(jstr(o, "status", "state"), "running");
	CHECK_INT(json_integer_value(json_object_get(json_object_get(o, "status"), "pid")), holder);
	json_decref(o);
	/* another cluster: another holder */
	CHECK_INT(h_run(NULL, "up", "jo-1", "--image", h_image(), NULL), 0);
	CHECK(h_pidfile("jo-1") != holder);
	/* raw protocol: joining through a sibling's socket, as protocol.md says */
	char *r = h_req("jn-2", "{\"cmd\":\"createnetwork\"}\n", 2000);
	CHECK_STR(r, "{}"); /* network-free fake: empty subnet, idempotent */
	free(r);
	r = h_req("jn-2", "{\"cmd\":\"reserve\",\"name\":\"jn-9\"}\n", 2000);
	char mac[FB_MAC_STRLEN], want[128];
	wire_mac("jn-9", mac);
	snprintf(want, sizeof(want), "{\"reservation\":{\"mac\":\"%s\"}}", mac);
	CHECK_STR(r, want);
	free(r);
	char req[600];
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"jn-9\",\"disk_path\":\"%s\"}}\n",
		 h_image()); /* any regular file inside the store */
	r = h_req("jn-2", req, 5000);
	CHECK_STR(r, "{}");
	free(r);
	CHECK_INT(h_pidfile("jn-9"), holder);
	r = h_req("jn-9", "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"jn-9\",\"disk_path\":\"/x\"}}\n", 5000);
	CHECK_STR(r, "{\"error\":\"member jn-9 is already running\"}");
	free(r);
	r = h_req("jn-9", "{\"cmd\":\"stop\"}\n", 2000);
	CHECK_STR(r, "{}");
	free(r);
	CHECK(h_wait_until(member_gone, "jn-9", 5000));
	CHECK(h_pid_alive(holder));
	h_teardown();
}

/* stop while boot-member is pending: the boot reply says so, the member goes. */
static void t_stop_during_boot(void)
{
	h_setup("stopboot");
	CHECK_INT(h_run(NULL, "up", "sb-1", "--image", h_image(), NULL), 0);
	setenv("FLEETBOX_FAKE_BOOT_MS", "5000", 1); /* read by the holder at boot time */
	/* The running holder was started without the delay; start a second one. */
	CHECK_INT(h_run(NULL, "down", "sb-1", NULL), 0);
	pid_t up = fork();
	CHECK(up >= 0);
	if (up == 0) {
		char *out = NULL;
		int rc = h_run(&out, "up", "sb-1", NULL);
		_exit(rc == 1 && strstr(out, "error: member sb-1 was stopped during boot") ? 0 : 1);
	}
	/* as soon as the VM process exists (it reports ready 5 s later), stop */
	long deadline = h_now_ms() + 20000;
	pid_t vm = 0; /* found once: a second look may land in its exec (empty cmdline) */
	while (!(vm = h_fake_vm_pid("sb-1")) && h_now_ms() < deadline) {
		struct timespec ts = { 0, 2 * 1000000L };
		nanosleep(&ts, NULL);
	}
	CHECK(vm > 0);
	json_t *o = status_json("sb-1");
	CHECK(o != NULL);
	CHECK_STR(jstr(o, "status", "state"), "starting");
	json_decref(o);
	char *r = h_req("sb-1", "{\"cmd\":\"stop\"}\n", 2000);
	CHECK_STR(r, "{}");
	free(r);
	int st;
	CHECK(waitpid(up, &st, 0) == up);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	/* it existed before this up: stopped again, not deleted */
	char p[300];
	snprintf(p, sizeof(p), "%s/clusters/sb/sb-1/disk", h_root);
	CHECK(path_exists(p));
	CHECK(member_gone("sb-1"));
	h_teardown();
}

/* fleetbox up ARGS... --image <tiny> in the background. */
static pid_t spawn_up(const char *a1, const char *a2, const char *a3)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		const char *argv[8] = { h_bin, "up" };
		int n = 2;
		for (const char *a[] = { a1, a2, a3 }, **p = a; p < a + 3; p++)
			if (*p)
				argv[n++] = *p;
		argv[n++] = "--image";
		argv[n++] = h_image();
		argv[n] = NULL;
		execv(h_bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Concurrent CLI runs on one store, and an interrupted up. */
static void t_races(void)
{
	h_setup("races");
	/* six ups of different clusters on a fresh store: one keypair, all up */
	static const char *six[] = { "ra-1", "rb-1", "rc-1", "rd-1", "re-1", "rf-1" };
	pid_t pids[6];
	for (int i = 0; i < 6; i++)
		pids[i] = spawn_up(six[i], NULL, NULL);
	for (int i = 0; i < 6; i++)
		CHECK_INT(wait_exit(pids[i]), 0);
	char priv[300], pub[300];
	snprintf(priv, sizeof(priv), "%s/id_ed25519", h_root);
	snprintf(pub, sizeof(pub), "%s/id_ed25519.pub", h_root);
	char *pubtext = h_read_file(pub);
	CHECK(pubtext != NULL);
	/* the public key must be the one derived from the private key */
	char *derived = h_tool("ssh-keygen", "-y", "-f", priv);
	CHECK(strncmp(pubtext, derived, 80) == 0);
	free(pubtext);
	free(derived);

	/* two ups of the same cluster at once: both succeed, one holder */
	pid_t a = spawn_up("cu", "-n", "2"), b = spawn_up("cu", "-n", "2");
	CHECK_INT(wait_exit(a), 0);
	CHECK_INT(wait_exit(b), 0);
	CHECK(h_pidfile("cu-1") > 0 && h_pidfile("cu-1") == h_pidfile("cu-2"));
	json_t *o = status_json("cu-2");
	CHECK_STR(jstr(o, "status", "state"), "running");
	json_decref(o);

	/* an idle connection that outlives its member gets an answer, and the
	 * holder survives (was a use-after-free) */
	int idle = h_connect_member("cu-2");
	CHECK(idle >= 0);
	CHECK_INT(h_run(NULL, "down", "cu-2", NULL), 0);
	CHECK_INT(write(idle, "{\"cmd\":\"status\"}\n", 17), 17);
	char buf[256] = { 0 };
	struct pollfd p = { .fd = idle, .events = POLLIN };
	CHECK(poll(&p, 1, 3000) == 1);
	CHECK(read(idle, buf, sizeof(buf) - 1) > 0);
	CHECK_STR(buf, "{\"error\":\"member is gone\"}\n");
	close(idle);
	o = status_json("cu-1");
	CHECK_STR(jstr(o, "status", "state"), "running");
	json_decref(o);

	/* an up killed after its holder registered the members: the next up
	 * recovers through that holder, and ls/rm see the members */
	setenv("FLEETBOX_FAKE_BOOT_MS", "3000", 1);
	pid_t up = spawn_up("kk", "-n", "2");
	long deadline = h_now_ms() + 20000;
	while (!h_fake_vm_pid("kk-1") && h_now_ms() < deadline) {
		struct timespec ts = { 0, 2 * 1000000L };
		nanosleep(&ts, NULL);
	}
	CHECK_INT(kill(up, SIGKILL), 0);
	wait_exit(up);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	pid_t holder = h_pidfile("kk-1");
	CHECK(holder > 0);
	char *out;
	CHECK_INT(h_run(&out, "ls", "-q", NULL), 0);
	CHECK(strstr(out, "kk-1\nkk-2\n") != NULL);
	free(out);
	/* wait for the interrupted boots to settle (they finish in the holder) */
	for (int i = 0; i < 2000; i++) {
		bool settled = true;
		for (int k = 1; k <= 2; k++) {
			o = status_json(k == 1 ? "kk-1" : "kk-2");
			settled &= o && strcmp(jstr(o, "status", "state"), "starting") != 0;
			json_decref(o);
		}
		if (settled)
			break;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	CHECK_INT(h_run(&out, "up", "kk", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  kk-1  IP: 203.0.113.") && strstr(out, "  kk-2  IP: 203.0.113."));
	free(out);
	CHECK_INT(h_pidfile("kk-1"), holder);
	CHECK_INT(h_run(NULL, "rm", "-f", "kk", NULL), 0);
	CHECK(!h_pid_alive(holder) || h_wait_pid_gone(holder, 5000) >= 0);
	h_teardown();
}

/* Protocol errors, each answered, and the holder keeps serving. */
static void t_bad_requests(void)
{
	h_setup("badreq");
	setenv("FLEETBOX_CONN_TIMEOUT_MS", "300", 1);
	CHECK_INT(h_run(NULL, "up", "br-1", "--image", h_image(), NULL), 0);
	char *r;
	r = h_req("br-1", "this is not json\n", 2000);
	CHECK(r && strncmp(r, "{\"error\":\"invalid JSON", 22) == 0);
	free(r);
	r = h_req("br-1", "{\"cmd\":\"fly\"}\n", 2000);
	CHECK_STR(r, "{\"error\":\"unknown command \\\"fly\\\"\"}");
	free(r);
	r = h_req("br-1", "{}\n", 2000);
	CHECK_STR(r, "{\"error\":\"missing command\"}");
	free(r);
	r = h_req("br-1", "{\"cmd\":\"reserve\"}\n", 2000);
	CHECK_STR(r, "{\"error\":\"missing member name\"}");
	free(r);
	r = h_req("br-1", "{\"cmd\":\"boot-member\"}\n", 2000);
	CHECK_STR(r, "{\"error\":\"missing or invalid spec\"}");
	free(r);
	r = h_req("br-1", "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"br-7\",\"disk_path\":\"/d\"}}\n", 2000);
	CHECK_STR(r, "{\"error\":\"member br-7 was not reserved\"}");
	free(r);

	/* no newline until EOF: the stream is the request */
	int fd = h_connect_member("br-1");
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "{\"cmd\":\"status\"}", 16), 16);
	shutdown(fd, SHUT_WR);
	char buf[512] = { 0 };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 2000) == 1);
	CHECK(read(fd, buf, sizeof(buf) - 1) > 0);
	CHECK(strstr(buf, "\"state\":\"running\"") != NULL);
	close(fd);

	/* a line over 1 MiB: error reply, then close */
	size_t big = 2u << 20;
	char *huge = malloc(big);
	memset(huge, 'x', big);
	fd = h_connect_member("br-1");
	CHECK(fd >= 0);
	size_t off = 0;
	while (off < big) {
		ssize_t w = write(fd, huge + off, big - off);
		if (w <= 0)
			break; /* the holder may close once it has answered */
		off += (size_t)w;
	}
	free(huge);
	memset(buf, 0, sizeof(buf));
	p.fd = fd;
	CHECK(poll(&p, 1, 2000) == 1);
	CHECK(read(fd, buf, sizeof(buf) - 1) > 0);
	CHECK_STR(buf, "{\"error\":\"request line exceeds 1048576 bytes\"}\n");
	close(fd);

	/* a client that connects and never writes gets a timeout error */
	fd = h_connect_member("br-1");
	long t0 = h_now_ms();
	p.fd = fd;
	CHECK(poll(&p, 1, 3000) == 1);
	memset(buf, 0, sizeof(buf));
	CHECK(read(fd, buf, sizeof(buf) - 1) > 0);
	CHECK_STR(buf, "{\"error\":\"timed out waiting for a request line\"}\n");
	CHECK(h_now_ms() - t0 >= 250);
	close(fd);

	/* and everyone else was served all along */
	r = h_req("br-1", "{\"cmd\":\"status\"}\n", 2000);
	CHECK(r && strstr(r, "\"running\":true"));
	free(r);
	unsetenv("FLEETBOX_CONN_TIMEOUT_MS");
	h_teardown();
}

/* 500 concurrent status connections are all answered. */
static void t_concurrent(void)
{
	h_setup("conc");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	CHECK(rl.rlim_cur >= 600);
	CHECK_INT(h_run(NULL, "up", "cc-1", "--image", h_image(), NULL), 0);
	enum { N = 500 };
	static int fds[N];
	static char bufs[N][512];
	static size_t got[N];
	long t0 = h_now_ms();
	for (int i = 0; i < N; i++) {
		fds[i] = h_connect_member("cc-1");
		CHECK(fds[i] >= 0);
	}
	/* all connected before any writes: the holder holds 500 at once */
	for (int i = 0; i < N; i++)
		CHECK_INT(write(fds[i], "{\"cmd\":\"status\"}\n", 17), 17);
	int answered = 0;
	long deadline = h_now_ms() + 20000;
	static struct pollfd pf[N];
	while (answered < N && h_now_ms() < deadline) {
		int k = 0;
		for (int i = 0; i < N; i++)
			if (fds[i] >= 0) {
				pf[k].fd = fds[i];
				pf[k].events = POLLIN;
				k++;
			}
		CHECK(poll(pf, (nfds_t)k, 1000) >= 0);
		for (int j = 0; j < k; j++) {
			if (!(pf[j].revents & (POLLIN | POLLHUP)))
				continue;
			int i = 0;
			while (fds[i] != pf[j].fd)
				i++;
			ssize_t r = read(fds[i], bufs[i] + got[i], sizeof(bufs[i]) - 1 - got[i]);
			if (r > 0)
				got[i] += (size_t)r;
			if (r <= 0 || memchr(bufs[i], '\n', got[i])) {
				CHECK(strstr(bufs[i], "\"state\":\"running\"") != NULL);
				close(fds[i]);
				fds[i] = -1;
				answered++;
			}
		}
	}
	CHECK_INT(answered, N);
	printf("bench concurrent_status_500_ms=%ld\n", h_now_ms() - t0);
	h_teardown();
}

/* Killing one VM: that member goes to error, siblings keep running. */
static void t_kill_vm(void)
{
	h_setup("killvm");
	CHECK_INT(h_run(NULL, "up", "kv", "-n", "3", "--image", h_image(), NULL), 0);
	pid_t v2 = h_fake_vm_pid("kv-2");
	CHECK(v2 > 0);
	CHECK_INT(kill(v2, SIGKILL), 0);
	CHECK(h_wait_pid_gone(v2, 5000) >= 0 || !h_pid_alive(v2));
	json_t *o = NULL;
	for (int i = 0; i < 400; i++) {
		json_decref(o);
		o = status_json("kv-2");
		if (o && !strcmp(jstr(o, "status", "state"), "error"))
			break;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	CHECK_STR(jstr(o, "status", "state"), "error");
	CHECK(strstr(jstr(o, "status", "error"), "killed by signal 9") != NULL);
	CHECK(json_is_false(json_object_get(json_object_get(o, "status"), "running")));
	json_decref(o);
	o = status_json("kv-1");
	CHECK_STR(jstr(o, "status", "state"), "running");
	json_decref(o);
	o = status_json("kv-3");
	CHECK_STR(jstr(o, "status", "state"), "running");
	json_decref(o);
	CHECK(h_fake_vm_pid("kv-1") > 0 && h_fake_vm_pid("kv-3") > 0);
	/* the errored member is booted again by up, in the same holder */
	char *out;
	CHECK_INT(h_run(&out, "ls", NULL), 0);
	CHECK(strstr(out, "error") != NULL);
	free(out);
	pid_t holder = h_pidfile("kv-1");
	CHECK_INT(h_run(NULL, "up", "kv-2", NULL), 0);
	CHECK_INT(h_pidfile("kv-2"), holder);
	o = status_json("kv-2");
	CHECK_STR(jstr(o, "status", "state"), "running");
	json_decref(o);
	h_teardown();
}

/* SIGTERM on a detached holder: everything stops and is cleaned. */
static void t_sigterm(void)
{
	h_setup("sigterm");
	CHECK_INT(h_run(NULL, "up", "st", "-n", "2", "--image", h_image(), NULL), 0);
	pid_t holder = h_pidfile("st-1");
	pid_t v1 = h_fake_vm_pid("st-1");
	CHECK(holder > 0 && v1 > 0);
	CHECK_INT(kill(holder, SIGTERM), 0);
	CHECK(h_wait_pid_gone(holder, 10000) >= 0);
	CHECK(!h_pid_alive(v1));
	CHECK(member_gone("st-1") && member_gone("st-2"));
	/* SIGKILL of a detached holder takes its VMs along (PDEATHSIG) */
	CHECK_INT(h_run(NULL, "up", "st-1", NULL), 0);
	holder = h_pidfile("st-1");
	v1 = h_fake_vm_pid("st-1");
	CHECK_INT(kill(holder, SIGKILL), 0);
	CHECK(h_wait_pid_gone(holder, 5000) >= 0);
	CHECK(h_wait_pid_gone(v1, 5000) >= 0 || !h_pid_alive(v1));
	/* the stale pidfile names a dead pid: not running; prune clears it */
	char *out;
	CHECK_INT(h_run(&out, "ls", NULL), 0);
	CHECK(strstr(out, "stopped") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "prune", NULL), 0);
	CHECK(strstr(out, "pruned:") != NULL);
	free(out);
	CHECK(member_gone("st-1"));
	h_teardown();
}

/* The socat example of protocol.md, as written. */
static void t_socat(void)
{
	if (access("/usr/bin/socat", X_OK) != 0) {
		printf("socat not installed\n");
		exit(77);
	}
	h_setup("socat");
	CHECK_INT(h_run(NULL, "up", "sc-1", "--image", h_image(), NULL), 0);
	char sock[128];
	wire_sock_path(h_root, "sc-1", sock, sizeof(sock));
	char addr[160];
	snprintf(addr, sizeof(addr), "UNIX-CONNECT:%s", sock);
	struct cmd c;
	cmd_init(&c, "sh");
	cmd_add(&c, "-c");
	cmd_add(&c, "printf '{\"cmd\":\"status\"}\\n' | socat - \"$1\"");
	cmd_add(&c, "sh");
	cmd_add(&c, addr);
	char *out = NULL;
	struct err e = { 0 };
	CHECK_INT(cmd_run(&c, &out, &e), 0);
	cmd_fini(&c);
	CHECK(strstr(out, "{\"status\":{\"name\":\"sc-1\"") == out);
	free(out);
	h_teardown();
}

/* The holder under valgrind through a full bound lifecycle: no memory errors,
 * no definite leaks, and uv_loop_close() == 0 (else it exits non-zero). */
static void t_holder_valgrind(void)
{
	if (getenv("FLEETBOX_SANITIZED") || access("/usr/bin/valgrind", X_OK) != 0) {
		printf("skipped: sanitized build or no valgrind\n");
		exit(77);
	}
	h_setup("valgrind");
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char ppid[32], log[400];
		snprintf(ppid, sizeof(ppid), "%d", (int)getppid());
		setenv("FLEETBOX_PARENT_PID", ppid, 1);
		snprintf(log, sizeof(log), "%s/runner.log", h_root);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execl("/usr/bin/valgrind", "valgrind", "--quiet", "--error-exitcode=99",
		      "--leak-check=full", "--errors-for-leak-kinds=definite", "--track-fds=no",
		      h_bin, "--fleetbox-runner", "vg-1,vg-2", (char *)NULL);
		_exit(127);
	}
	int fd = dial_ctl("vg-1");
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "bind", 4), 4);
	read_version(fd);
	CHECK_INT(write(fd, "ack", 3), 3);
	char *r = h_req("vg-1", "{\"cmd\":\"createnetwork\"}\n", 20000);
	CHECK_STR(r, "{}");
	free(r);
	const char *names[] = { "vg-1", "vg-2" };
	for (int i = 0; i < 2; i++) {
		char req[600];
		int n = snprintf(req, sizeof(req), "{\"cmd\":\"reserve\",\"name\":\"%s\"}\n", names[i]);
		r = h_request("vg-1", req, (size_t)n, 20000);
		CHECK(r && strstr(r, "reservation"));
		free(r);
		n = snprintf(req, sizeof(req),
			     "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"%s\",\"disk_path\":\"%s\"}}\n",
			     names[i], h_image());
		r = h_request("vg-1", req, (size_t)n, 20000);
		CHECK_STR(r, "{}");
		free(r);
	}
	r = h_req("vg-2", "{\"cmd\":\"status\"}\n", 20000);
	CHECK(r && strstr(r, "\"running\":true"));
	free(r);
	r = h_req("vg-1", "garbage\n", 20000);
	CHECK(r && strstr(r, "invalid JSON"));
	free(r);
	/* the path policy and an ephemeral member, under memcheck too */
	r = h_req("vg-1", "{\"cmd\":\"reserve\",\"name\":\"vg-3\"}\n", 20000);
	free(r);
	r = h_req("vg-1", "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"vg-3\",\"disk_path\":\"/etc/shadow\"}}\n",
		  20000);
	CHECK(r && strstr(r, "is outside the store"));
	free(r);
	char eph[600], edir[400];
	snprintf(edir, sizeof(edir), "%s/clusters/vg/vg-3", h_root);
	snprintf(eph, sizeof(eph),
		 "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"vg-3\",\"disk_path\":\"%s\","
		 "\"ephemeral\":true}}\n", h_image());
	r = h_req("vg-1", eph, 20000);
	CHECK_STR(r, "{}");
	free(r);
	r = h_req("vg-3", "{\"cmd\":\"stop\"}\n", 20000);
	CHECK_STR(r, "{}");
	free(r);
	CHECK(h_wait_until(member_gone, "vg-3", 20000));
	CHECK(!path_exists(edir));
	r = h_req("vg-2", "{\"cmd\":\"stop\"}\n", 20000);
	CHECK_STR(r, "{}");
	free(r);
	CHECK(h_wait_until(member_gone, "vg-2", 20000));
	close(fd); /* acknowledged .ctl EOF: full teardown */
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	char log[400];
	snprintf(log, sizeof(log), "%s/runner.log", h_root);
	char *s = h_read_file(log);
	fprintf(stderr, "%s", s ? s : "");
	free(s);
	CHECK(WIFEXITED(st));
	CHECK_INT(WEXITSTATUS(st), 0);
	CHECK(member_gone("vg-1"));
	h_teardown();
}

/* --- the holder over the real network (fake VMM, FLEETBOX_NET=bridge) --- */

static void t_net_holder(void)
{
	h_setup("netholder");
	h_enter_netns();
	long t0 = h_now_ms();
	char *out;
	CHECK_INT(h_run(&out, "up", "na", "-n", "2", "--image", h_image(), NULL), 0);
	printf("bench up_bridge_2_members_ms=%ld\n", h_now_ms() - t0);
	CHECK(strstr(out, "  na-1  IP: 192.168.0.2") != NULL);
	CHECK(strstr(out, "  na-2  IP: 192.168.0.3") != NULL);
	free(out);
	CHECK_INT(h_count_links("fbt"), 2);
	CHECK_INT(h_count_records(), 1);
	/* the gateway is on the bridge; the VMs' neighbour entries are permanent */
	out = h_tool("ip", "-4", "addr", "show");
	CHECK(strstr(out, "192.168.0.1/24") != NULL);
	free(out);
	out = h_tool("ip", "neigh", "show", NULL);
	CHECK(strstr(out, "192.168.0.2") && strstr(out, "PERMANENT"));
	free(out);
	/* a second cluster gets the next /24, its own bridge and table */
	CHECK_INT(h_run(&out, "up", "nb-1", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  nb-1  IP: 192.168.1.2") != NULL);
	free(out);
	CHECK_INT(h_count_records(), 2);
	CHECK_INT(h_count_links("fbt"), 3);
	out = h_tool("nft", "list", "tables", NULL);
	int tables = 0;
	for (char *p = out; (p = strstr(p, "table ip fb")); p++)
		tables++;
	CHECK_INT(tables, 2);
	free(out);
	/* a member joining na gets na's subnet */
	CHECK_INT(h_run(&out, "up", "na-3", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  na-3  IP: 192.168.0.4") != NULL);
	free(out);
	/* down one: its tap goes, the network stays */
	CHECK_INT(h_run(NULL, "down", "na-3", NULL), 0);
	CHECK_INT(h_count_links("fbt"), 3);
	/* down na and nb: everything is gone */
	pid_t ha = h_pidfile("na-1"), hb = h_pidfile("nb-1");
	CHECK(ha > 0 && hb > 0);
	CHECK_INT(h_run(NULL, "down", "na", "nb", NULL), 0);
	CHECK(h_wait_pid_gone(ha, 10000) >= 0 && h_wait_pid_gone(hb, 10000) >= 0);
	CHECK_INT(h_count_links("fbt"), 0);
	CHECK_INT(h_count_links("fb"), 0);
	CHECK_INT(h_count_records(), 0);
	out = h_tool("nft", "list", "tables", NULL);
	CHECK(strstr(out, "table ip fb") == NULL);
	free(out);
	/* up again: same IPs from config.json hints */
	CHECK_INT(h_run(&out, "up", "na-2", NULL), 0);
	CHECK(strstr(out, "  na-2  IP: 192.168.0.3") != NULL);
	free(out);
	h_teardown();
}

static void t_net_prune(void)
{
	h_setup("netprune");
	h_enter_netns();
	CHECK_INT(h_run(NULL, "up", "np", "-n", "2", "--image", h_image(), NULL), 0);
	pid_t holder = h_pidfile("np-1");
	pid_t v1 = h_fake_vm_pid("np-1");
	CHECK(holder > 0 && v1 > 0);
	CHECK_INT(kill(holder, SIGKILL), 0);
	CHECK(h_wait_pid_gone(holder, 5000) >= 0);
	CHECK(h_wait_pid_gone(v1, 5000) >= 0 || !h_pid_alive(v1)); /* PDEATHSIG */
	/* the crash record and the host state survive the holder */
	CHECK_INT(h_count_records(), 1);
	CHECK_INT(h_count_links("fbt"), 2);
	char *out;
	long t0 = h_now_ms();
	CHECK_INT(h_run(&out, "prune", NULL), 0);
	printf("bench prune_ms=%ld\n", h_now_ms() - t0);
	CHECK(strstr(out, "pruned: 1 network(s), 2 tap(s)") != NULL);
	free(out);
	CHECK_INT(h_count_records(), 0);
	CHECK_INT(h_count_links("fb"), 0);
	out = h_tool("nft", "list", "tables", NULL);
	CHECK(strstr(out, "table ip fb") == NULL);
	free(out);
	CHECK_INT(h_run(&out, "prune", NULL), 0);
	CHECK(strstr(out, "pruned: 0 network(s), 0 tap(s), 0 orphaned VMM process(es), 0 stale file(s)") != NULL);
	free(out);
	h_teardown();
}

/* Without root: a clear error before any disk work, nothing left behind. */
static void t_net_notroot(void)
{
	h_setup("notroot");
	h_enter_netns();
	CHECK_INT(chown(h_root, 65534, 65534), 0);
	char img[300];
	snprintf(img, sizeof(img), "%s", h_image());
	CHECK_INT(chown(img, 65534, 65534), 0);
	char *buf;
	setenv("FLEETBOX_NO_SUDO", "1", 1); /* no sudo: the CLI refuses before any work */
	CHECK_INT(h_run_as(65534, 65534, &buf, "up", "nr-1", "--image", img, NULL), 1);
	unsetenv("FLEETBOX_NO_SUDO");
	CHECK(strstr(buf, "needs root") != NULL);
	free(buf);
	char d[300];
	snprintf(d, sizeof(d), "%s/clusters/nr", h_root);
	CHECK(!path_exists(d));
	CHECK(!h_sock_exists("nr-1"));
	h_teardown();
}

static const struct h_case cases[] = {
	{ "happy", t_happy },	      { "cli-errors", t_cli_errors },
	{ "bound-sigkill", t_bound_sigkill }, { "bound-close", t_bound_close },
	{ "version-mismatch", t_version_mismatch }, { "ctl-ack", t_ctl_ack },
	{ "fake-record", t_fake_record }, { "rollback", t_rollback },
	{ "join", t_join },	      { "bad-requests", t_bad_requests },
	{ "concurrent", t_concurrent }, { "kill-vm", t_kill_vm },
	{ "sigterm", t_sigterm },     { "socat", t_socat },
	{ "holder-valgrind", t_holder_valgrind }, { "stop-during-boot", t_stop_during_boot },
	{ "races", t_races },
	{ "net-holder", t_net_holder }, { "net-prune", t_net_prune },
	{ "net-notroot", t_net_notroot },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
