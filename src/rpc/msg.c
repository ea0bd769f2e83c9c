#include "rpc/msg.h"
#include "util/err.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void xfree(char **p)
{
	free(*p);
	*p = NULL;
}

void rpc_spec_free(struct rpc_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->disk_path);
	free(s->seed_path);
	for (size_t i = 0; i < s->n_fixtures; i++)
		free(s->fixture_paths[i]);
	free(s->fixture_paths);
	free(s->efi_path);
	free(s->serial_log_path);
	free(s->kernel_path);
	free(s->initrd_path);
	free(s->cmdline);
	free(s);
}

void rpc_request_fini(struct rpc_request *r)
{
	xfree(&r->cmd);
	xfree(&r->name);
	xfree(&r->ip_hint);
	rpc_spec_free(r->spec);
	r->spec = NULL;
}

void rpc_status_free(struct rpc_status *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->ip);
	free(s->error);
	free(s);
}

void rpc_reply_fini(struct rpc_reply *r)
{
	xfree(&r->error);
	xfree(&r->subnet);
	rpc_status_free(r->status);
	memset(r, 0, sizeof(*r));
}

/* --- encoding --- */

static int set_str(json_t *o, const char *k, const char *v)
{
	if (!v || !*v)
		return 0;
	return json_object_set_new(o, k, json_string(v)) < 0 ? -ENOMEM : 0;
}

static int dump_line(json_t *o, char **line, size_t *len)
{
	if (!o)
		return -ENOMEM;
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	char *out = realloc(s, n + 2);
	if (!out) {
		free(s);
		return -ENOMEM;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	*line = out;
	if (len)
		*len = n + 1;
	return 0;
}

static json_t *spec_to_json(const struct rpc_spec *s)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int r = set_str(o, "name", s->name);
	r |= set_str(o, "disk_path", s->disk_path);
	r |= set_str(o, "seed_path", s->seed_path);
	if (s->n_fixtures) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < s->n_fixtures; i++)
			r |= json_array_append_new(a, json_string(s->fixture_paths[i]));
		r |= json_object_set_new(o, "fixture_paths", a);
	}
	r |= set_str(o, "efi_path", s->efi_path);
	if (s->cpus)
		r |= json_object_set_new(o, "cpus", json_integer(s->cpus));
	if (s->memory_bytes)
		r |= json_object_set_new(o, "memory_bytes", json_integer((json_int_t)s->memory_bytes));
	r |= set_str(o, "serial_log_path", s->serial_log_path);
	r |= set_str(o, "kernel_path", s->kernel_path);
	r |= set_str(o, "initrd_path", s->initrd_path);
	r |= set_str(o, "cmdline", s->cmdline);
	if (s->ephemeral)
		r |= json_object_set_new(o, "ephemeral", json_true());
	if (s->stop_timeout_ms)
		r |= json_object_set_new(o, "stop_timeout_ms", json_integer((json_int_t)s->stop_timeout_ms));
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int rpc_request_encode(const struct rpc_request *r, char **line, size_t *len)
{
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	int rc = set_str(o, "cmd", r->cmd);
	rc |= set_str(o, "name", r->name);
	rc |= set_str(o, "ip_hint", r->ip_hint);
	if (r->spec) {
		json_t *s = spec_to_json(r->spec);
		rc |= s ? json_object_set_new(o, "spec", s) : -1;
	}
	if (r->stop_timeout_ms)
		rc |= json_object_set_new(o, "stop_timeout_ms", json_integer((json_int_t)r->stop_timeout_ms));
	if (rc) {
		json_decref(o);
		return -ENOMEM;
	}
	return dump_line(o, line, len);
}

int rpc_reply_encode(const struct rpc_reply *r, char **line, size_t *len)
{
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	int rc = set_str(o, "error", r->error);
	if (r->status) {
		const struct rpc_status *s = r->status;
		json_t *so = json_object();
		rc |= !so;
		/* name, pid, running, ip ("" while none is known) and state are always
		 * present, as protocol.md's status row encodes them. */
		rc |= json_object_set_new(so, "name", json_string(s->name ? s->name : ""));
		rc |= json_object_set_new(so, "pid", json_integer(s->pid));
		rc |= json_object_set_new(so, "running", json_boolean(s->running));
		rc |= json_object_set_new(so, "ip", json_string(s->ip ? s->ip : ""));
		rc |= json_object_set_new(so, "state", json_string(wire_state_name(s->state)));
		rc |= set_str(so, "error", s->error);
		rc |= json_object_set_new(o, "status", so);
	}
	rc |= set_str(o, "subnet", r->subnet);
	if (r->has_reservation) {
		json_t *ro = json_object();
		rc |= !ro;
		rc |= set_str(ro, "ip", r->res_ip);
		rc |= set_str(ro, "mac", r->res_mac);
		rc |= json_object_set_new(o, "reservation", ro);
	}
	if (rc) {
		json_decref(o);
		return -ENOMEM;
	}
	return dump_line(o, line, len);
}

int rpc_error_line(const char *msg, char **line, size_t *len)
{
	struct rpc_reply rep = { .error = (char *)msg };
	return rpc_reply_encode(&rep, line, len);
}

/* --- decoding --- */

static int get_str(json_t *o, const char *k, char **out, struct err *e)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return err_set(e, -EINVAL, "%s must be a string", k);
	*out = strdup(json_string_value(v));
	return *out ? 0 : err_set(e, -ENOMEM, "out of memory");
}

static int get_bool(json_t *o, const char *k, bool *out, struct err *e)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return err_set(e, -EINVAL, "%s must be a boolean", k);
	*out = json_is_true(v);
	return 0;
}

static int get_int(json_t *o, const char *k, json_int_t *out, struct err *e)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return err_set(e, -EINVAL, "%s must be an integer", k);
	*out = json_integer_value(v);
	return 0;
}

/* stop_timeout_ms: optional, at most 1 h (0 or absent: unset). */
static int get_stop_ms(json_t *o, json_int_t *out, struct err *e)
{
	int r = get_int(o, "stop_timeout_ms", out, e);
	if (r == 0 && (*out < 0 || *out > RPC_STOP_TIMEOUT_MAX_MS))
		r = err_set(e, -EINVAL, "stop_timeout_ms out of range (0..%d)", RPC_STOP_TIMEOUT_MAX_MS);
	return r;
}

static json_t *parse_object(const char *line, size_t len, struct err *e)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		err_set(e, -EINVAL, "invalid JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		err_set(e, -EINVAL, "invalid JSON: expected an object");
		return NULL;
	}
	return o;
}

static int spec_from_json(json_t *so, struct rpc_spec **out, struct err *e)
{
	if (!json_is_object(so))
		return err_set(e, -EINVAL, "spec must be an object");
	struct rpc_spec *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	int r = 0;
	json_int_t cpus = 0, mem = 0, stop_ms = 0;
	if ((r = get_str(so, "name", &s->name, e)) < 0 ||
	    (r = get_str(so, "disk_path", &s->disk_path, e)) < 0 ||
	    (r = get_str(so, "seed_path", &s->seed_path, e)) < 0 ||
	    (r = get_str(so, "efi_path", &s->efi_path, e)) < 0 ||
	    (r = get_str(so, "serial_log_path", &s->serial_log_path, e)) < 0 ||
	    (r = get_str(so, "kernel_path", &s->kernel_path, e)) < 0 ||
	    (r = get_str(so, "initrd_path", &s->initrd_path, e)) < 0 ||
	    (r = get_str(so, "cmdline", &s->cmdline, e)) < 0 ||
	    (r = get_int(so, "cpus", &cpus, e)) < 0 ||
	    (r = get_int(so, "memory_bytes", &mem, e)) < 0 ||
	    (r = get_bool(so, "ephemeral", &s->ephemeral, e)) < 0 ||
	    (r = get_stop_ms(so, &stop_ms, e)) < 0)
		goto fail;
	if (cpus < 0 || cpus > 1024 || mem < 0) {
		r = err_set(e, -EINVAL, "cpus/memory_bytes out of range");
		goto fail;
	}
	s->stop_timeout_ms = (uint64_t)stop_ms;
	s->cpus = (int)cpus;
	s->memory_bytes = (uint64_t)mem;
	json_t *fx = json_object_get(so, "fixture_paths");
	if (fx && !json_is_null(fx)) {
		if (!json_is_array(fx)) {
			r = err_set(e, -EINVAL, "fixture_paths must be an array");
			goto fail;
		}
		size_t n = json_array_size(fx);
		s->fixture_paths = calloc(n + 1, sizeof(char *));
		if (!s->fixture_paths) {
			r = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			json_t *v = json_array_get(fx, i);
			if (!json_is_string(v)) {
				r = err_set(e, -EINVAL, "fixture_paths must hold strings");
				goto fail;
			}
			s->fixture_paths[i] = strdup(json_string_value(v));
			if (!s->fixture_paths[i]) {
				r = err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
			s->n_fixtures = i + 1;
		}
	}
	*out = s;
	return 0;
fail:
	rpc_spec_free(s);
	return r;
}

int rpc_request_decode(const char *line, size_t len, struct rpc_request *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = parse_object(line, len, e);
	if (!o)
		return -EINVAL;
	int r;
	if ((r = get_str(o, "cmd", &out->cmd, e)) < 0 || (r = get_str(o, "name", &out->name, e)) < 0 ||
	    (r = get_str(o, "ip_hint", &out->ip_hint, e)) < 0)
		goto fail;
	json_int_t stop_ms = 0;
	if ((r = get_stop_ms(o, &stop_ms, e)) < 0)
		goto fail;
	out->stop_timeout_ms = (uint64_t)stop_ms;
	json_t *so = json_object_get(o, "spec");
	if (so && !json_is_null(so) && (r = spec_from_json(so, &out->spec, e)) < 0) {
		r = -EBADMSG; /* the request is fine, its spec is not */
		goto fail;
	}
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	rpc_request_fini(out);
	return r;
}

int rpc_reply_decode(const char *line, size_t len, struct rpc_reply *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = parse_object(line, len, e);
	if (!o)
		return -EINVAL;
	int r;
	if ((r = get_str(o, "error", &out->error, e)) < 0 || (r = get_str(o, "subnet", &out->subnet, e)) < 0)
		goto fail;
	json_t *so = json_object_get(o, "status");
	if (so && json_is_object(so)) {
		struct rpc_status *s = calloc(1, sizeof(*s));
		if (!s) {
			r = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
		out->status = s;
		json_int_t pid = 0;
		char *state = NULL;
		if ((r = get_str(so, "name", &s->name, e)) < 0 || (r = get_int(so, "pid", &pid, e)) < 0 ||
		    (r = get_str(so, "ip", &s->ip, e)) < 0 || (r = get_str(so, "error", &s->error, e)) < 0 ||
		    (r = get_str(so, "state", &state, e)) < 0)
			goto fail;
		s->pid = (long)pid;
		json_t *rv = json_object_get(so, "running");
		s->running = rv && json_is_true(rv);
		s->state = FB_STATE_ERROR;
		if (state && wire_state_parse(state, &s->state) < 0) {
			r = err_set(e, -EINVAL, "unknown state \"%s\"", state);
			free(state);
			goto fail;
		}
		free(state);
	}
	json_t *ro = json_object_get(o, "reservation");
	if (ro && json_is_object(ro)) {
		json_t *ip = json_object_get(ro, "ip"), *mac = json_object_get(ro, "mac");
		out->has_reservation = true;
		if (json_is_string(ip))
			snprintf(out->res_ip, sizeof(out->res_ip), "%s", json_string_value(ip));
		if (json_is_string(mac))
			snprintf(out->res_mac, sizeof(out->res_mac), "%s", json_string_value(mac));
	}
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	rpc_reply_fini(out);
	return r;
}
