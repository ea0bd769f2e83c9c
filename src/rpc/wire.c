#include "rpc/wire.h"
#include "util/hash.h"

#include <errno.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const state_names[] = {
	[FB_STATE_DOWNLOADING] = "downloading",
	[FB_STATE_STARTING] = "starting",
	[FB_STATE_RUNNING] = "running",
	[FB_STATE_STOPPED] = "stopped",
	[FB_STATE_ERROR] = "error",
};

const char *wire_state_name(enum wire_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "error";
	return state_names[s];
}

int wire_state_parse(const char *s, enum wire_state *out)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (!strcmp(s, state_names[i])) {
			*out = (enum wire_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool wire_state_is_running(enum wire_state s)
{
	return s == FB_STATE_DOWNLOADING || s == FB_STATE_STARTING || s == FB_STATE_RUNNING;
}

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool wire_name_valid(const char *name)
{
	if (!name || !lower_alnum(name[0]))
		return false;
	size_t n = strlen(name);
	if (n > FB_NAME_MAX)
		return false;
	for (size_t i = 1; i < n; i++)
		if (!lower_alnum(name[i]) && name[i] != '-')
			return false;
	return true;
}

void wire_cluster_name(const char *member, char out[FB_NAME_MAX + 1])
{
	snprintf(out, FB_NAME_MAX + 1, "%s", member);
	size_t n = strlen(out), i = n;
	while (i > 0 && out[i - 1] >= '0' && out[i - 1] <= '9')
		i--;
	/* Needs at least one digit, a '-' before them, and something before the '-'. */
	if (i < n && i >= 2 && out[i - 1] == '-')
		out[i - 1] = '\0';
}

void wire_name_hash(const char *name, char out[17])
{
	sha256_hex_prefix(name, strlen(name), 8, out);
}

void wire_mac(const char *name, char out[FB_MAC_STRLEN])
{
	char buf[FB_NAME_MAX + 16];
	uint8_t h[32];
	int n = snprintf(buf, sizeof(buf), "fleetbox:%s", name);
	sha256(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, h);
	snprintf(out, FB_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", (h[0] & 0xfe) | 0x02, h[1],
		 h[2], h[3], h[4], h[5]);
}

static int fmt_path(char *out, size_t len, size_t limit, const char *fmt, const char *a,
		    const char *b, const char *c)
{
	int n = snprintf(out, len, fmt, a, b, c);
	if (n < 0 || (size_t)n >= len || (limit && (size_t)n >= limit))
		return -ENAMETOOLONG;
	return 0;
}

int wire_sock_path(const char *root, const char *member, char *out, size_t len)
{
	char h[17];
	wire_name_hash(member, h);
	return fmt_path(out, len, WIRE_SUN_PATH_MAX, "%s/run/%s%s", root, h, ".sock");
}

int wire_ctl_path(const char *root, const char *first_member, char *out, size_t len)
{
	char h[17];
	wire_name_hash(first_member, h);
	return fmt_path(out, len, WIRE_SUN_PATH_MAX, "%s/run/%s%s", root, h, ".ctl");
}

int wire_member_dir(const char *root, const char *member, char *out, size_t len)
{
	char cluster[FB_NAME_MAX + 1];
	wire_cluster_name(member, cluster);
	return fmt_path(out, len, 0, "%s/clusters/%s/%s", root, cluster, member);
}

int wire_pidfile_path(const char *root, const char *member, char *out, size_t len)
{
	char dir[4096];
	int r = wire_member_dir(root, member, dir, sizeof(dir));
	if (r < 0)
		return r;
	return fmt_path(out, len, 0, "%s%s%s", dir, "/", "pid");
}

/* Under sudo (root with SUDO_USER set to someone else) the invoking user's
 * home, else $HOME, else the passwd entry of the effective user. */
static const char *invoking_home(bool *sudo)
{
	const char *sudo_user = getenv("SUDO_USER");
	*sudo = false;
	if (geteuid() == 0 && sudo_user && *sudo_user && strcmp(sudo_user, "root") != 0) {
		struct passwd *pw = getpwnam(sudo_user);
		if (pw) {
			*sudo = true;
			return pw->pw_dir;
		}
	}
	const char *home = getenv("HOME");
	if (home && *home)
		return home;
	struct passwd *pw = getpwuid(geteuid());
	return pw ? pw->pw_dir : NULL;
}

static int finish_root(char *out, size_t len, int n)
{
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	/* No trailing slash: paths are joined with '/'. */
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

int wire_store_root(char *out, size_t len)
{
	const char *env = getenv("FLEETBOX_HOME");
	if (env && *env)
		return finish_root(out, len, snprintf(out, len, "%s", env));
	bool sudo;
	const char *home = invoking_home(&sudo);
	if (!home)
		return -ENOENT;
	return finish_root(out, len, snprintf(out, len, "%s/.fleetbox", home));
}

int wire_cache_root(char *out, size_t len)
{
	const char *env = getenv("FLEETBOX_CACHE");
	if (env && *env)
		return finish_root(out, len, snprintf(out, len, "%s", env));
	bool sudo;
	const char *home = invoking_home(&sudo);
	/* root's XDG_CACHE_HOME says nothing about the invoking user's cache. */
	const char *xdg = sudo ? NULL : getenv("XDG_CACHE_HOME");
	if (xdg && *xdg == '/')
		return finish_root(out, len, snprintf(out, len, "%s/fleetbox", xdg));
	if (!home)
		return -ENOENT;
	return finish_root(out, len, snprintf(out, len, "%s/.cache/fleetbox", home));
}
