/* server.c - the per-member command sockets: one NDJSON request and one reply
 * per connection (protocol.md). Every connection has a read timeout, a line
 * limit and per-peer caps with headroom for the owner (peer.h), so slow,
 * silent or hostile clients never stall the holder for anyone else. */
#include "loop/holder.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "vmm/fake.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct conn {
	struct holder *h;
	struct member *m;      /* the member whose socket accepted us; NULL once it is gone */
	struct conn *next, **pprev; /* h->conns, so a removed member can detach us */
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wr;
	struct frame frame;
	struct peer_ref peer;
	char *out;
	int open_handles;
	bool got_request, replied, closing;
};

static void conn_free_cb(uv_handle_t *hd)
{
	struct conn *c = hd->data;
	if (--c->open_handles > 0)
		return;
	if (c->next)
		c->next->pprev = c->pprev;
	*c->pprev = c->next;
	c->h->n_conns--;
	peer_release(&c->h->conn_peers, &c->peer);
	frame_fini(&c->frame);
	free(c->out);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->m && c->m->boot_conn == c)
		c->m->boot_conn = NULL;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->pipe, conn_free_cb);
	uv_close((uv_handle_t *)&c->timer, conn_free_cb);
}

void server_detach_member(struct member *m)
{
	for (struct conn *c = m->h->conns; c; c = c->next)
		if (c->m == m)
			c->m = NULL;
}

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	if (status < 0)
		log_debug("reply write failed: %s", uv_strerror(status));
	conn_close(c);
}

void conn_reply(struct conn *c, const struct rpc_reply *rep)
{
	if (c->replied || c->closing)
		return;
	c->replied = true;
	size_t len;
	if (rpc_reply_encode(rep, &c->out, &len) < 0) {
		/* Never leave a request unanswered. */
		static const char fallback[] = "{\"error\":\"internal error: reply not encodable\"}\n";
		c->out = strdup(fallback);
		len = sizeof(fallback) - 1;
		if (!c->out) {
			conn_close(c);
			return;
		}
	}
	uv_buf_t b = uv_buf_init(c->out, (unsigned)len);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0)
		conn_close(c);
}

/* Truncation may have cut a multi-byte UTF-8 character (request text is
 * echoed in errors); drop the partial sequence so the reply stays valid JSON. */
static void utf8_trim(char *s)
{
	size_t n = strlen(s), i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

void conn_reply_error(struct conn *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_trim(msg);
	struct rpc_reply rep = { .error = msg };
	log_debug("reply error: %s", msg);
	conn_reply(c, &rep);
}

/* --- commands --- */

static void cmd_status(struct conn *c)
{
	struct member *m = c->m;
	if (!m) {
		conn_reply_error(c, "member is gone");
		return;
	}
	struct rpc_status st = {
		.name = m->name,
		.pid = (long)getpid(),
		.running = wire_state_is_running(m->state),
		.ip = m->ip,
		.state = m->state,
		.error = m->error,
	};
	struct rpc_reply rep = { .status = &st };
	conn_reply(c, &rep);
}

static void cmd_stop(struct conn *c, const struct rpc_request *req)
{
	struct member *m = c->m;
	struct rpc_reply rep = { 0 };
	/* Reply first: the socket disappears with the member. */
	conn_reply(c, &rep);
	if (m)
		member_stop(m, req->stop_timeout_ms); /* 0: the member's own grace */
}

static void cmd_createnetwork(struct conn *c)
{
	struct holder *h = c->h;
	if (!h->net_created) {
		if (h->use_net) {
			struct err e = { 0 };
			char cluster[FB_NAME_MAX + 1];
			wire_cluster_name(h->members ? h->members->name : "fleetbox", cluster);
			struct net_config cfg = { .store_root = h->root, .cluster = cluster };
			if (net_create(&cfg, &h->net, &e) < 0) {
				conn_reply_error(c, "create network: %s", e.msg);
				return;
			}
			snprintf(h->subnet, sizeof(h->subnet), "%s", net_subnet(h->net));
			log_info("network %s on bridge %s", h->subnet, net_bridge(h->net));
		}
		h->net_created = true;
	}
	struct rpc_reply rep = { .subnet = h->subnet };
	conn_reply(c, &rep);
}

static void cmd_reserve(struct conn *c, const struct rpc_request *req)
{
	struct holder *h = c->h;
	if (!req->name || !*req->name) {
		conn_reply_error(c, "missing member name");
		return;
	}
	if (!wire_name_valid(req->name)) {
		conn_reply_error(c, "reserve %s: invalid member name", req->name);
		return;
	}
	if (!h->net_created) {
		conn_reply_error(c, "network not created");
		return;
	}
	struct reservation *r = reservation_find(h, req->name);
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			conn_reply_error(c, "reserve %s: out of memory", req->name);
			return;
		}
		snprintf(r->name, sizeof(r->name), "%s", req->name);
		if (h->use_net) {
			struct err e = { 0 };
			if (net_reserve(h->net, req->name, req->ip_hint, r->ip, r->mac, &e) < 0) {
				free(r);
				conn_reply_error(c, "reserve %s: %s", req->name, e.msg);
				return;
			}
		} else {
			/* Network-free fake mode: documentation range, never routed. */
			if (h->fake_next_ip > 254) {
				free(r);
				conn_reply_error(c, "reserve %s: no free address", req->name);
				return;
			}
			wire_mac(req->name, r->mac);
			snprintf(r->ip, sizeof(r->ip), "203.0.113.%d", h->fake_next_ip++);
		}
		r->next = h->reservations;
		h->reservations = r;
		if (h->drv == &vmm_fake_driver)
			vmm_fake_record_reserve(r->name, req->ip_hint, r->mac, r->ip);
	}
	struct rpc_reply rep = { .has_reservation = true };
	if (h->use_net)
		snprintf(rep.res_ip, sizeof(rep.res_ip), "%s", r->ip);
	snprintf(rep.res_mac, sizeof(rep.res_mac), "%s", r->mac);
	conn_reply(c, &rep);
}

static void cmd_boot_member(struct conn *c, struct rpc_request *req)
{
	struct holder *h = c->h;
	struct rpc_spec *s = req->spec;
	if (!s || !s->name || !wire_name_valid(s->name) || !s->disk_path || !*s->disk_path) {
		conn_reply_error(c, "missing or invalid spec");
		return;
	}
	if (!h->net_created) {
		conn_reply_error(c, "network not created");
		return;
	}
	if (!reservation_find(h, s->name)) {
		conn_reply_error(c, "member %s was not reserved", s->name);
		return;
	}
	struct member *m = member_find(h, s->name);
	if (m && m->vm && !m->boot_conn && m->state == FB_STATE_STARTING) {
		/* Its boot is under way but whoever asked for it is gone (an
		 * interrupted up): this request waits for that boot instead. */
		m->boot_conn = c;
		uv_timer_stop(&c->timer);
		return;
	}
	if (m && (m->vm || m->boot_conn)) {
		conn_reply_error(c, "member %s is already running", s->name);
		return;
	}
	char errbuf[512];
	if (!m && member_register(h, s->name, &m, errbuf, sizeof(errbuf)) < 0) {
		conn_reply_error(c, "create %s: %s", s->name, errbuf);
		return;
	}
	m->boot_conn = c;
	if (member_boot(m, s, errbuf, sizeof(errbuf)) < 0) {
		m->boot_conn = NULL;
		conn_reply_error(c, "%s", errbuf);
		return;
	}
	/* The reply is sent from the VM's ready callback (member.c). */
	uv_timer_stop(&c->timer);
}

static void dispatch(struct conn *c, const char *line, size_t len)
{
	struct rpc_request req;
	struct err e = { 0 };
	c->got_request = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	int dr = rpc_request_decode(line, len, &req, &e);
	if (dr == -EBADMSG) {
		conn_reply_error(c, "missing or invalid spec");
		return;
	}
	if (dr < 0) {
		conn_reply_error(c, "%s", e.msg);
		return;
	}
	const char *cmd = req.cmd ? req.cmd : "";
	log_debug("request %s on %s", cmd, c->m ? c->m->name : "?");
	/* While shutting down, stop is still fine: the member goes anyway. */
	if (c->h->shutting_down && strcmp(cmd, "status") != 0 && strcmp(cmd, "stop") != 0)
		conn_reply_error(c, "holder is shutting down");
	else if (!strcmp(cmd, "status"))
		cmd_status(c);
	else if (!strcmp(cmd, "stop"))
		cmd_stop(c, &req);
	else if (!strcmp(cmd, "createnetwork"))
		cmd_createnetwork(c);
	else if (!strcmp(cmd, "reserve"))
		cmd_reserve(c, &req);
	else if (!strcmp(cmd, "boot-member"))
		cmd_boot_member(c, &req);
	else if (!*cmd)
		conn_reply_error(c, "missing command");
	else
		conn_reply_error(c, "unknown command \"%s\"", cmd);
	rpc_request_fini(&req);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536]; /* single-threaded loop: one read at a time */
	(void)hd;
	(void)suggested;
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = st->data;
	if (nread < 0) {
		uv_read_stop(st);
		if (nread == UV_EOF && !c->got_request && frame_pending(&c->frame) > 0) {
			/* No trailing newline: the whole stream is the request. */
			char nl = '\n';
			char *line;
			size_t len;
			if (frame_feed(&c->frame, &nl, 1) == 0 && frame_next(&c->frame, &line, &len) == 1) {
				dispatch(c, line, len);
				return;
			}
		}
		/* Not yet replied: nobody is left to read the answer (a boot goes on
		 * without its requester). Replied: on_written closes. */
		if (!c->replied)
			conn_close(c);
		return;
	}
	if (nread == 0 || c->got_request)
		return;
	int r = frame_feed(&c->frame, buf->base, (size_t)nread);
	if (r == -E2BIG) {
		conn_reply_error(c, "request line exceeds %d bytes", FB_LINE_MAX);
		uv_read_stop(st);
		return;
	}
	if (r < 0) {
		conn_close(c);
		return;
	}
	char *line;
	size_t len;
	if (frame_next(&c->frame, &line, &len) == 1)
		dispatch(c, line, len);
}

static void on_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->got_request)
		return;
	log_debug("connection timed out without a request");
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->got_request = true;
	conn_reply_error(c, "timed out waiting for a request line");
}

static void on_connection(uv_stream_t *server, int status)
{
	struct member *m = server->data;
	struct holder *h = m->h;
	if (status < 0) {
		log_warn("accept on %s: %s", m->name, uv_strerror(status));
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("out of memory accepting a connection");
		return;
	}
	c->h = h;
	c->m = m;
	c->next = h->conns;
	if (h->conns)
		h->conns->pprev = &c->next;
	h->conns = c;
	c->pprev = &h->conns;
	frame_init(&c->frame, FB_LINE_MAX);
	uv_pipe_init(h->loop, &c->pipe, 0);
	uv_timer_init(h->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	h->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		conn_close(c);
		return;
	}
	uv_os_fd_t fd;
	const char *why = NULL;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    peer_admit(h, &h->conn_peers, &h->conn_rule, fd, &c->peer, &why) < 0) {
		log_debug("refusing a connection on %s: %s", m->name, why ? why : "no fd");
		c->got_request = true;
		conn_reply_error(c, "%s", why ? why : "too many connections");
		return;
	}
	uv_timer_start(&c->timer, on_timeout, h->conn_timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, on_read) < 0)
		conn_close(c);
}

int run_listen(struct holder *h, uv_pipe_t *srv, bool *open_flag, const char *name,
	       int backlog, uv_connection_cb cb)
{
	char path[64];
	int r = holder_fd_path(h->run_fd, name, path, sizeof(path));
	if (r < 0)
		return r;
	/* A stale socket of a dead holder (the member's lock proved none lives;
	 * for .ctl the first member's): unlinking never follows a symlink. */
	unlinkat(h->run_fd, name, 0);
	if ((r = uv_pipe_init(h->loop, srv, 0)) < 0)
		return r;
	*open_flag = true;
	/* Bound through run/'s fd, under a tight umask: 0600 from the start. */
	mode_t old = umask(0177);
	r = uv_pipe_bind(srv, path);
	umask(old);
	if (r < 0)
		return r;
	holder_fchownat_invoker(h->run_fd, name, name);
	return uv_listen((uv_stream_t *)srv, backlog, cb);
}

int server_listen(struct member *m)
{
	m->server.data = m;
	return run_listen(m->h, &m->server, &m->server_open, m->sock_name, 1024, on_connection);
}
