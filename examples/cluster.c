/* cluster.c - a 2-member cluster that dies with this process: exec, copy a
 * file in and one back out, ping the sibling by IP and by name (as the guest's
 * plain user, like every fb_exec). Exits 0 when every step worked.
 *   cc -o cluster cluster.c $(pkg-config --cflags --libs fleetbox)
 *   sudo ./cluster   # root: the holder makes a bridge and taps */
#include <fleetbox.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fb_error err;

static void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, err.message);
	exit(1);
}

/* Runs cmd on member name, prints its output, returns its exit status. */
static int run(const char *name, const char *cmd)
{
	fb_exec_result r;
	if (fb_exec(NULL, name, cmd, &r, &err) < 0) /* < 0: it did not run */
		die(cmd);
	printf("%s$ %s -> %d\n%s", name, cmd, r.exit_status, r.combined);
	int status = r.exit_status;
	fb_exec_result_free(&r);
	return status;
}

int main(void)
{
	const char *names[] = { "db-1", "db-2" };
	fb_up_options o = { .names = names, .n_names = 2, .bound = 1, .ephemeral = 1 };
	fb_cluster *c;
	if (fb_up(&o, &c, &err) < 0)
		die("fb_up");
	int failed = 0;
	char cmd[64];
	snprintf(cmd, sizeof cmd, "ping -c1 -W2 %s", fb_cluster_ip(c, 1));
	failed |= run("db-1", cmd);
	failed |= run("db-1", "ping -c1 -W2 db-2"); /* /etc/hosts lists the cluster */

	FILE *f = fopen("schema.sql", "w");
	if (!f || fputs("CREATE TABLE t (id int);\n", f) < 0 || fclose(f) != 0)
		return perror("schema.sql"), 1;
	if (fb_copy_to(NULL, "db-2", "schema.sql", "/tmp/schema.sql", &err) < 0)
		die("fb_copy_to");
	failed |= run("db-2", "grep -q 'CREATE TABLE' /tmp/schema.sql");
	if (fb_copy_from(NULL, "db-2", "/etc/hostname", "db-2.hostname", &err) < 0)
		die("fb_copy_from");
	char host[16] = "";
	f = fopen("db-2.hostname", "r");
	failed |= !f || !fgets(host, sizeof host, f) || strcmp(host, "db-2\n") != 0;
	if (f)
		fclose(f);

	if (fb_cluster_close(c, &err) < 0) /* or just exit: the VMs die with us */
		die("fb_cluster_close");
	puts(failed ? "FAILED" : "ok");
	return failed != 0;
}
