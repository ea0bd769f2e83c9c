/* test_api.c - the public exec/copy entry points without a VM: argument and
 * member errors come back as codes with messages, results are zeroed, no async
 * callback runs for an op that could not start, and the loop closes cleanly.
 * (Running commands in real VMs is covered by the VM suite.) */
#include "fleetbox/uv.h"
#include "util/fileio.h"
#include "t.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int called;

static void cb(void *data, int status, fb_exec_result *res, const fb_error *err)
{
	(void)data, (void)status, (void)res, (void)err;
	called++;
}

int main(void)
{
	char root[PATH_MAX] = "/tmp/fbapi-XXXXXX";
	CHECK(mkdtemp(root));
	fb_error err;
	fb_exec_result res;
	memset(&res, 0xff, sizeof(res));

	CHECK(fb_exec(root, "nosuch", "true", &res, &err) == -ENOENT);
	CHECK(err.code == -ENOENT && strstr(err.message, "no such member: nosuch"));
	CHECK(res.out == NULL && res.err == NULL && res.combined == NULL && res.exit_status == 0);
	fb_exec_result_free(&res);
	fb_exec_result_free(NULL);

	CHECK(fb_exec(root, "Bad Name", "true", &res, &err) == -EINVAL);
	CHECK(strstr(err.message, "invalid name") != NULL);
	CHECK(fb_exec(root, "x", NULL, &res, &err) == -EINVAL);

	uv_loop_t loop;
	CHECK(uv_loop_init(&loop) == 0);
	fb_exec_op *op = (fb_exec_op *)&loop;
	CHECK(fb_exec_async(&loop, root, "nosuch", "true", cb, NULL, &op, &err) == -ENOENT);
	CHECK(op == NULL);
	CHECK(fb_exec_async(&loop, root, "x", "true", NULL, NULL, &op, &err) == -EINVAL);
	fb_exec_cancel(NULL);
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	CHECK(called == 0);
	CHECK(uv_loop_close(&loop) == 0);

	CHECK(fb_copy_to(root, "nosuch", "/etc/hostname", "/tmp/x", &err) == -ENOENT);
	CHECK(fb_copy_from(root, "nosuch", "/etc/hostname", "/tmp/x", &err) == -ENOENT);
	CHECK(fb_copy_to(root, "nosuch", NULL, "/tmp/x", &err) == -EINVAL);

	CHECK(rm_rf(root) == 0);
	printf("ok\n");
	return 0;
}
