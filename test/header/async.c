/* async.c - <fleetbox/uv.h> as a strict C11 caller sees it. Built by meson
 * with -std=c11 -Wall -Wextra -Werror plus the one thing <uv.h> needs under
 * strict ISO C: POSIX declarations (-D_POSIX_C_SOURCE=200809L), as the
 * header's comment documents. */
#include <fleetbox/uv.h>

int main(void)
{
	int (*status)(uv_loop_t *, const char *, const char *, fb_status_cb, void *) =
		fb_status_async;
	int (*request)(uv_loop_t *, const char *, const char *, const char *, int, int,
		       fb_request_cb, void *) = fb_request_async;
	void (*cancel)(fb_exec_op *) = fb_exec_cancel;
	int (*blocking)(const fb_up_options *, fb_cluster **, fb_error *) = fb_up;
	int (*up)(uv_loop_t *, const fb_up_options *, fb_up_cb, void *) = fb_up_async;

	(void)status;
	(void)request;
	(void)cancel;
	(void)blocking;
	(void)up;
	(void)fb_exec_async;
	return 0;
}
