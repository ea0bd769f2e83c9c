/* ssh_int.h - internals shared by the SSH layer's files: the connection and
 * run state machines (ssh.c), the command wrapper (wrap.c) and the async driver
 * (async.c). Not part of any public interface. */
#pragma once
#include "client/ssh/ssh.h"

#include <stdbool.h>
#include <stdint.h>

#include <libssh2.h>

#define CHAN_WINDOW (4 * 1024 * 1024)
#define CHAN_PACKET 32768
#define IO_CHUNK 32768
#define CHAN_STDERR_KEEP (16 * 1024)

enum conn_phase { C_DIAL, C_DIALING, C_HANDSHAKE, C_AUTH, C_READY };
enum run_phase { R_OPEN, R_PTY, R_START, R_IO, R_CLOSE, R_WAIT, R_DONE };

struct ssh_conn {
	struct ssh_target t;
	int fd;
	LIBSSH2_SESSION *s;
	enum conn_phase phase;
	bool dead;  /* transport callbacks fail: nothing more is sent or read */
	short want; /* POLLIN/POLLOUT the last -EAGAIN waits for */
	int64_t last_rx_ms; /* when bytes last arrived (keepalive: is the peer there?) */
	bool rx_eof;        /* the peer closed the connection (recv returned 0) */
	int io_errno;       /* the last send/recv errno other than EAGAIN, 0 = none */
	int dropped;        /* handshakes the server dropped (retried) so far */
};

/* One command (or shell) on a channel, with its I/O routing. */
struct run {
	struct ssh_conn *c;
	LIBSSH2_CHANNEL *ch;
	enum run_phase phase;
	const char *cmd; /* NULL = shell */
	bool pty;
	char term[64];
	int cols, rows;
	void (*on_out)(void *data, const char *buf, size_t len);
	void (*on_err)(void *data, const char *buf, size_t len);
	void *data;
	/* stdin: a driver fills inbuf (or refill does, whenever it is empty and
	 * in_eof is not set); run_step sends it, then EOF once in_eof. */
	void (*refill)(struct run *r);
	void *refill_data;
	char inbuf[IO_CHUNK];
	size_t in_len, in_off;
	bool in_eof, eof_sent;
	bool winch; /* a window-size change waits to be sent */
	/* A wrapped command (ssh_exec_script) prints its pid as the first line
	 * of stdout; the pump strips it into rpid. */
	bool want_pid;
	long rpid;          /* 0 until known (or if the line was not a pid) */
	char pidbuf[24];
	size_t pidlen;
	struct ssh_status st;
	char rbuf[IO_CHUNK];
};

/* A growable byte buffer, always NUL-terminated once non-empty; the first
 * allocation failure sticks in error and later adds do nothing. */
struct obuf {
	char *p;
	size_t len, cap;
	int error;
};
void obuf_add(struct obuf *b, const char *data, size_t n);

struct collect {
	struct obuf out, err, all;
};

void collect_out(void *data, const char *buf, size_t len);
void collect_err(void *data, const char *buf, size_t len);
int collect_take(struct collect *c, struct ssh_result *res);
void collect_free(struct collect *c);

int64_t now_ms(void);
const char *ssh2_msg(LIBSSH2_SESSION *s);
short ssh2_want(LIBSSH2_SESSION *s);

int conn_init(struct ssh_conn *c, const struct ssh_target *t, struct err *e);
/* Advances the connection; 0 when authenticated, -EAGAIN to wait for c->want. */
int conn_step(struct ssh_conn *c, struct err *e);
void conn_release(struct ssh_conn *c, bool close_fd);
/* True when rc (from conn_step) means the server dropped the connection
 * before the handshake finished (sshd MaxStartups, dropbear's limit on
 * unauthenticated connections): worth dialling again. */
bool conn_dropped(const struct ssh_conn *c, int rc);
/* Frees the session of a dropped attempt and gets ready to dial again; the
 * caller closes the fd (close_fd false: an async driver closes its poll
 * handle first). */
void conn_reset(struct ssh_conn *c, bool close_fd);
/* The pause before redial number n (1, 2, ...): exponential with jitter. */
int conn_backoff_ms(int n);

void run_init(struct run *r, struct ssh_conn *c, const char *cmd);
/* Advances conn + channel; 0 when done (r->st valid), -EAGAIN to wait for c->want. */
int run_step(struct run *r, struct err *e);
void run_release(struct run *r);
