/* peer.h - connection limits per connecting peer (SO_PEERCRED), so one local
 * user (or one runaway process) cannot lock everyone else out of a holder.
 *
 * Owners (root, the holder's own uid, the store owner, the sudo invoker) are
 * counted per process; everyone else per uid. Each table has a total, of
 * which `reserve` only owners may use, so the owner's `status`/`stop` (and
 * the client's .ctl bind) always get through a flood from other users. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct holder;

struct peer_rule {
	int total;          /* connections at once, all peers */
	int reserve;        /* of total, kept for owners */
	int per_other_uid;  /* per non-owner uid */
	int per_owner_pid;  /* per owner process */
};

struct peer_entry {
	uid_t uid;
	pid_t pid;          /* owners only; 0 for others */
	int n;
};

struct peer_table {
	struct peer_entry *v;
	size_t n, cap;
	int total, others;
};

struct peer_ref {
	uid_t uid;
	pid_t pid;
	bool owner, counted;
};

/* Admits the peer on fd (a connected unix socket) or returns < 0 with *why
 * saying which limit refused it. */
int peer_admit(const struct holder *h, struct peer_table *t, const struct peer_rule *r, int fd,
	       struct peer_ref *ref, const char **why);
void peer_release(struct peer_table *t, struct peer_ref *ref);
void peer_table_fini(struct peer_table *t);
/* The holder's rules, scaled to its file descriptor limit (raised to the
 * hard limit first). */
void peer_rules_init(struct peer_rule *conns, struct peer_rule *ctls);
