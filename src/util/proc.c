/* proc.c - see proc.h. */
#include "util/proc.h"
#include "util/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proc_start_time(pid_t pid, unsigned long long *start)
{
	if (pid <= 0)
		return -ESRCH;
	char path[64], *s = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int rc = file_read_all(path, 4096, &s, &len);
	if (rc < 0)
		return rc == -ENOENT ? -ESRCH : rc;
	/* comm may contain spaces and ')': fields resume after the last ')'. */
	char *p = strrchr(s, ')');
	char state = 0;
	unsigned long long st = 0;
	int field = 2;
	rc = -EBADMSG;
	char *save = NULL;
	for (char *tok = p ? strtok_r(p + 1, " ", &save) : NULL; tok; tok = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 3)
			state = tok[0];
		if (field == 22) {
			st = strtoull(tok, NULL, 10);
			rc = 0;
			break;
		}
	}
	free(s);
	if (rc < 0)
		return rc;
	if (state == 'Z' || state == 'X')
		return -ESRCH;
	*start = st;
	return 0;
}

bool proc_same(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	return proc_start_time(pid, &now) == 0 && now == start;
}

bool proc_env_has(pid_t pid, const char *entry)
{
	char path[64], *s = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if (file_read_all(path, 1 << 20, &s, &len) < 0)
		return false;
	bool found = false;
	size_t el = strlen(entry);
	for (size_t off = 0; off < len && !found;) {
		size_t l = strnlen(s + off, len - off);
		found = l == el && memcmp(s + off, entry, el) == 0;
		off += l + 1;
	}
	free(s);
	return found;
}
