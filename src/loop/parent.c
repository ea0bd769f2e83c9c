/* parent.c - bound mode: die with the client.
 *
 * Two independent signals end a bound holder: the parent process is gone
 * (a pidfd becomes readable the instant it exits; a 1 s getppid()/kill() poll
 * is the fallback where pidfd_open is missing), or the acknowledged .ctl
 * connection reaches EOF. Before `ack`, a closed .ctl connection is a probe or
 * a dial retry and is ignored. */
#include "loop/holder.h"
#include "util/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static void parent_gone(struct holder *h)
{
	char why[64];
	snprintf(why, sizeof(why), "parent process %d is gone", (int)h->parent_pid);
	holder_shutdown(h, why, true); /* nobody waits for a clean power-off */
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
	struct holder *h = p->data;
	(void)status;
	(void)events;
	uv_poll_stop(p);
	parent_gone(h);
}

static bool parent_alive(struct holder *h)
{
	/* When the client is our real parent, being reparented means it died
	 * (and a recycled PID cannot fool getppid()). */
	if (h->parent_is_ppid)
		return getppid() == h->parent_pid;
	return kill(h->parent_pid, 0) == 0 || errno == EPERM;
}

static void on_parent_timer(uv_timer_t *t)
{
	struct holder *h = t->data;
	if (!parent_alive(h)) {
		uv_timer_stop(t);
		parent_gone(h);
	}
}

int parent_watch_start(struct holder *h)
{
	h->parent_is_ppid = getppid() == h->parent_pid;
	h->pidfd = (int)syscall(SYS_pidfd_open, h->parent_pid, 0);
	if (h->pidfd >= 0) {
		int r = uv_poll_init(h->loop, &h->parent_poll, h->pidfd);
		if (r == 0) {
			h->parent_poll.data = h;
			h->parent_poll_open = true;
			uv_poll_start(&h->parent_poll, UV_READABLE, on_pidfd);
			log_debug("watching parent %d with a pidfd", (int)h->parent_pid);
		} else {
			close(h->pidfd);
			h->pidfd = -1;
		}
	}
	if (h->pidfd < 0) {
		log_info("pidfd_open unavailable (%s); polling parent %d every second",
			 strerror(errno), (int)h->parent_pid);
		uv_timer_init(h->loop, &h->parent_timer);
		h->parent_timer.data = h;
		h->parent_timer_open = true;
		uv_timer_start(&h->parent_timer, on_parent_timer, 1000, 1000);
	}
	/* The parent may have died before we started watching. */
	if (!parent_alive(h))
		parent_gone(h);
	return 0;
}

/* --- .ctl --- */

static void ctl_free_cb(uv_handle_t *hd)
{
	struct ctl_conn *cc = hd->data;
	if (--cc->open_handles > 0)
		return;
	struct holder *h = cc->h;
	struct ctl_conn **pp = &h->ctls;
	while (*pp && *pp != cc)
		pp = &(*pp)->next;
	if (*pp)
		*pp = cc->next;
	peer_release(&h->ctl_peers, &cc->peer);
	free(cc);
	holder_maybe_finish(h);
}

static void ctl_drop(struct ctl_conn *cc)
{
	if (cc->dropping)
		return;
	cc->dropping = true;
	uv_close((uv_handle_t *)&cc->pipe, ctl_free_cb);
	uv_close((uv_handle_t *)&cc->timer, ctl_free_cb);
}

/* Before ack a .ctl connection is nobody's session yet: it gets the same
 * idle timeout as a command connection. */
static void ctl_on_timeout(uv_timer_t *t)
{
	struct ctl_conn *cc = t->data;
	if (cc->acked)
		return;
	log_debug(".ctl connection without ack within %u ms: dropped", cc->h->conn_timeout_ms);
	ctl_drop(cc);
}

static void ctl_alloc(uv_handle_t *hd, size_t s, uv_buf_t *b)
{
	struct ctl_conn *cc = hd->data;
	(void)s;
	*b = uv_buf_init(cc->buf + cc->len, (unsigned)(sizeof(cc->buf) - cc->len));
}

static void ctl_write_cb(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void ctl_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct ctl_conn *cc = st->data;
	struct holder *h = cc->h;
	(void)b;
	if (n < 0) {
		bool acked = cc->acked;
		uv_read_stop(st);
		ctl_drop(cc);
		/* An orderly close (the client lives on) powers persistent members
		 * off gracefully; a dying client's parent watch fires right after
		 * and turns that into a halt (holder_shutdown). */
		if (acked)
			holder_shutdown(h, "control connection closed", !parent_alive(h));
		else
			log_debug(".ctl connection closed before ack: ignored");
		return;
	}
	cc->len += (size_t)n;
	if (!cc->bound && cc->len >= 4) {
		if (memcmp(cc->buf, "bind", 4) != 0) {
			log_warn(".ctl: unexpected handshake bytes; dropping connection");
			uv_read_stop(st);
			ctl_drop(cc);
			return;
		}
		cc->bound = true;
		memmove(cc->buf, cc->buf + 4, cc->len - 4);
		cc->len -= 4;
		uv_write_t *w = malloc(sizeof(*w));
		uv_buf_t v = uv_buf_init((char *)FB_PROTOCOL_VERSION, sizeof(FB_PROTOCOL_VERSION) - 1);
		if (!w || uv_write(w, st, &v, 1, ctl_write_cb) < 0) {
			free(w);
			ctl_drop(cc);
			return;
		}
	}
	if (cc->bound && !cc->acked && cc->len >= 3) {
		if (memcmp(cc->buf, "ack", 3) != 0) {
			log_warn(".ctl: expected ack; dropping connection");
			uv_read_stop(st);
			ctl_drop(cc);
			return;
		}
		cc->acked = true;
		uv_timer_stop(&cc->timer);
		log_info("bound: control connection acknowledged; EOF on it tears down");
	}
	if (cc->acked)
		cc->len = 0; /* nothing more is expected; ignore extra bytes */
	if (cc->len == sizeof(cc->buf)) {
		uv_read_stop(st);
		ctl_drop(cc);
	}
}

static void ctl_on_conn(uv_stream_t *srv, int status)
{
	struct holder *h = srv->data;
	if (status < 0)
		return;
	struct ctl_conn *cc = calloc(1, sizeof(*cc));
	if (!cc)
		return;
	cc->h = h;
	uv_pipe_init(h->loop, &cc->pipe, 0);
	uv_timer_init(h->loop, &cc->timer);
	cc->pipe.data = cc->timer.data = cc;
	cc->open_handles = 2;
	cc->next = h->ctls;
	h->ctls = cc;
	uv_os_fd_t fd;
	const char *why = NULL;
	if (uv_accept(srv, (uv_stream_t *)&cc->pipe) < 0 || uv_fileno((uv_handle_t *)&cc->pipe, &fd) < 0 ||
	    peer_admit(h, &h->ctl_peers, &h->ctl_rule, fd, &cc->peer, &why) < 0 ||
	    uv_read_start((uv_stream_t *)&cc->pipe, ctl_alloc, ctl_on_read) < 0) {
		if (why)
			log_debug("refusing a .ctl connection: %s", why);
		ctl_drop(cc);
		return;
	}
	uv_timer_start(&cc->timer, ctl_on_timeout, h->conn_timeout_ms, 0);
}

int ctl_listen(struct holder *h, const char *first_member)
{
	int r = wire_ctl_path(h->root, first_member, h->ctl_path, sizeof(h->ctl_path));
	if (r < 0)
		return r;
	char hash[17];
	wire_name_hash(first_member, hash);
	snprintf(h->ctl_name, sizeof(h->ctl_name), "%s.ctl", hash);
	h->ctl_server.data = h;
	return run_listen(h, &h->ctl_server, &h->ctl_open, h->ctl_name, 16, ctl_on_conn);
}

static void noop_close(uv_handle_t *hd)
{
	struct holder *h = hd->data;
	holder_maybe_finish(h);
}

static void poll_close(uv_handle_t *hd)
{
	struct holder *h = hd->data;
	close(h->pidfd); /* libuv needs the fd until the poll handle is closed */
	h->pidfd = -1;
	holder_maybe_finish(h);
}

void parent_close(struct holder *h)
{
	if (h->parent_poll_open) {
		h->parent_poll_open = false;
		uv_close((uv_handle_t *)&h->parent_poll, poll_close);
	}
	if (h->parent_timer_open) {
		h->parent_timer_open = false;
		uv_close((uv_handle_t *)&h->parent_timer, noop_close);
	}
	if (h->ctl_open) {
		h->ctl_open = false;
		unlinkat(h->run_fd, h->ctl_name, 0);
		uv_close((uv_handle_t *)&h->ctl_server, noop_close);
	}
	for (struct ctl_conn *cc = h->ctls; cc; cc = cc->next)
		ctl_drop(cc);
}
