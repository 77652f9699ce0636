/*
 * tests/unit/test_http.c — lib/http.c against a loopback HTTP and HTTPS
 * server (tests/unit/http_server.py, started here): status mapping, the
 * API's error text, Retry-After, retries, timeouts, the body cap, TLS
 * with a test CA and with the wrong one, pacing, no redirects.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "http.h"

static pid_t server_pid;
static int server_stdin = -1;
static int http_port, https_port;
static char dir[] = "/tmp/dkimkeyd-test-http-XXXXXX";
static char ca[256], other_ca[256];

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The server script sits next to this file. */
static void
script_path(char *buf, size_t len)
{
	const char *f = __FILE__, *slash = strrchr(f, '/');

	snprintf(buf, len, "%.*s/http_server.py", slash ? (int)(slash - f) : 1,
	    slash ? f : ".");
}

static int
start_server(void **unused)
{
	int in[2], out[2];
	char script[512], line[64];
	FILE *fp;

	if (mkdtemp(dir) == NULL || pipe(in) == -1 || pipe(out) == -1)
		return -1;
	script_path(script, sizeof(script));
	if ((server_pid = fork()) == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/python3", "python3", script, dir, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_stdin = in[1];
	if ((fp = fdopen(out[0], "r")) == NULL ||
	    fgets(line, sizeof(line), fp) == NULL ||
	    sscanf(line, "%d %d", &http_port, &https_port) != 2) {
		fprintf(stderr, "test_http: %s did not start\n", script);
		return -1;
	}
	fclose(fp);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(other_ca, sizeof(other_ca), "%s/other-ca.pem", dir);
	return 0;
}

static int
stop_server(void **unused)
{
	char cmd[512];
	int st;

	if (server_stdin != -1)
		close(server_stdin);	/* it exits at end of input */
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, &st, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* PowerDNS-style {"error": "..."} bodies, without a JSON library. */
static int
errtext(const char *body, size_t len, char *buf, size_t buflen)
{
	const char *p = strstr(body, "\"error\": \""), *e;

	if (p == NULL)
		return -1;
	p += 10;
	if ((e = strchr(p, '"')) == NULL)
		return -1;
	snprintf(buf, buflen, "%.*s", (int)(e - p), p);
	return 0;
}

static struct dk_http *
handle(int timeout_ms, size_t max_body, const char *ca_file,
    struct dk_http_pace *pace)
{
	struct dk_http_opts o;
	struct dk_http *h = NULL;

	memset(&o, 0, sizeof(o));
	o.service = "testapi";
	o.timeout_ms = timeout_ms;
	o.max_body = max_body;
	o.ca_file = ca_file;
	o.pace = pace;
	o.errtext = errtext;
	assert_int_equal(dk_http_new(&o, &h, NULL), DK_OK);
	return h;
}

static int
call(struct dk_http *h, const char *method, const char *path, int https,
    const char *body, int idempotent, struct dk_http_response *r,
    struct dk_error *err)
{
	const char *hdrs[] = { "X-API-Key: s3cret-token", NULL };
	struct dk_http_request q;
	char url[256];

	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
	    https ? "https" : "http", https ? https_port : http_port, path);
	memset(&q, 0, sizeof(q));
	q.method = method;
	q.url = url;
	q.headers = hdrs;
	q.body = body;
	q.body_len = body ? strlen(body) : 0;
	q.idempotent = idempotent;
	memset(r, 0, sizeof(*r));
	memset(err, 0, sizeof(*err));
	return dk_http_do(h, &q, r, err);
}

static int
hits(const char *path)
{
	struct dk_http *h = handle(5000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;
	char p[256];
	int n;

	snprintf(p, sizeof(p), "/hits%s", path);
	assert_int_equal(call(h, "GET", p, 0, NULL, 1, &r, &err), DK_OK);
	n = atoi(r.body);
	dk_http_response_clear(&r);
	dk_http_free(h);
	return n;
}

static void
test_http_sends_method_headers_and_body(void **unused)
{
	struct dk_http *h = handle(5000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;
	char *ct;

	assert_int_equal(call(h, "PATCH", "/echo", 0, "{\"a\": 1}", 1, &r,
	    &err), DK_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"method\": \"PATCH\""));
	assert_non_null(strstr(r.body, "\"body\": \"{\\\"a\\\": 1}\""));
	assert_non_null(strstr(r.body, "\"key\": \"s3cret-token\""));
	assert_int_equal(r.retry_after, -1);
	ct = dk_http_response_header(&r, "content-type");
	assert_string_equal(ct, "application/json");
	free(ct);
	dk_http_response_clear(&r);
	assert_int_equal(call(h, "GET", "/echo", 0, NULL, 1, &r, &err), DK_OK);
	assert_non_null(strstr(r.body, "\"method\": \"GET\""));
	dk_http_response_clear(&r);
	assert_int_equal(dk_http_requests(h), 2);
	dk_http_free(h);
}

static void
test_http_401_is_permanent_with_the_api_text(void **unused)
{
	struct dk_http *h = handle(5000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;

	assert_int_equal(call(h, "GET", "/401", 0, NULL, 1, &r, &err),
	    DK_EPERM);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(err.msg, "testapi"));
	assert_non_null(strstr(err.msg, "401"));
	assert_non_null(strstr(err.msg, "Not authorized: bad key"));
	assert_null(strstr(err.msg, "s3cret"));
	dk_http_response_clear(&r);
	assert_int_equal(hits("/401"), 1);	/* never retried */
	dk_http_free(h);
}

static void
test_http_html_error_page_is_named(void **unused)
{
	struct dk_http *h = handle(5000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;

	assert_int_equal(call(h, "GET", "/403-html", 0, NULL, 1, &r, &err),
	    DK_EPERM);
	assert_non_null(strstr(err.msg, "HTML page"));
	assert_null(strstr(err.msg, "<html>"));
	dk_http_response_clear(&r);
	dk_http_free(h);
}

static void
test_http_429_waits_for_retry_after_then_succeeds(void **unused)
{
	struct dk_http *h = handle(10000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;
	double t0 = now_s();

	/* Even a request that may not be resent after a 5xx. */
	assert_int_equal(call(h, "POST", "/429-once/a", 0, "{}", 0, &r, &err),
	    DK_OK);
	assert_true(now_s() - t0 >= 1.0);
	assert_int_equal(r.status, 200);
	dk_http_response_clear(&r);
	assert_int_equal(hits("/429-once/a"), 2);
	dk_http_free(h);
}

static void
test_http_429_longer_than_the_cap_is_temporary_at_once(void **unused)
{
	struct dk_http *h = handle(10000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;
	double t0 = now_s();

	assert_int_equal(call(h, "GET", "/429-long", 0, NULL, 1, &r, &err),
	    DK_ETEMP);
	assert_true(now_s() - t0 < 1.0);
	assert_int_equal(r.retry_after, 120);
	assert_non_null(strstr(err.msg, "retry after 120s"));
	dk_http_response_clear(&r);
	assert_int_equal(hits("/429-long"), 1);
	dk_http_free(h);
}

static void
test_http_500_is_retried_only_when_idempotent(void **unused)
{
	struct dk_http *h = handle(20000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;

	assert_int_equal(call(h, "GET", "/500", 0, NULL, 1, &r, &err),
	    DK_ETEMP);
	assert_non_null(strstr(err.msg, "HTTP 500"));
	assert_non_null(strstr(err.msg, "Internal trouble"));
	dk_http_response_clear(&r);
	assert_int_equal(hits("/500"), 3);
	assert_int_equal(call(h, "POST", "/500", 0, "{}", 0, &r, &err),
	    DK_ETEMP);
	dk_http_response_clear(&r);
	assert_int_equal(hits("/500"), 4);
	dk_http_free(h);
}

static void
test_http_timeout_is_temporary(void **unused)
{
	struct dk_http *h = handle(1000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;
	double t0 = now_s();

	assert_int_equal(call(h, "GET", "/slow", 0, NULL, 1, &r, &err),
	    DK_ETEMP);
	assert_true(now_s() - t0 < 2.5);
	assert_non_null(strstr(err.msg, "timed out"));
	dk_http_free(h);
}

static void
test_http_oversized_body_is_refused(void **unused)
{
	struct dk_http *h = handle(10000, 1 << 20, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;

	assert_int_equal(call(h, "GET", "/big", 0, NULL, 1, &r, &err),
	    DK_EPERM);
	assert_non_null(strstr(err.msg, "larger than 1048576 bytes"));
	dk_http_free(h);
}

static void
test_http_tls_with_the_test_ca(void **unused)
{
	struct dk_http *h = handle(10000, 0, ca, NULL);
	struct dk_http_response r;
	struct dk_error err;

	assert_int_equal(call(h, "GET", "/echo", 1, NULL, 1, &r, &err), DK_OK);
	assert_non_null(strstr(r.body, "s3cret-token"));
	dk_http_response_clear(&r);
	dk_http_free(h);
}

static void
test_http_tls_with_the_wrong_ca_fails(void **unused)
{
	struct dk_http *h = handle(10000, 0, other_ca, NULL);
	struct dk_http_response r;
	struct dk_error err;
	int before = hits("/echo");

	assert_int_equal(call(h, "GET", "/echo", 1, NULL, 1, &r, &err),
	    DK_EPERM);
	assert_non_null(strstr(err.msg, "TLS certificate"));
	dk_http_free(h);
	/* Nor does the system store know the test CA. */
	h = handle(10000, 0, NULL, NULL);
	assert_int_equal(call(h, "GET", "/echo", 1, NULL, 1, &r, &err),
	    DK_EPERM);
	dk_http_free(h);
	assert_int_equal(hits("/echo"), before);	/* nothing sent */
}

static void
test_http_pace_spaces_requests(void **unused)
{
	struct dk_http_pace pace = { 10.0, 0 };
	struct dk_http *a = handle(5000, 0, NULL, &pace);
	struct dk_http *b = handle(5000, 0, NULL, &pace);
	struct dk_http_response r;
	struct dk_error err;
	double t0 = now_s();
	int i;

	/* Six requests over two handles sharing one pace: >= 0.5 s. */
	for (i = 0; i < 6; i++) {
		assert_int_equal(call(i % 2 ? a : b, "GET", "/echo", 0, NULL,
		    1, &r, &err), DK_OK);
		dk_http_response_clear(&r);
	}
	assert_true(now_s() - t0 >= 0.49);
	dk_http_free(a);
	dk_http_free(b);
}

static void
test_http_redirect_is_not_followed(void **unused)
{
	struct dk_http *h = handle(5000, 0, NULL, NULL);
	struct dk_http_response r;
	struct dk_error err;
	int before = hits("/echo");

	assert_int_equal(call(h, "GET", "/redirect", 0, NULL, 1, &r, &err),
	    DK_EPERM);
	assert_int_equal(r.status, 302);
	dk_http_response_clear(&r);
	assert_int_equal(hits("/echo"), before);
	dk_http_free(h);
}

static void
test_http_refused_connection_is_temporary(void **unused)
{
	struct dk_http_opts o;
	struct dk_http_request q;
	struct dk_http *h = NULL;
	struct dk_error err;

	memset(&o, 0, sizeof(o));
	o.service = "testapi";
	o.timeout_ms = 3000;
	assert_int_equal(dk_http_new(&o, &h, NULL), DK_OK);
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	/* Port 1 on loopback: nothing listens there. */
	q.url = "http://127.0.0.1:1/x?token=abc";
	memset(&err, 0, sizeof(err));
	assert_int_equal(dk_http_do(h, &q, NULL, &err), DK_ETEMP);
	assert_non_null(strstr(err.msg, "testapi"));
	assert_null(strstr(err.msg, "token=abc"));	/* no query shown */
	dk_http_free(h);
}

static void
test_http_escape(void **unused)
{
	char *s = dk_http_escape("mail1._domainkey.example.com. a/b");

	assert_string_equal(s, "mail1._domainkey.example.com.%20a%2Fb");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_sends_method_headers_and_body),
		cmocka_unit_test(test_http_401_is_permanent_with_the_api_text),
		cmocka_unit_test(test_http_html_error_page_is_named),
		cmocka_unit_test(
		    test_http_429_waits_for_retry_after_then_succeeds),
		cmocka_unit_test(
		    test_http_429_longer_than_the_cap_is_temporary_at_once),
		cmocka_unit_test(test_http_500_is_retried_only_when_idempotent),
		cmocka_unit_test(test_http_timeout_is_temporary),
		cmocka_unit_test(test_http_oversized_body_is_refused),
		cmocka_unit_test(test_http_tls_with_the_test_ca),
		cmocka_unit_test(test_http_tls_with_the_wrong_ca_fails),
		cmocka_unit_test(test_http_pace_spaces_requests),
		cmocka_unit_test(test_http_redirect_is_not_followed),
		cmocka_unit_test(test_http_refused_connection_is_temporary),
		cmocka_unit_test(test_http_escape),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
