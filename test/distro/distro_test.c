/* distro_test.c - the guest contract on a real Debian guest (systemd,
 * cloud-init, openssh), built from the Debian archive by `fleetbox image
 * build debian-12` and driven through the real CLI inside a private network
 * namespace and store.
 *
 * The image is built once into the user's image cache (or
 * $FLEETBOX_DISTRO_CACHE) in the host namespace, where the archive is
 * reachable, and reused by later runs; every boot happens offline. Each
 * check is one row of a table (check, pass/fail, detail) printed at the
 * end; a case fails when any row does. Cases:
 *   contract   two members: hostname, user + sudo, pinned host key, address
 *              and default route, a sibling's name, cp both ways, a
 *              read-only fixture, ping as the user, SSH for 30 s after
 *              `up`, `down` as a real power-off (no ext4 recovery after)
 *   wholedisk  the same root filesystem as a bare ext4 image (no partition
 *              table), booted twice
 * Usage: distro_test <case>. */
#include "harness.h"
#include "client/image/image.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE "debian-12-local"

/* ---- the table ---- */

struct row {
	char check[40];
	bool pass;
	char detail[200];
};

static struct row rows[32];
static size_t n_rows;

__attribute__((format(printf, 3, 4)))
static bool row(const char *check, bool pass, const char *fmt, ...)
{
	CHECK(n_rows < sizeof(rows) / sizeof(rows[0]));
	struct row *r = &rows[n_rows++];
	snprintf(r->check, sizeof(r->check), "%s", check);
	r->pass = pass;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	for (char *p = r->detail; *p; p++) /* one line per row */
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	printf("%-26s %s  %s\n", r->check, pass ? "pass" : "FAIL", r->detail);
	fflush(stdout);
	return pass;
}

/* Prints the table; exits 1 when a row failed. */
static void table_end(const char *title)
{
	size_t failed = 0;
	printf("\n== %s: guest contract on %s ==\n%-26s %-4s  %s\n", title, IMAGE, "CHECK", "RESULT",
	       "DETAIL");
	for (size_t i = 0; i < n_rows; i++) {
		printf("%-26s %-6s  %s\n", rows[i].check, rows[i].pass ? "pass" : "FAIL",
		       rows[i].detail);
		failed += !rows[i].pass;
	}
	printf("== %zu checks, %zu failed ==\n", n_rows, failed);
	fflush(stdout);
	if (failed)
		exit(1);
}

/* ---- helpers ---- */

static char *trim(char *s)
{
	if (!s)
		return s;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* `fleetbox ssh member -- cmd`: status, output (trimmed, caller frees). */
static int gssh(const char *member, const char *cmd, char **out)
{
	char *o = NULL;
	int st = h_run(&o, "ssh", member, "--", cmd, NULL);
	if (out)
		*out = trim(o ? o : strdup(""));
	else
		free(o);
	return st;
}

static double secs_since(long t0)
{
	return (double)(h_now_ms() - t0) / 1000.0;
}

/* The member's address from `fleetbox ls -o json`. */
static void member_ip(const char *member, char ip[16])
{
	char *out = NULL;
	CHECK_INT(h_run(&out, "ls", "-o", "json", member, NULL), 0);
	json_t *arr = json_loads(out, 0, NULL);
	if (!arr)
		fprintf(stderr, "ls -o json: %s\n", out);
	CHECK(arr != NULL);
	json_t *o = json_is_array(arr) ? json_array_get(arr, 0) : arr;
	const char *s = json_string_value(json_object_get(o, "ip"));
	CHECK(s != NULL && strlen(s) < 16);
	snprintf(ip, 16, "%s", s);
	json_decref(arr);
	free(out);
}

/* The address of this namespace's bridge on ip's /24 (the guests' gateway). */
static void bridge_ip(const char *ip, char gw[16])
{
	char *out = h_tool("ip", "-4", "-o", "addr"), net[16];
	const char *dot = strrchr(ip, '.');
	CHECK(dot != NULL);
	snprintf(net, sizeof(net), "%.*s", (int)(dot - ip + 1), ip);
	gw[0] = '\0';
	for (char *p = strstr(out, "inet "); p; p = strstr(p + 5, "inet "))
		if (!strncmp(p + 5, net, strlen(net))) {
			sscanf(p + 5, "%15[0-9.]", gw);
			break;
		}
	free(out);
	CHECK(gw[0] != '\0');
}

static void write_text(const char *path, const char *text)
{
	CHECK_INT(file_write_atomic(path, text, strlen(text), 0644), 0);
}

/* Debian cloud image built or found in the cache, in the host namespace. */
static void distro_setup(const char *name)
{
	if (geteuid() != 0) {
		printf("skipped: the distro suite needs root (image build, network namespace)\n");
		exit(77);
	}
	h_setup(name);
	unsetenv("FLEETBOX_VMM");
	const char *cache = getenv("FLEETBOX_DISTRO_CACHE");
	if (cache && *cache)
		setenv("FLEETBOX_CACHE", cache, 1);
	else
		unsetenv("FLEETBOX_CACHE"); /* the user's cache: built once, kept */
	long t0 = h_now_ms();
	char *out = NULL;
	int st = h_run(&out, "image", "prepare", IMAGE, NULL);
	printf("bench distro_image_ready_ms=%ld\n", h_now_ms() - t0);
	CHECK_INT(st, 0);
	free(out);
}

static void enter_offline_netns(void)
{
	h_enter_netns();
	unsetenv("FLEETBOX_NET"); /* QEMU implies the bridge network */
}

/* ---- contract checks ---- */

/* Right after `up`: SSH must keep answering (no sshd restart by cloud-init):
 * back-to-back runs until 30 s have passed since `up` returned. */
static void check_ssh_persists(const char *m, long up_done)
{
	int ok = 0, tries = 0;
	char fail[120] = "";
	while (secs_since(up_done) < 30 && tries < 60) {
		tries++;
		char *o = NULL;
		int st = gssh(m, "true", &o);
		if (st == 0)
			ok++;
		else if (!fail[0])
			snprintf(fail, sizeof(fail), "; try %d at +%.1fs exit %d: %.60s", tries,
				 secs_since(up_done), st, o);
		free(o);
		usleep(500 * 1000);
	}
	row("ssh 30s after up", ok == tries && tries >= 3, "%d/%d ssh runs ok over %.0fs%s", ok,
	    tries, secs_since(up_done), fail);
}

static void check_hostname(const char *m)
{
	char *o = NULL;
	int st = gssh(m, "hostname; hostname -f 2>&1 || true", &o);
	char want[80];
	snprintf(want, sizeof(want), "%s\n", m);
	row("hostname", st == 0 && !strncmp(o, want, strlen(want)), "%s", o);
	free(o);
}

/* cloud-init finished without errors (tests that run `cloud-init status
 * --wait` exit with its status: an image whose locale module fails, say,
 * fails every such test). */
static void check_cloud_init(const char *m)
{
	char *o = NULL;
	int st = gssh(m, "cloud-init status; echo rc=$?", &o);
	row("cloud-init status done", st == 0 && strstr(o, "status: done") && strstr(o, "rc=0"),
	    "%.80s", o);
	free(o);
}

/* The user exists, and sudo works without a word on stderr (no "unable
 * to resolve host"), without a password, and without waiting on DNS. */
static void check_sudo(const char *m)
{
	char *o = NULL;
	long t0 = h_now_ms();
	int st = gssh(m, "id -un; sudo -n true 2>&1; echo rc=$?", &o);
	double took = secs_since(t0);
	char *nl = strchr(o, '\n');
	bool clean = nl && !strcmp(nl + 1, "rc=0");
	row("user + sudo -n true", st == 0 && clean && strncmp(o, "root", 4) != 0,
	    "%s (%.1fs)", o, took);
	free(o);
}

/* Plain OpenSSH with the store's ssh_config: the host key it pins is the
 * one the guest presents, with checking on (no trust on first use). */
static void check_pinned_key(const char *m)
{
	char cfg[300], *o = NULL;
	snprintf(cfg, sizeof(cfg), "%s/ssh_config", h_root);
	int st = h_run(&o, "ssh-config", NULL);
	free(o);
	struct cmd c;
	cmd_init(&c, "ssh");
	cmd_add(&c, "-F");
	cmd_add(&c, cfg);
	cmd_add(&c, "-o");
	cmd_add(&c, "StrictHostKeyChecking=yes");
	cmd_add(&c, "-o");
	cmd_add(&c, "BatchMode=yes");
	cmd_add(&c, m);
	cmd_add(&c, "echo pinned-ok");
	struct err e = { 0 };
	int r = st == 0 ? cmd_run(&c, &o, &e) : -1;
	cmd_fini(&c);
	row("pinned host key", r == 0 && o && strstr(o, "pinned-ok"), "ssh -F store/ssh_config "
	    "StrictHostKeyChecking=yes: %s", r == 0 ? trim(o) : e.msg);
	free(o);
}

static void check_route(const char *m, const char *ip, const char *gw)
{
	char *o = NULL, want[48];
	int st = gssh(m, "ip -4 -o addr show scope global; ip route", &o);
	snprintf(want, sizeof(want), "default via %s ", gw);
	bool addr = strstr(o, ip) != NULL;
	bool def = strstr(o, want) != NULL;
	char *d = strstr(o, "default");
	row("address + default route", st == 0 && addr && def, "%s %s; %.60s", ip,
	    addr ? "on eth" : "missing", d ? d : "no default route");
	free(o);
}

static void check_sibling(const char *m, const char *sib, const char *sib_ip)
{
	char *o = NULL, cmd[96];
	snprintf(cmd, sizeof(cmd), "getent hosts %s", sib);
	int st = gssh(m, cmd, &o);
	row("sibling name resolves", st == 0 && !strncmp(o, sib_ip, strlen(sib_ip)) &&
	    o[strlen(sib_ip)] == ' ', "getent hosts %s: %s", sib, o);
	free(o);
}

static void check_cp(const char *m)
{
	char src[300], back[300], dst[96], *o = NULL, *got = NULL;
	snprintf(src, sizeof(src), "%s/cp-in.txt", h_root);
	snprintf(back, sizeof(back), "%s/cp-out.txt", h_root);
	snprintf(dst, sizeof(dst), "%s:/tmp/cp-in.txt", m);
	char text[64];
	snprintf(text, sizeof(text), "fleetbox cp %ld\n", h_now_ms());
	write_text(src, text);
	int in = h_run(&o, "cp", src, dst, NULL);
	free(o);
	int out = h_run(&o, "cp", dst, back, NULL);
	free(o);
	bool same = out == 0 && file_read_all(back, 4096, &got, NULL) == 0 && !strcmp(got, text);
	row("cp in and out", in == 0 && same, "in exit %d, out exit %d, %s", in, out,
	    same ? "content round-trips" : "content differs");
	free(got);
}

static void check_fixture(const char *m)
{
	char *o = NULL;
	int st = gssh(m, "cat /mnt/fixture/hello; touch /mnt/fixture/x 2>&1; "
		      "sudo touch /mnt/fixture/x 2>&1 | grep -v '^sudo:'; findmnt -no OPTIONS /mnt/fixture", &o);
	bool content = !strncmp(o, "fixture-data\n", 13);
	bool ro = strstr(o, "Read-only") != NULL && strstr(o, "ro,") != NULL;
	row("read-only fixture", st == 0 && content && ro, "%s", o);
	free(o);
}

static void check_ping(const char *m, const char *sib_ip)
{
	char *o = NULL, cmd[96];
	snprintf(cmd, sizeof(cmd), "id -u; ping -c1 -W5 %s | grep -c 'bytes from'", sib_ip);
	int st = gssh(m, cmd, &o);
	row("ping sibling as user", st == 0 && strncmp(o, "0\n", 2) != 0 && strstr(o, "\n1"),
	    "exit %d: %s", st, o);
	free(o);
}

/* Kernel messages of this boot about ext4 journal recovery or orphans. */
static void check_clean_boot(const char *m, const char *label, double down_s)
{
	char *o = NULL;
	int st = gssh(m, "sudo dmesg 2>/dev/null | grep -iE 'EXT4-fs.*(recover|orphan)'; "
		      "echo boots=$(sudo journalctl --list-boots 2>/dev/null | grep -c .)", &o);
	bool clean = !strncmp(o, "boots=", 6);
	row(label, st == 0 && clean, "down %.1fs; %s", down_s,
	    clean ? "no ext4 journal recovery or orphan cleanup on the next boot" : o);
	free(o);
}

static void t_contract(void)
{
	distro_setup("distro");
	char fix[300], fixarg[340];
	snprintf(fix, sizeof(fix), "%s/fixture", h_root);
	CHECK_INT(mkdir(fix, 0755), 0);
	snprintf(fixarg, sizeof(fixarg), "%s/hello", fix);
	write_text(fixarg, "fixture-data\n");
	snprintf(fixarg, sizeof(fixarg), "%s:/mnt/fixture", fix);
	enter_offline_netns();

	char *out = NULL;
	long t0 = h_now_ms();
	int st = h_run(&out, "up", "deb", "-n", "2", "--image", IMAGE, "--cpus", "1", "--mem", "1",
		       "--fixture", fixarg, NULL);
	long up_done = h_now_ms();
	printf("bench distro_up_2_members_ms=%ld\n", up_done - t0);
	fflush(stdout);
	if (!row("up -n 2", st == 0, "exit %d in %.1fs", st, (up_done - t0) / 1000.0)) {
		free(out);
		table_end("contract");
	}
	free(out);
	check_ssh_persists("deb-1", up_done);

	char ip1[16], ip2[16], gw[16];
	member_ip("deb-1", ip1);
	member_ip("deb-2", ip2);
	bridge_ip(ip1, gw);
	check_hostname("deb-1");
	check_cloud_init("deb-1");
	check_sudo("deb-1");
	check_pinned_key("deb-1");
	check_route("deb-1", ip1, gw);
	check_sibling("deb-1", "deb-2", ip2);
	check_sibling("deb-2", "deb-1", ip1);
	check_cp("deb-1");
	check_fixture("deb-1");
	check_ping("deb-1", ip2);

	/* down, then boot again: a graceful power-off leaves a clean journal */
	CHECK_INT(gssh("deb-1", "sudo sh -c 'echo kept > /var/tmp/kept'", NULL), 0);
	long d0 = h_now_ms();
	st = h_run(&out, "down", "deb", NULL);
	double down_s = secs_since(d0);
	printf("bench distro_down_2_members_ms=%ld\n", h_now_ms() - d0);
	free(out);
	row("down", st == 0, "exit %d in %.1fs", st, down_s);
	t0 = h_now_ms();
	st = h_run(&out, "up", "deb", NULL);
	printf("bench distro_up_again_ms=%ld\n", h_now_ms() - t0);
	free(out);
	if (row("up again", st == 0, "exit %d in %.1fs", st, secs_since(t0))) {
		check_clean_boot("deb-1", "down = power-off (deb-1)", down_s);
		check_clean_boot("deb-2", "down = power-off (deb-2)", down_s);
		char *o = NULL;
		st = gssh("deb-1", "cat /var/tmp/kept", &o);
		row("disk kept across down", st == 0 && !strcmp(o, "kept"), "%s", o);
		free(o);
	}
	table_end("contract");
}

/* ---- whole-disk image ---- */

/* Start and size (bytes) of partition 1 of a disk, from `sfdisk --json`. */
static void first_partition(const char *disk, long long *start, long long *size)
{
	char *out = h_tool("sfdisk", "--json", disk, NULL);
	json_t *o = json_loads(out, 0, NULL);
	CHECK(o != NULL);
	json_t *pt = json_object_get(o, "partitiontable");
	json_t *p = json_array_get(json_object_get(pt, "partitions"), 0);
	long long ss = json_integer_value(json_object_get(pt, "sectorsize"));
	*start = json_integer_value(json_object_get(p, "start")) * (ss ? ss : 512);
	*size = json_integer_value(json_object_get(p, "size")) * (ss ? ss : 512);
	CHECK(*start > 0 && *size > 0);
	json_decref(o);
	free(out);
}

static bool all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Copies len bytes at off of src to a new sparse file dst. */
static void copy_range(const char *src, long long off, long long len, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(in >= 0 && out >= 0);
	static char buf[1 << 20];
	for (long long done = 0; done < len;) {
		size_t want = len - done < (long long)sizeof(buf) ? (size_t)(len - done) : sizeof(buf);
		ssize_t n = pread(in, buf, want, off + done);
		CHECK(n > 0);
		if (!all_zero(buf, (size_t)n))
			CHECK(pwrite(out, buf, (size_t)n, done) == n);
		done += n;
	}
	CHECK_INT(ftruncate(out, len), 0);
	CHECK_INT(fsync(out), 0);
	close(in);
	close(out);
}

/* The built image's base disk (a raw GPT disk) in the cache. */
static void built_disk(char *path, size_t len)
{
	struct image_info img;
	struct err e = { 0 };
	int r = image_resolve(h_root, IMAGE, NULL, NULL, &img, &e);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", IMAGE, e.msg);
	CHECK_INT(r, 0);
	CHECK_STR(img.base_format, "raw");
	snprintf(path, len, "%s", img.base);
}

static void whole_boot(const char *m, const char *label, int round)
{
	char *out = NULL;
	long t0 = h_now_ms();
	int st = h_run(&out, "up", m, NULL);
	printf("%s\nbench distro_whole_up%d_ms=%ld\n", out ? out : "", round, h_now_ms() - t0);
	free(out);
	if (!row(label, st == 0, "exit %d in %.1fs", st, secs_since(t0)))
		return;
	char *o = NULL;
	st = gssh(m, "findmnt -no SOURCE /; grep -o 'root=[^ ]*' /proc/cmdline; hostname", &o);
	char want[96];
	snprintf(want, sizeof(want), "/dev/vda\nroot=/dev/vda\n%s", m);
	char check[40];
	snprintf(check, sizeof(check), "root is the whole disk #%d", round);
	row(check, st == 0 && !strcmp(o, want), "%s", o);
	free(o);
}

static void t_wholedisk(void)
{
	distro_setup("distro-whole");
	char gpt[PATH_MAX], whole[400], cache[400];
	built_disk(gpt, sizeof(gpt));
	long long start, size;
	first_partition(gpt, &start, &size);
	snprintf(whole, sizeof(whole), "%s/whole.raw", h_root);
	copy_range(gpt, start, size, whole);
	/* A cache of its own: this image is a test's, not the user's. */
	snprintf(cache, sizeof(cache), "%s/cache", h_root);
	setenv("FLEETBOX_CACHE", cache, 1);
	enter_offline_netns();

	char *out = NULL;
	long t0 = h_now_ms();
	int st = h_run(&out, "up", "whole", "--image", whole, "--cpus", "1", "--mem", "1", NULL);
	printf("bench distro_whole_up1_ms=%ld\n", h_now_ms() - t0);
	free(out);
	if (!row("up (bare ext4 image) #1", st == 0, "exit %d in %.1fs", st, secs_since(t0)))
		table_end("wholedisk");
	char *o = NULL;
	st = gssh("whole", "findmnt -no SOURCE /; grep -o 'root=[^ ]*' /proc/cmdline; hostname", &o);
	row("root is the whole disk #1", st == 0 && !strcmp(o, "/dev/vda\nroot=/dev/vda\nwhole"),
	    "%s", o);
	free(o);
	long d0 = h_now_ms();
	st = h_run(&out, "down", "whole", NULL);
	free(out);
	double down_s = secs_since(d0);
	row("down", st == 0, "exit %d in %.1fs", st, down_s);
	whole_boot("whole", "up (bare ext4 image) #2", 2);
	check_clean_boot("whole", "down = power-off", down_s);
	table_end("wholedisk");
}

static const struct h_case cases[] = {
	{ "contract", t_contract },
	{ "wholedisk", t_wholedisk },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
