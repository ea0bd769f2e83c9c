/* blocking.c - the blocking header alone, as a strict ISO C caller sees it.
 * Built by meson with exactly -std=c11 -Wall -Wextra -Werror -pedantic and no
 * feature macros. It must not drag in libuv or pthread types: the names
 * below would clash with them if it did. */
#include <fleetbox.h>

#ifdef UV_VERSION_MAJOR
#error "fleetbox.h included <uv.h>"
#endif
#ifdef PTHREAD_MUTEX_INITIALIZER
#error "fleetbox.h included <pthread.h>"
#endif

typedef int uv_loop_t;      /* a clash if <uv.h> had been included */
typedef int pthread_mutex_t; /* likewise for <pthread.h> */

/* Every blocking entry point, taken by address so a missing or mistyped
 * declaration fails here, not in a user's build. */
static int (*const calls[])(const char *, fb_error *) = { fb_down_all, fb_rm_all };

int main(void)
{
	fb_error err = { 0 };
	fb_up_options opt = { 0 };
	fb_member_info info;
	fb_exec_result res = { 0 };
	uv_loop_t fake_loop = 0;
	pthread_mutex_t fake_mutex = 0;
	int (*up)(const fb_up_options *, fb_cluster **, fb_error *) = fb_up;
	int (*st)(const char *, const char *, fb_member_info *, fb_error *) = fb_status;
	int (*uniq)(const char *, char *, size_t) = fb_unique_name;
	int (*port)(const char *, const char *, int, int, fb_error *) = fb_wait_port;
	int (*cons)(const char *, const char *, char *, size_t, fb_error *) = fb_console_path;

	(void)info;
	(void)res;
	(void)opt;
	(void)calls;
	(void)up;
	(void)st;
	(void)uniq;
	(void)port;
	(void)cons;
	return err.code + fake_loop + fake_mutex;
}
