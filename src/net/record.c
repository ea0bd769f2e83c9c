/* record.c - crash records as JSON (jansson) written with file_write_atomic;
 * see record.h for the invariants. */
#include "net/record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

void record_fini(struct net_record *r)
{
	free(r->taps);
	memset(r, 0, sizeof(*r));
}

int record_dir(const char *root, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/networks", root);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int record_path(const char *root, const char *bridge, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/networks/%s.json", root, bridge);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static json_t *to_json(const struct net_record *r)
{
	json_t *taps = json_array(), *fwd = json_array();
	for (size_t i = 0; i < r->ntaps; i++) {
		const struct rec_tap *t = &r->taps[i];
		json_array_append_new(taps, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}",
			"name", t->name, "member", t->member, "ip", t->ip, "mac", t->mac,
			"vmm_pid", (json_int_t)t->vmm_pid,
			"vmm_start_time", (json_int_t)t->vmm_start_time));
	}
	for (size_t i = 0; i < r->nfwd; i++)
		json_array_append_new(fwd, json_pack("{s:s, s:i}", "ifname", r->fwd[i].ifname,
						     "original", r->fwd[i].original));
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:o, s:o}",
		"version", 1, "bridge", r->bridge, "table", r->table, "subnet", r->subnet,
		"gateway", r->gateway, "cluster", r->cluster, "state", r->state,
		"owner", "pid", (json_int_t)r->owner_pid,
		"start_time", (json_int_t)r->owner_start_time,
		"forwarding", fwd, "taps", taps);
}

/* networks/, created if missing, opened without following a symlink: a root
 * holder in a store the user owns writes records only there. */
static int dir_open(const char *root)
{
	char dir[PATH_MAX];
	int rc = record_dir(root, dir, sizeof(dir));
	if (rc == 0 && (rc = mkdir_p(dir, 0700)) == -ENOTDIR)
		rc = -ELOOP; /* a symlink to a file, or a file */
	if (rc < 0)
		return rc;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int record_save(const char *root, const struct net_record *r)
{
	char name[IF_NAMESIZE + 8];
	if (snprintf(name, sizeof(name), "%s.json", r->bridge) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	json_t *j = to_json(r);
	if (!j)
		return -ENOMEM;
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	if (!s)
		return -ENOMEM;
	int dfd = dir_open(root);
	int rc = dfd < 0 ? dfd : file_write_atomic_at(dfd, name, s, strlen(s), 0600);
	free(s);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

static int copy_str(json_t *o, const char *key, char *out, size_t len, bool required)
{
	json_t *v = json_object_get(o, key);
	if (!v && !required) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) >= len)
		return -EBADMSG;
	strcpy(out, json_string_value(v));
	return 0;
}

/* prefix + 8 lowercase hex digits: the only names we create (see name_bridge and
 * name_tap), so a damaged or forged record can never point teardown at eth0. */
static bool our_name(const char *s, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(s, prefix, pl) != 0 || strlen(s) != pl + 8)
		return false;
	for (const char *p = s + pl; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int parse(json_t *j, struct net_record *r)
{
	json_t *owner = json_object_get(j, "owner");
	json_t *taps = json_object_get(j, "taps");
	json_t *fwd = json_object_get(j, "forwarding");
	if (copy_str(j, "bridge", r->bridge, sizeof(r->bridge), true) < 0 ||
	    copy_str(j, "table", r->table, sizeof(r->table), true) < 0 ||
	    copy_str(j, "subnet", r->subnet, sizeof(r->subnet), true) < 0 ||
	    copy_str(j, "gateway", r->gateway, sizeof(r->gateway), false) < 0 ||
	    copy_str(j, "cluster", r->cluster, sizeof(r->cluster), false) < 0 ||
	    copy_str(j, "state", r->state, sizeof(r->state), false) < 0 ||
	    !json_is_integer(json_object_get(owner, "pid")) ||
	    !json_is_integer(json_object_get(owner, "start_time")) ||
	    (taps && !json_is_array(taps)) || (fwd && !json_is_array(fwd)))
		return -EBADMSG;
	if (!our_name(r->bridge, "fb") || strcmp(r->table, r->bridge) != 0)
		return -EBADMSG;
	r->owner_pid = (pid_t)json_integer_value(json_object_get(owner, "pid"));
	r->owner_start_time =
		(unsigned long long)json_integer_value(json_object_get(owner, "start_time"));
	size_t i;
	json_t *x;
	json_array_foreach(fwd, i, x) {
		if (r->nfwd == REC_FWD_MAX)
			return -EBADMSG;
		struct rec_fwd *f = &r->fwd[r->nfwd++];
		if (copy_str(x, "ifname", f->ifname, sizeof(f->ifname), true) < 0 ||
		    !json_is_integer(json_object_get(x, "original")))
			return -EBADMSG;
		f->original = json_integer_value(json_object_get(x, "original")) ? 1 : 0;
	}
	json_array_foreach(taps, i, x) {
		struct rec_tap *t = record_tap_append(r);
		if (!t)
			return -ENOMEM;
		if (copy_str(x, "name", t->name, sizeof(t->name), true) < 0 ||
		    copy_str(x, "member", t->member, sizeof(t->member), true) < 0 ||
		    copy_str(x, "ip", t->ip, sizeof(t->ip), true) < 0 ||
		    copy_str(x, "mac", t->mac, sizeof(t->mac), true) < 0 ||
		    !our_name(t->name, "fbt"))
			return -EBADMSG;
		t->vmm_pid = (pid_t)json_integer_value(json_object_get(x, "vmm_pid"));
		t->vmm_start_time =
			(unsigned long long)json_integer_value(json_object_get(x, "vmm_start_time"));
	}
	return 0;
}

int record_load(const char *path, struct net_record *r, struct err *e)
{
	memset(r, 0, sizeof(*r));
	char *s = NULL;
	size_t len;
	int rc = file_read_all(path, 1 << 20, &s, &len);
	if (rc < 0)
		return err_set(e, rc, "cannot read %s: %s", path, strerror(-rc));
	json_error_t je;
	json_t *j = json_loadb(s, len, 0, &je);
	free(s);
	if (!j)
		return err_set(e, -EBADMSG, "%s is not valid JSON (line %d: %s)", path, je.line,
			       je.text);
	rc = parse(j, r);
	json_decref(j);
	if (rc < 0) {
		record_fini(r);
		return err_set(e, rc, "%s is not a fleetbox network record", path);
	}
	return 0;
}

int record_remove(const char *root, const char *bridge)
{
	char path[PATH_MAX];
	int rc = record_path(root, bridge, path, sizeof(path));
	if (rc < 0)
		return rc;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return fsync_parent(path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void record_list_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int record_list(const char *root, char ***paths, size_t *n)
{
	char dir[PATH_MAX];
	*paths = NULL;
	*n = 0;
	int rc = record_dir(root, dir, sizeof(dir));
	if (rc < 0)
		return rc;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	rc = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l <= 5 || de->d_name[0] == '.' || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			char **p = realloc(v, cap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			v = p;
		}
		if (asprintf(&v[cnt], "%s/%s", dir, de->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		cnt++;
	}
	closedir(d);
	if (rc < 0) {
		record_list_free(v, cnt);
		return rc;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_str);
	*paths = v;
	*n = cnt;
	return 0;
}

struct rec_tap *record_tap_find(struct net_record *r, const char *member)
{
	for (size_t i = 0; i < r->ntaps; i++)
		if (strcmp(r->taps[i].member, member) == 0)
			return &r->taps[i];
	return NULL;
}

struct rec_tap *record_tap_append(struct net_record *r)
{
	if (r->ntaps == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct rec_tap *p = realloc(r->taps, cap * sizeof(*p));
		if (!p)
			return NULL;
		r->taps = p;
		r->cap = cap;
	}
	struct rec_tap *t = &r->taps[r->ntaps++];
	memset(t, 0, sizeof(*t));
	return t;
}

void record_tap_drop(struct net_record *r, struct rec_tap *t)
{
	size_t i = (size_t)(t - r->taps);
	if (i >= r->ntaps)
		return;
	memmove(&r->taps[i], &r->taps[i + 1], (r->ntaps - i - 1) * sizeof(*t));
	r->ntaps--;
}

int record_lock(const char *root)
{
	int rc, dfd = dir_open(root);
	if (dfd < 0)
		return dfd;
	int fd = openat(dfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	rc = -errno;
	close(dfd);
	if (fd < 0)
		return rc;
	if ((rc = owner_claim_fd(fd)) < 0) {
		close(fd);
		return rc;
	}
	/* Holders only keep it for milliseconds; blocking is the simplest correct wait. */
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			close(fd);
			return rc;
		}
	}
	return fd;
}

void record_unlock(int fd)
{
	if (fd >= 0)
		close(fd);  /* closing drops the flock */
}
