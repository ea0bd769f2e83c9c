/* err.h - a small error carrier: a negative errno plus a human message.
 *
 * Internally functions return int (< 0 = -errno). Where a message must travel to
 * an edge (RPC reply, public API, CLI), a struct err travels with it. err_set()
 * returns the code it stores so call sites can `return err_set(e, -EINVAL, ...)`.
 * A NULL struct err is allowed everywhere and simply drops the message. */
#pragma once
#include <stddef.h>

#define ERR_MSG_MAX 512

struct err {
	int code;               /* 0 or -errno */
	char msg[ERR_MSG_MAX];  /* "" or a human sentence without trailing newline */
};

__attribute__((format(printf, 3, 4)))
int err_set(struct err *e, int code, const char *fmt, ...);
/* Prefix an existing message: "create web-1: " + old message. */
__attribute__((format(printf, 2, 3)))
int err_prefix(struct err *e, const char *fmt, ...);
void err_clear(struct err *e);
