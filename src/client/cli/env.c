/* cli/env.c - every environment variable fleetbox reads, in one table (help,
 * man page, the sudo re-exec and validation use it), and the check that runs
 * before any command does anything: a bad value is an error naming the
 * variable, a name one typo away from a known one gets a warning. */
#include "client/cli/cli.h"
#include "net/addr.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static int one_of(const char *v, const char *words, char *why, size_t len)
{
	const char *p = words;
	while (*p) {
		size_t l = strcspn(p, "|");
		if (strlen(v) == l && !strncmp(v, p, l))
			return 0;
		p += l + (p[l] == '|');
	}
	snprintf(why, len, "want one of %s", words);
	return -EINVAL;
}

static int check_vmm(const char *v, char *why, size_t len)
{
	return one_of(v, "fake|qemu|cloud-hypervisor|auto", why, len);
}

static int check_accel(const char *v, char *why, size_t len)
{
	return one_of(v, "auto|kvm|tcg", why, len);
}

static int check_net(const char *v, char *why, size_t len)
{
	return one_of(v, "bridge|none", why, len);
}

static int check_log(const char *v, char *why, size_t len)
{
	return one_of(v, "error|warn|info|debug", why, len);
}

static int check_bool(const char *v, char *why, size_t len)
{
	return one_of(v, "0|1", why, len);
}

static int check_abs_path(const char *v, char *why, size_t len)
{
	if (v[0] == '/')
		return 0;
	snprintf(why, len, "want an absolute path");
	return -EINVAL;
}

static int check_count(const char *v, char *why, size_t len)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!errno && end != v && !*end && isdigit((unsigned char)v[0]) && n <= 86400000UL)
		return 0;
	snprintf(why, len, "want a non-negative whole number");
	return -EINVAL;
}

static int check_range(const char *v, char *why, size_t len)
{
	uint32_t net;
	int plen;
	if (addr_parse_cidr(v, &net, &plen) == 0 && plen <= 24)
		return 0;
	snprintf(why, len, "want an IPv4 prefix of length 24 or less with its host bits zero, "
			   "such as 192.168.0.0/16");
	return -EINVAL;
}

/* "300" (seconds) or Go-style durations: "2m30s", "90s", "1h", "500ms". */
static int check_duration(const char *v, char *why, size_t len)
{
	const char *p = v;
	while (*p) {
		char *end;
		errno = 0;
		double d = strtod(p, &end);
		if (errno || end == p || d < 0)
			break;
		p = end;
		if (!strncmp(p, "ms", 2))
			p += 2;
		else if (*p == 'h' || *p == 'm' || *p == 's')
			p++;
		else if (*p)
			break;
	}
	if (!*p && *v)
		return 0;
	snprintf(why, len, "want seconds (\"300\") or a duration such as \"5m\" or \"2m30s\"");
	return -EINVAL;
}

const struct cli_env cli_env_vars[] = {
	{ "FLEETBOX_HOME", "PATH", "the store (default ~/.fleetbox; under sudo the invoking user's)",
	  check_abs_path, true, false },
	{ "FLEETBOX_CACHE", "PATH", "the image cache (default $XDG_CACHE_HOME/fleetbox, else "
				    "~/.cache/fleetbox; under sudo the invoking user's)",
	  check_abs_path, true, false },
	{ "FLEETBOX_VMM", "fake|qemu|cloud-hypervisor|auto",
	  "the VM monitor (default auto: cloud-hypervisor when installed and KVM works, else QEMU)",
	  check_vmm, true, false },
	{ "FLEETBOX_ACCEL", "auto|kvm|tcg",
	  "acceleration (default auto: KVM only when it really works, else TCG with a warning)",
	  check_accel, true, false },
	{ "FLEETBOX_NET", "bridge|none",
	  "networking (default: bridge for real VMMs; none is for the fake VMM only)", check_net,
	  true, false },
	{ "FLEETBOX_SUBNET_RANGE", "CIDR",
	  "where cluster networks (one /24 each) are taken from (default 192.168.0.0/16)",
	  check_range, true, false },
	{ "FLEETBOX_IP_WAIT_TIMEOUT", "DURATION",
	  "how long a boot may take until the guest's port 22 answers (default 5m under TCG, 2m "
	  "under KVM; seconds or e.g. 5m, 2m30s)",
	  check_duration, true, false },
	{ "FLEETBOX_SSH_WAIT_TIMEOUT", "DURATION",
	  "how long up then waits for a working SSH session (default 5m under TCG, 2m under KVM)",
	  check_duration, true, false },
	{ "FLEETBOX_STOP_TIMEOUT", "DURATION",
	  "how long a guest may take to power off before SIGTERM (default 5s for the mini image, "
	  "else 60s under TCG, 30s under KVM; up 1h)",
	  check_duration, true, false },
	{ "FLEETBOX_LOG", "error|warn|info|debug",
	  "log level of fleetbox and its holders (debug: also the CLI's own debug lines on stderr)",
	  check_log, true, false },
	{ "FLEETBOX_NO_SUDO", "0|1", "1: never re-run through sudo; commands that need root fail "
				     "with a message instead", check_bool, false, false },
	{ "FLEETBOX_QEMU", "PATH", "the QEMU binary (default qemu-system-x86_64)", NULL, false, false },
	{ "FLEETBOX_QEMU_MACHINE", "MACHINE", "QEMU machine type (default: microvm for the mini "
					      "image under TCG, else q35)", NULL, true, false },
	{ "FLEETBOX_QEMU_TB_MB", "N", "QEMU TCG translation cache in MiB (default 64)", check_count,
	  true, false },
	{ "FLEETBOX_CH", "PATH", "the cloud-hypervisor binary (default: cloud-hypervisor on PATH)",
	  NULL, false, false },
	{ "FLEETBOX_HELPER", "PATH", "the holder binary for library users (the CLI runs itself)",
	  check_abs_path, false, false },
	{ "FLEETBOX_CONN_TIMEOUT_MS", "N", "how long a holder waits for a slow request line "
					   "(default 5000)", check_count, true, true },
	{ "FLEETBOX_FAKE_BOOT_MS", "N", "fake VMM: how long a boot takes", check_count, true, true },
	{ "FLEETBOX_FAKE_FAIL_CREATE", "NAME", "fake VMM: fail creating this member", NULL, true,
	  true },
	{ "FLEETBOX_FAKE_POWEROFF_MS", "N", "fake VMM: how long a graceful power-off takes",
	  check_count, true, true },
	{ "FLEETBOX_FAKE_IGNORE_TERM", "0|1", "fake VMM: 1: the VMM ignores SIGTERM", check_bool,
	  true, true },
	{ "FLEETBOX_FAKE_SELF_POWEROFF_MS", "N", "fake VMM: the guest powers itself off this "
						 "long after booting", check_count, true, true },
	{ "FLEETBOX_FAKE_CONSOLE", "TEXT", "fake VMM: console text written instead of booting",
	  NULL, true, true },
	{ "FLEETBOX_FAKE_RECORD", "PATH", "fake VMM: append one JSON line per VM started",
	  check_abs_path, false, true },
	{ "FLEETBOX_PARENT_PID", "PID", "set by fleetbox for bound holders (internal)", check_count,
	  false, true },
	{ "FLEETBOX_TEST_STOP_AT", "STEP[,STEP...]", "stop (SIGSTOP) at these steps of up/down/rm "
						     "(validate, lock, ..., boot, commit, create-disk, rollback, stop-wait)",
	  NULL, true, true },
	{ "FLEETBOX_TEST_FAKE_SSH", "0|1", "1: up waits for SSH on fake VMs too", NULL, true, true },
	{ NULL },
};

static const struct cli_env *env_find(const char *name, size_t len)
{
	for (const struct cli_env *v = cli_env_vars; v->name; v++)
		if (strlen(v->name) == len && !strncmp(v->name, name, len))
			return v;
	return NULL;
}

static void warn_unknown(const char *name)
{
	const char *names[64];
	size_t n = 0;
	for (const struct cli_env *v = cli_env_vars; v->name && n < 63; v++)
		names[n++] = v->name;
	names[n] = NULL;
	const char *near = cli_nearest(name, names);
	if (near)
		cli_warn("%s is not a fleetbox variable (did you mean %s?); it is ignored", name, near);
}

int cli_env_validate(void)
{
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "FLEETBOX_", 9) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
		const struct cli_env *v = env_find(*e, (size_t)(eq - *e));
		if (!v) {
			warn_unknown(name);
			continue;
		}
		char why[256];
		const char *val = eq + 1;
		if (!*val || !v->check || v->check(val, why, sizeof(why)) == 0)
			continue; /* empty means unset everywhere fleetbox reads these */
		const char *near = NULL;
		if (strchr(v->values, '|')) {
			char words[256], *w[16];
			size_t nw = 0;
			snprintf(words, sizeof(words), "%s", v->values);
			for (char *t = strtok(words, "|"); t && nw < 15; t = strtok(NULL, "|"))
				w[nw++] = t;
			w[nw] = NULL;
			near = cli_nearest(val, (const char *const *)w);
			if (near)
				return cli_error("%s=\"%s\": %s (did you mean %s?)", name, val, why, near);
		}
		return cli_error("%s=\"%s\": %s", name, val, why);
	}
	return 0;
}
