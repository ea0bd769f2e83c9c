/* msg.h - protocol v2 requests and replies (jansson). Encoders emit keys in the
 * order of protocol.md, compact, with empty keys omitted, plus the trailing
 * '\n'. Decoders ignore unknown keys (forward compatibility) and reject wrong
 * types. All strings are heap-owned by the struct; *_fini frees them. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/wire.h"

/* Largest stop_timeout_ms accepted (1 h), spec key and stop key alike. */
#define RPC_STOP_TIMEOUT_MAX_MS 3600000

struct err;

struct rpc_spec {
	char *name;
	char *disk_path;
	char *seed_path;
	char **fixture_paths;
	size_t n_fixtures;
	char *efi_path;
	int cpus;
	uint64_t memory_bytes;
	char *serial_log_path;
	/* ours (optional keys): direct-boot files and command line */
	char *kernel_path;
	char *initrd_path;
	char *cmdline;
	/* ours (optional): the holder deletes the member's directory (disk and
	 * all) once its VM has exited, whenever it stops serving it (stop,
	 * teardown, parent gone). Encoded as "ephemeral":true only when set. */
	bool ephemeral;
	/* ours (optional): graceful power-off before SIGTERM, in ms (0: the
	 * holder's default for the image, util/timeouts.h). */
	uint64_t stop_timeout_ms;
};

struct rpc_request {
	char *cmd;
	char *name;
	char *ip_hint;
	struct rpc_spec *spec; /* boot-member only */
	/* ours (optional, stop only): the grace period for this stop, in ms;
	 * 0 = the member's own. */
	uint64_t stop_timeout_ms;
};

struct rpc_status {
	char *name;
	long pid;
	bool running;
	char *ip;
	enum wire_state state;
	char *error;
};

struct rpc_reply {
	char *error;
	struct rpc_status *status;
	char *subnet;
	bool has_reservation;
	char res_ip[FB_IP_STRLEN];   /* "" when the reservation has no ip (fake VMM) */
	char res_mac[FB_MAC_STRLEN];
};

void rpc_spec_free(struct rpc_spec *s);
void rpc_request_fini(struct rpc_request *r);
void rpc_reply_fini(struct rpc_reply *r);
void rpc_status_free(struct rpc_status *s);

/* Encoders return 0 and a malloc'd line ending in '\n', or -ENOMEM. */
int rpc_request_encode(const struct rpc_request *r, char **line, size_t *len);
int rpc_reply_encode(const struct rpc_reply *r, char **line, size_t *len);
/* Decoders: 0, or -EINVAL with "invalid JSON: ..." / "... must be a string" in e;
 * a request whose "spec" is malformed gives -EBADMSG (the holder answers
 * "missing or invalid spec"). */
int rpc_request_decode(const char *line, size_t len, struct rpc_request *out, struct err *e);
int rpc_reply_decode(const char *line, size_t len, struct rpc_reply *out, struct err *e);

/* Convenience: a reply line {"error":"<msg>"}\n. */
int rpc_error_line(const char *msg, char **line, size_t *len);
