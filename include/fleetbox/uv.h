/* fleetbox/uv.h - the asynchronous half of libfleetbox, on the caller's libuv loop.
 *
 * Includes <fleetbox.h> (the blocking API and every type) and <uv.h>. The
 * *_async calls never block the loop; each callback runs exactly once, on the
 * loop's thread, after the call's own handles are closed. A program using
 * them should ignore SIGPIPE (a holder that exits mid-write raises it); the
 * library never changes signal dispositions.
 *
 * Compiler flags: <uv.h> needs POSIX declarations (pthread, sockets), so
 * under a strict -std=c11 the caller defines _POSIX_C_SOURCE=200809L (or
 * _DEFAULT_SOURCE, or uses -std=gnu11) before any system header. This
 * header itself is ISO C and adds no requirement of its own. */
#ifndef FLEETBOX_UV_H
#define FLEETBOX_UV_H

#include <fleetbox.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- members --- */

typedef void (*fb_status_cb)(void *data, int status, const fb_member_info *info,
			     const fb_error *err);
/* Asks the member's holder on the caller's loop; cb runs exactly once. */
int fb_status_async(uv_loop_t *loop, const char *root, const char *name, fb_status_cb cb,
		    void *data);

/* --- up --- */

/* status 0: c is the cluster (the callback owns it: fb_cluster_close it
 * when done, on any thread); < 0: c is NULL and err says why, as fb_up. */
typedef void (*fb_up_cb)(void *data, int status, fb_cluster *c, const fb_error *err);
/* fb_up without blocking the loop: the blocking fb_up runs on one of
 * libuv's threadpool threads (uv_queue_work) and cb runs on the loop's
 * thread when it is done. Returns < 0 (cb never called) only for NULL
 * arguments (-EINVAL), memory, or uv_queue_work's error; everything else
 * reaches cb, exactly once.
 *  - opt is copied (names, root, image, fixture paths): the caller may free
 *    it at once. The pointers in it are not: cancel, progress,
 *    member_progress and progress_data must stay valid until cb.
 *  - progress and member_progress run on the worker thread, not the loop's.
 *  - To interrupt, set *opt->cancel as for fb_up (from the loop, another
 *    thread or a signal handler); cb then gets -ECANCELED after the
 *    rollback.
 *  - While it runs it occupies one threadpool thread (UV_THREADPOOL_SIZE,
 *    default 4, shared with the loop's uv_fs and getaddrinfo work).
 *  - A bound cluster is bound to this process (all threads), as with fb_up.
 * fb_up is safe on a thread: it keeps no state between calls, runs only
 * private loops and connections, and blocks SIGPIPE in its own thread. */
int fb_up_async(uv_loop_t *loop, const fb_up_options *opt, fb_up_cb cb, void *data);

/* --- raw protocol access --- */

typedef void (*fb_request_cb)(void *data, int status, const char *reply, const fb_error *err);
/* fb_request on the caller's loop; cb runs exactly once. */
int fb_request_async(uv_loop_t *loop, const char *root, const char *member,
		     const char *request_json, int dial_ms, int read_ms, fb_request_cb cb,
		     void *data);

/* --- working inside VMs --- */

/* An exec in flight. The pointer is a token, not an address: it is valid
 * (cancels the exec) from the moment fb_exec_async/fb_exec_ex_async returns
 * it until the callback starts; from then on, inside the callback included,
 * and forever after, fb_exec_cancel with it is a harmless no-op (never a
 * use-after-free, never another exec). Tokens are not reused. */
typedef struct fb_exec_op fb_exec_op;
/* status 0: the command ran (exit status in res); < 0 as for fb_exec_ex, or
 * -ECANCELED. res belongs to the library: take buffers by setting them to
 * NULL, the rest is freed after the callback returns. err is NULL on success. */
typedef void (*fb_exec_cb)(void *data, int status, fb_exec_result *res, const fb_error *err);
/* fb_exec on the caller's loop. Returns < 0 (cb never called) only when it
 * could not start; else cb runs exactly once. */
int fb_exec_async(uv_loop_t *loop, const char *root, const char *name, const char *command,
		  fb_exec_cb cb, void *data, fb_exec_op **op, fb_error *err);
/* fb_exec_ex on the caller's loop (same bounds; streaming callbacks run on
 * the loop). */
int fb_exec_ex_async(uv_loop_t *loop, const char *root, const char *name,
		     const fb_exec_opts *opts, fb_exec_cb cb, void *data, fb_exec_op **op,
		     fb_error *err);
/* Ends the exec: the command's process group in the guest is killed (over a
 * second connection, bounded by its 10 s connect limit; a cancel that lands
 * just as the command starts first waits up to 5 s for the wrapper to report
 * the group) and then the callback runs with -ECANCELED, from the loop, never
 * from inside fb_exec_cancel; its message says whether the kill worked. Call
 * it on the loop's thread. */
void fb_exec_cancel(fb_exec_op *op);

#ifdef __cplusplus
}
#endif
#endif
