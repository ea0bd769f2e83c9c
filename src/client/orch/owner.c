/* orch/owner.c - who owns a live holder: nobody (detached, started by
 * `fleetbox up`: shared by design) or the process it is bound to
 * (FLEETBOX_PARENT_PID in its environment, protocol.md "Bound"). Read from
 * /proc/<holder>/environ, which a process of the same user (or root) may
 * read; otherwise the owner is unknown. */
#include "client/orch/orch.h"
#include "util/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARENT_VAR "FLEETBOX_PARENT_PID="

static void read_comm(pid_t pid, char *out, size_t len)
{
	char p[64], *s;
	out[0] = '\0';
	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	if (file_read_trimmed(p, 256, &s, NULL) < 0)
		return;
	snprintf(out, len, "%s", s);
	free(s);
}

void orch_holder_owner(pid_t holder, struct holder_owner *o)
{
	memset(o, 0, sizeof(*o));
	char p[64], *env;
	size_t len;
	snprintf(p, sizeof(p), "/proc/%d/environ", (int)holder);
	if (file_read_all(p, 1 << 20, &env, &len) < 0)
		return;
	o->known = true;
	for (size_t i = 0; i < len; i += strlen(env + i) + 1) {
		if (strncmp(env + i, PARENT_VAR, strlen(PARENT_VAR)) != 0)
			continue;
		long v = strtol(env + i + strlen(PARENT_VAR), NULL, 10);
		if (v > 1) {
			o->bound = true;
			o->parent = (pid_t)v;
		}
	}
	free(env);
	if (o->bound)
		read_comm(o->parent, o->comm, sizeof(o->comm));
}

void orch_owner_describe(pid_t holder, const struct holder_owner *o, char *out, size_t len)
{
	if (!o->known)
		snprintf(out, len, "holder %d (owner unknown: cannot read its environment)", (int)holder);
	else if (!o->bound)
		snprintf(out, len, "detached holder %d (a `fleetbox up` cluster)", (int)holder);
	else
		snprintf(out, len, "holder %d, bound to process %d%s%s%s", (int)holder, (int)o->parent,
			 o->comm[0] ? " (" : "", o->comm, o->comm[0] ? ")" : "");
}
