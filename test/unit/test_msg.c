/* Every message shape: exact bytes of protocol.md's examples and round trips. */
#include "check.h"
#include "rpc/msg.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>

static char *enc_req(const struct rpc_request *r)
{
	char *line;
	size_t len;
	CHECK_INT(rpc_request_encode(r, &line, &len), 0);
	CHECK_INT(len, strlen(line));
	CHECK(line[len - 1] == '\n');
	return line;
}

static char *enc_rep(const struct rpc_reply *r)
{
	char *line;
	size_t len;
	CHECK_INT(rpc_reply_encode(r, &line, &len), 0);
	CHECK(line[len - 1] == '\n');
	return line;
}

static void test_requests(void)
{
	struct rpc_request r = { .cmd = "status" };
	char *l = enc_req(&r);
	CHECK_STR(l, "{\"cmd\":\"status\"}\n");
	free(l);

	struct rpc_request rv = { .cmd = "reserve", .name = "web-2", .ip_hint = "192.168.3.3" };
	l = enc_req(&rv);
	CHECK_STR(l, "{\"cmd\":\"reserve\",\"name\":\"web-2\",\"ip_hint\":\"192.168.3.3\"}\n");
	struct rpc_request d;
	struct err e = { 0 };
	CHECK_INT(rpc_request_decode(l, strlen(l) - 1, &d, &e), 0);
	CHECK_STR(d.cmd, "reserve");
	CHECK_STR(d.name, "web-2");
	CHECK_STR(d.ip_hint, "192.168.3.3");
	CHECK(d.spec == NULL);
	rpc_request_fini(&d);
	free(l);

	char *fx[] = { "/a/fixture-0.img", "/a/fixture-1.img" };
	struct rpc_spec s = { .name = "web-2", .disk_path = "/a/disk", .seed_path = "/a/seed.iso",
			      .fixture_paths = fx, .n_fixtures = 2, .efi_path = "/e", .cpus = 2,
			      .memory_bytes = 4294967296ull, .serial_log_path = "/a/serial.log" };
	struct rpc_request b = { .cmd = "boot-member", .spec = &s };
	l = enc_req(&b);
	CHECK_STR(l, "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"web-2\",\"disk_path\":\"/a/disk\","
		     "\"seed_path\":\"/a/seed.iso\",\"fixture_paths\":[\"/a/fixture-0.img\","
		     "\"/a/fixture-1.img\"],\"efi_path\":\"/e\",\"cpus\":2,\"memory_bytes\":4294967296,"
		     "\"serial_log_path\":\"/a/serial.log\"}}\n");
	CHECK_INT(rpc_request_decode(l, strlen(l), &d, &e), 0);
	CHECK(d.spec != NULL);
	CHECK_STR(d.spec->name, "web-2");
	CHECK_INT(d.spec->n_fixtures, 2);
	CHECK_STR(d.spec->fixture_paths[1], "/a/fixture-1.img");
	CHECK_INT(d.spec->cpus, 2);
	CHECK(d.spec->memory_bytes == 4294967296ull);
	CHECK_STR(d.spec->serial_log_path, "/a/serial.log");
	CHECK(d.spec->kernel_path == NULL);
	CHECK(!d.spec->ephemeral);
	rpc_request_fini(&d);
	free(l);

	/* The optional ephemeral key: only when set, and last. */
	struct rpc_spec es = { .name = "t-1", .ephemeral = true };
	struct rpc_request eb = { .cmd = "boot-member", .spec = &es };
	l = enc_req(&eb);
	CHECK_STR(l, "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"t-1\",\"ephemeral\":true}}\n");
	CHECK_INT(rpc_request_decode(l, strlen(l), &d, &e), 0);
	CHECK(d.spec->ephemeral);
	rpc_request_fini(&d);
	free(l);
	const char *bad_eph = "{\"cmd\":\"boot-member\",\"spec\":{\"ephemeral\":1}}";
	CHECK_INT(rpc_request_decode(bad_eph, strlen(bad_eph), &d, &e), -EBADMSG);

	/* stop_timeout_ms: optional in the spec and on stop, only when set */
	struct rpc_spec ts = { .name = "t-1", .stop_timeout_ms = 90000 };
	struct rpc_request tb = { .cmd = "boot-member", .spec = &ts };
	l = enc_req(&tb);
	CHECK_STR(l, "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"t-1\",\"stop_timeout_ms\":90000}}\n");
	CHECK_INT(rpc_request_decode(l, strlen(l), &d, &e), 0);
	CHECK(d.spec->stop_timeout_ms == 90000);
	rpc_request_fini(&d);
	free(l);
	struct rpc_request st = { .cmd = "stop", .stop_timeout_ms = 1500 };
	l = enc_req(&st);
	CHECK_STR(l, "{\"cmd\":\"stop\",\"stop_timeout_ms\":1500}\n");
	CHECK_INT(rpc_request_decode(l, strlen(l), &d, &e), 0);
	CHECK(d.stop_timeout_ms == 1500);
	rpc_request_fini(&d);
	free(l);
	struct rpc_request plain = { .cmd = "stop" };
	l = enc_req(&plain);
	CHECK_STR(l, "{\"cmd\":\"stop\"}\n"); /* byte-compatible when unset */
	free(l);
	const char *neg = "{\"cmd\":\"stop\",\"stop_timeout_ms\":-1}";
	CHECK_INT(rpc_request_decode(neg, strlen(neg), &d, &e), -EINVAL);
	const char *huge = "{\"cmd\":\"boot-member\",\"spec\":{\"stop_timeout_ms\":3600001}}";
	CHECK_INT(rpc_request_decode(huge, strlen(huge), &d, &e), -EBADMSG);
	const char *str = "{\"cmd\":\"stop\",\"stop_timeout_ms\":\"5s\"}";
	CHECK_INT(rpc_request_decode(str, strlen(str), &d, &e), -EINVAL);
}

static void test_decode_errors(void)
{
	struct rpc_request d;
	struct err e = { 0 };
	CHECK_INT(rpc_request_decode("nope", 4, &d, &e), -EINVAL);
	CHECK(strncmp(e.msg, "invalid JSON", 12) == 0);
	CHECK_INT(rpc_request_decode("[1]", 3, &d, &e), -EINVAL);
	CHECK_INT(rpc_request_decode("{\"cmd\":5}", 9, &d, &e), -EINVAL);
	CHECK_STR(e.msg, "cmd must be a string");
	const char *bad_spec = "{\"cmd\":\"boot-member\",\"spec\":{\"cpus\":\"two\"}}";
	CHECK_INT(rpc_request_decode(bad_spec, strlen(bad_spec), &d, &e), -EBADMSG);
	const char *bad_fx = "{\"cmd\":\"boot-member\",\"spec\":{\"fixture_paths\":[1]}}";
	CHECK_INT(rpc_request_decode(bad_fx, strlen(bad_fx), &d, &e), -EBADMSG);
	const char *spec_str = "{\"cmd\":\"boot-member\",\"spec\":\"x\"}";
	CHECK_INT(rpc_request_decode(spec_str, strlen(spec_str), &d, &e), -EBADMSG);
	/* Unknown keys are ignored: other clients may add optional ones. */
	const char *extra = "{\"cmd\":\"status\",\"future\":{\"x\":1}}";
	CHECK_INT(rpc_request_decode(extra, strlen(extra), &d, &e), 0);
	CHECK_STR(d.cmd, "status");
	rpc_request_fini(&d);
}

static void test_replies(void)
{
	struct rpc_status st = { .name = "web-1", .pid = 1234, .running = true, .ip = "192.168.3.2",
				 .state = FB_STATE_RUNNING };
	struct rpc_reply r = { .status = &st };
	char *l = enc_rep(&r);
	CHECK_STR(l, "{\"status\":{\"name\":\"web-1\",\"pid\":1234,\"running\":true,\"ip\":\"192.168.3.2\","
		     "\"state\":\"running\"}}\n");
	struct rpc_reply d;
	struct err e = { 0 };
	CHECK_INT(rpc_reply_decode(l, strlen(l), &d, &e), 0);
	CHECK(d.status != NULL);
	CHECK_STR(d.status->name, "web-1");
	CHECK_INT(d.status->pid, 1234);
	CHECK(d.status->running);
	CHECK_INT(d.status->state, FB_STATE_RUNNING);
	CHECK(d.status->error == NULL);
	rpc_reply_fini(&d);
	free(l);

	st.state = FB_STATE_ERROR;
	st.running = false;
	st.error = "vm exited";
	l = enc_rep(&r);
	CHECK_STR(l, "{\"status\":{\"name\":\"web-1\",\"pid\":1234,\"running\":false,\"ip\":\"192.168.3.2\","
		     "\"state\":\"error\",\"error\":\"vm exited\"}}\n");
	free(l);

	/* ip is always present: "" while none is known (NULL or empty alike);
	 * a served member that has not booted yet is starting (running: true). */
	struct rpc_status fresh = { .name = "web-3", .pid = 77, .running = true,
				    .state = FB_STATE_STARTING };
	struct rpc_reply fr = { .status = &fresh };
	l = enc_rep(&fr);
	CHECK_STR(l, "{\"status\":{\"name\":\"web-3\",\"pid\":77,\"running\":true,\"ip\":\"\","
		     "\"state\":\"starting\"}}\n");
	CHECK_INT(rpc_reply_decode(l, strlen(l), &d, &e), 0);
	CHECK_STR(d.status->ip, "");
	CHECK_INT(d.status->state, FB_STATE_STARTING);
	CHECK(d.status->running);
	rpc_reply_fini(&d);
	free(l);
	fresh.ip = "";
	fresh.error = "";
	l = enc_rep(&fr);
	CHECK_STR(l, "{\"status\":{\"name\":\"web-3\",\"pid\":77,\"running\":true,\"ip\":\"\","
		     "\"state\":\"starting\"}}\n");
	free(l);
	/* stopped: ip kept as known, running false, no error key */
	struct rpc_status stp = { .name = "web-3", .pid = 77, .ip = "192.168.3.4",
				  .state = FB_STATE_STOPPED, .error = "" };
	struct rpc_reply sr = { .status = &stp };
	l = enc_rep(&sr);
	CHECK_STR(l, "{\"status\":{\"name\":\"web-3\",\"pid\":77,\"running\":false,"
		     "\"ip\":\"192.168.3.4\",\"state\":\"stopped\"}}\n");
	free(l);

	struct rpc_reply empty = { 0 };
	l = enc_rep(&empty);
	CHECK_STR(l, "{}\n");
	free(l);

	struct rpc_reply sub = { .subnet = "192.168.3.0/24" };
	l = enc_rep(&sub);
	CHECK_STR(l, "{\"subnet\":\"192.168.3.0/24\"}\n");
	CHECK_INT(rpc_reply_decode(l, strlen(l), &d, &e), 0);
	CHECK_STR(d.subnet, "192.168.3.0/24");
	rpc_reply_fini(&d);
	free(l);

	struct rpc_reply res = { .has_reservation = true, .res_ip = "192.168.3.3", .res_mac = "02:aa:bb:cc:dd:ee" };
	l = enc_rep(&res);
	CHECK_STR(l, "{\"reservation\":{\"ip\":\"192.168.3.3\",\"mac\":\"02:aa:bb:cc:dd:ee\"}}\n");
	CHECK_INT(rpc_reply_decode(l, strlen(l), &d, &e), 0);
	CHECK(d.has_reservation);
	CHECK_STR(d.res_ip, "192.168.3.3");
	CHECK_STR(d.res_mac, "02:aa:bb:cc:dd:ee");
	rpc_reply_fini(&d);
	free(l);

	/* fake VMM: reservation with a MAC only */
	struct rpc_reply maconly = { .has_reservation = true, .res_mac = "02:aa:bb:cc:dd:ee" };
	l = enc_rep(&maconly);
	CHECK_STR(l, "{\"reservation\":{\"mac\":\"02:aa:bb:cc:dd:ee\"}}\n");
	free(l);

	CHECK_INT(rpc_error_line("network not created", &l, NULL), 0);
	CHECK_STR(l, "{\"error\":\"network not created\"}\n");
	CHECK_INT(rpc_reply_decode(l, strlen(l), &d, &e), 0);
	CHECK_STR(d.error, "network not created");
	rpc_reply_fini(&d);
	free(l);

	/* Strings are escaped, not spliced. */
	CHECK_INT(rpc_error_line("bad \"quote\"\n", &l, NULL), 0);
	CHECK_STR(l, "{\"error\":\"bad \\\"quote\\\"\\n\"}\n");
	free(l);

	const char *unknown_state = "{\"status\":{\"state\":\"flying\"}}";
	CHECK_INT(rpc_reply_decode(unknown_state, strlen(unknown_state), &d, &e), -EINVAL);
}

int main(void)
{
	test_requests();
	test_decode_errors();
	test_replies();
	printf("msg: ok\n");
	return 0;
}
