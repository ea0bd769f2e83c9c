/* up_async.c - fb_up_async: the blocking fb_up on one of libuv's threadpool
 * threads, completing on the caller's loop.
 *
 * Why a thread and not the caller's loop: fb_up's phases run nested private
 * loops (holder spawn, boot replies, SSH waits) that would need a rewrite as
 * one state machine. A worker is honest because fb_up shares nothing between
 * calls: no globals it writes, SIGPIPE blocked only in the calling thread,
 * every loop and connection private to the call, store locks per open file. */
#include "fleetbox/uv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct up_async {
	uv_work_t work;
	fb_up_options o;   /* with the copies below */
	char *root, *image;
	char **names;
	fb_fixture_spec *fx;
	fb_up_cb cb;
	void *data;
	int rc;
	fb_cluster *c;
	fb_error err;
};

static void up_async_free(struct up_async *a)
{
	for (size_t i = 0; a->names && i < a->o.n_names; i++)
		free(a->names[i]);
	for (size_t i = 0; a->fx && i < a->o.n_fixtures; i++) {
		free((char *)a->fx[i].host_path);
		free((char *)a->fx[i].guest_path);
	}
	free(a->names);
	free(a->fx);
	free(a->root);
	free(a->image);
	free(a);
}

/* NULL stays NULL; false only when a copy failed. */
static bool dup_opt(const char *s, char **out)
{
	*out = s ? strdup(s) : NULL;
	return !s || *out;
}

static bool copy_names(struct up_async *a, const fb_up_options *o)
{
	if (!o->names || !o->n_names)
		return true; /* fb_up reports it */
	if (!(a->names = calloc(o->n_names, sizeof(char *))))
		return false;
	for (size_t i = 0; i < o->n_names; i++)
		if (!dup_opt(o->names[i], &a->names[i]))
			return false;
	a->o.names = (const char *const *)a->names;
	return true;
}

static bool copy_fixtures(struct up_async *a, const fb_up_options *o)
{
	if (!o->fixtures || !o->n_fixtures)
		return true;
	if (!(a->fx = calloc(o->n_fixtures, sizeof(*a->fx))))
		return false;
	for (size_t i = 0; i < o->n_fixtures; i++) {
		char *h, *g;
		bool ok = dup_opt(o->fixtures[i].host_path, &h) && dup_opt(o->fixtures[i].guest_path, &g);
		a->fx[i].host_path = h;
		a->fx[i].guest_path = ok ? g : NULL;
		if (!ok)
			return false;
	}
	a->o.fixtures = a->fx;
	return true;
}

static struct up_async *up_async_new(const fb_up_options *o)
{
	struct up_async *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->o = *o;
	bool ok = dup_opt(o->root, &a->root) && dup_opt(o->image, &a->image) &&
		  copy_names(a, o) && copy_fixtures(a, o);
	a->o.root = a->root;
	a->o.image = a->image;
	if (!ok) {
		up_async_free(a);
		return NULL;
	}
	return a;
}

static void up_work(uv_work_t *w)
{
	struct up_async *a = w->data;
	a->rc = fb_up(&a->o, &a->c, &a->err);
}

static void up_after(uv_work_t *w, int status)
{
	struct up_async *a = w->data;
	if (status == UV_ECANCELED) { /* never started: uv_cancel on the request */
		a->rc = -ECANCELED;
		a->err.code = -ECANCELED;
		strcpy(a->err.message, "fb_up_async: cancelled before it started");
	}
	a->cb(a->data, a->rc, a->rc == 0 ? a->c : NULL, a->rc < 0 ? &a->err : NULL);
	up_async_free(a);
}

int fb_up_async(uv_loop_t *loop, const fb_up_options *opt, fb_up_cb cb, void *data)
{
	if (!loop || !opt || !cb)
		return -EINVAL;
	struct up_async *a = up_async_new(opt);
	if (!a)
		return -ENOMEM;
	a->cb = cb;
	a->data = data;
	a->work.data = a;
	int r = uv_queue_work(loop, &a->work, up_work, up_after);
	if (r < 0)
		up_async_free(a);
	return r;
}
