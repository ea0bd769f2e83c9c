/* peer.c - see peer.h. */
#include "loop/peer.h"
#include "loop/holder.h"
#include "util/owner.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_owner(const struct holder *h, uid_t uid)
{
	struct stat st;
	uid_t su;
	gid_t sg;
	return uid == 0 || uid == geteuid() || (owner_invoker(&su, &sg) && uid == su) ||
	       (h->root_fd >= 0 && fstat(h->root_fd, &st) == 0 && uid == st.st_uid);
}

static struct peer_entry *find(struct peer_table *t, const struct peer_ref *ref, bool add)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].uid == ref->uid && t->v[i].pid == ref->pid)
			return &t->v[i];
	if (!add)
		return NULL;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct peer_entry *v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n] = (struct peer_entry){ .uid = ref->uid, .pid = ref->pid };
	return &t->v[t->n++];
}

int peer_admit(const struct holder *h, struct peer_table *t, const struct peer_rule *r, int fd,
	       struct peer_ref *ref, const char **why)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	memset(ref, 0, sizeof(*ref));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		*why = "cannot identify the peer";
		return -errno;
	}
	ref->owner = is_owner(h, cr.uid);
	ref->uid = cr.uid;
	ref->pid = ref->owner ? cr.pid : 0;
	struct peer_entry *e = find(t, ref, false);
	int mine = e ? e->n : 0;
	if (t->total >= r->total) {
		*why = "too many connections";
		return -EUSERS;
	}
	if (!ref->owner && (t->others >= r->total - r->reserve || mine >= r->per_other_uid)) {
		*why = "too many connections from this user";
		return -EUSERS;
	}
	if (ref->owner && mine >= r->per_owner_pid) {
		*why = "too many connections from this process";
		return -EUSERS;
	}
	if (!(e = find(t, ref, true))) {
		*why = "out of memory";
		return -ENOMEM;
	}
	e->n++;
	t->total++;
	t->others += !ref->owner;
	ref->counted = true;
	return 0;
}

void peer_release(struct peer_table *t, struct peer_ref *ref)
{
	if (!ref->counted)
		return;
	ref->counted = false;
	struct peer_entry *e = find(t, ref, false);
	t->total--;
	t->others -= !ref->owner;
	if (e && --e->n == 0)
		*e = t->v[--t->n]; /* order does not matter */
}

void peer_table_fini(struct peer_table *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

void peer_rules_init(struct peer_rule *conns, struct peer_rule *ctls)
{
	struct rlimit rl;
	long fds = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		fds = rl.rlim_cur == RLIM_INFINITY ? 65536 : (long)rl.rlim_cur;
	}
	/* Whatever the limit, keep fds for VMs, files and the network. */
	long room = fds > 512 ? fds - 256 : fds / 2;
	int total = room > 4096 ? 4096 : (int)room;
	*conns = (struct peer_rule){ .total = total, .reserve = total / 8,
				     .per_other_uid = total / 16, .per_owner_pid = total / 4 };
	*ctls = (struct peer_rule){ .total = 256, .reserve = 64, .per_other_uid = 16,
				    .per_owner_pid = 64 };
}
