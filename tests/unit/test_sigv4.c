/*
 * tests/unit/test_sigv4.c — AWS Signature Version 4 (lib/sigv4.h) against
 * vectors of AWS's published SigV4 test suite (aws-sig-v4-test-suite:
 * credentials AKIDEXAMPLE, region us-east-1, service "service", time
 * 20150830T123600Z).  Each case checks the canonical request, the string
 * to sign and the Authorization header as AWS publishes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "dk.h"
#include "sigv4.h"

static const struct dk_sigv4_key suite_key = {
	"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	"us-east-1", "service"
};

#define SCOPE "20150830/us-east-1/service/aws4_request"
#define EMPTY_HASH \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct vector {
	const char		*name;
	const char		*method;
	const char		*path;
	const char		*query;
	const char *const	*headers;
	const char		*body;
	const char		*creq;
	const char		*sts_hash;
	const char		*signed_headers;
	const char		*signature;
};

static const char *const vanilla_headers[] = {
	"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z", NULL
};
static const char *const trim_headers[] = {
	"Host:example.amazonaws.com", "My-Header1: value1",
	"My-Header2: \"a   b   c\"", "X-Amz-Date:20150830T123600Z", NULL
};
static const char *const dup_headers[] = {
	"Host:example.amazonaws.com", "My-Header1:value2",
	"My-Header1:value2", "My-Header1:value1",
	"X-Amz-Date:20150830T123600Z", NULL
};
static const char *const form_headers[] = {
	"Content-Type:application/x-www-form-urlencoded",
	"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z", NULL
};

static const struct vector vectors[] = {
	{ "get-vanilla", "GET", "/", NULL, vanilla_headers, NULL,
	  "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
	  "\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
	  "host;x-amz-date",
	  "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
	{ "get-vanilla-query", "GET", "/", "", vanilla_headers, NULL,
	  "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
	  "\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
	  "host;x-amz-date",
	  "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
	{ "get-vanilla-empty-query-key", "GET", "/", "Param1=value1",
	  vanilla_headers, NULL,
	  "GET\n/\nParam1=value1\nhost:example.amazonaws.com\n"
	  "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
	  "host;x-amz-date",
	  "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" },
	{ "get-vanilla-query-order-key-case", "GET", "/",
	  "Param2=value2&Param1=value1", vanilla_headers, NULL,
	  "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
	  "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
	  "host;x-amz-date",
	  "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
	{ "get-vanilla-query-order-value", "GET", "/",
	  "Param1=value2&Param1=value1", vanilla_headers, NULL,
	  "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\n"
	  "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
	  "host;x-amz-date",
	  "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },
	{ "get-vanilla-utf8-query", "GET", "/", "\xe1\x88\xb4=bar",
	  vanilla_headers, NULL,
	  "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\n"
	  "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
	  "host;x-amz-date",
	  "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
	{ "get-utf8", "GET", "/\xe1\x88\xb4", NULL, vanilla_headers, NULL,
	  "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\n"
	  "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
	  "host;x-amz-date",
	  "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
	{ "get-header-value-trim", "GET", "/", NULL, trim_headers, NULL,
	  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
	  "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
	  "host;my-header1;my-header2;x-amz-date\n" EMPTY_HASH,
	  "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
	  "host;my-header1;my-header2;x-amz-date",
	  "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
	{ "get-header-key-duplicate", "GET", "/", NULL, dup_headers, NULL,
	  "GET\n/\n\nhost:example.amazonaws.com\n"
	  "my-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\n"
	  "host;my-header1;x-amz-date\n" EMPTY_HASH,
	  "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
	  "host;my-header1;x-amz-date",
	  "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
	{ "post-vanilla", "POST", "/", NULL, vanilla_headers, NULL,
	  "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
	  "\n\nhost;x-amz-date\n" EMPTY_HASH,
	  "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
	  "host;x-amz-date",
	  "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
	{ "post-x-www-form-urlencoded", "POST", "/", NULL, form_headers,
	  "Param1=value1",
	  "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
	  "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
	  "content-type;host;x-amz-date\n"
	  "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
	  "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
	  "content-type;host;x-amz-date",
	  "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
};

static void
request_of(const struct vector *v, struct dk_sigv4_request *r)
{
	memset(r, 0, sizeof(*r));
	r->method = v->method;
	r->path = v->path;
	r->query = v->query;
	r->headers = v->headers;
	r->body = v->body;
	r->body_len = v->body ? strlen(v->body) : 0;
}

static void
test_sigv4_canonical_requests_match_the_aws_suite(void **state)
{
	struct dk_sigv4_request r;
	struct dk_error err = { 0, "" };
	char *creq, *sh;
	size_t i;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		request_of(&vectors[i], &r);
		assert_int_equal(dk_sigv4_canonical(&r, &creq, &sh, &err),
		    DK_OK);
		if (strcmp(creq, vectors[i].creq) != 0)
			fail_msg("%s: canonical request\n%s\n--- expected\n%s",
			    vectors[i].name, creq, vectors[i].creq);
		assert_string_equal(sh, vectors[i].signed_headers);
		free(creq);
		free(sh);
	}
}

static void
test_sigv4_strings_to_sign_match_the_aws_suite(void **state)
{
	struct dk_sigv4_request r;
	struct dk_error err = { 0, "" };
	char *creq, *sh, *sts, want[256];
	size_t i;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		request_of(&vectors[i], &r);
		assert_int_equal(dk_sigv4_canonical(&r, &creq, &sh, &err),
		    DK_OK);
		assert_int_equal(dk_sigv4_string_to_sign(creq,
		    "20150830T123600Z", "us-east-1", "service", &sts, &err),
		    DK_OK);
		snprintf(want, sizeof(want), "AWS4-HMAC-SHA256\n"
		    "20150830T123600Z\n" SCOPE "\n%s", vectors[i].sts_hash);
		if (strcmp(sts, want) != 0)
			fail_msg("%s: string to sign\n%s\n--- expected\n%s",
			    vectors[i].name, sts, want);
		free(creq);
		free(sh);
		free(sts);
	}
}

static void
test_sigv4_authorization_headers_match_the_aws_suite(void **state)
{
	struct dk_sigv4_request r;
	struct dk_error err = { 0, "" };
	char *a, want[512];
	size_t i;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		request_of(&vectors[i], &r);
		assert_int_equal(dk_sigv4_authorization(&suite_key, &r, &a,
		    &err), DK_OK);
		snprintf(want, sizeof(want), "AWS4-HMAC-SHA256 Credential="
		    "AKIDEXAMPLE/" SCOPE ", SignedHeaders=%s, Signature=%s",
		    vectors[i].signed_headers, vectors[i].signature);
		if (strcmp(a, want) != 0)
			fail_msg("%s: Authorization\n%s\n--- expected\n%s",
			    vectors[i].name, a, want);
		free(a);
	}
}

static void
test_sigv4_a_changed_secret_changes_the_signature(void **state)
{
	struct dk_sigv4_key k = suite_key;
	struct dk_sigv4_request r;
	struct dk_error err = { 0, "" };
	char *a;

	k.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ";
	request_of(&vectors[0], &r);
	assert_int_equal(dk_sigv4_authorization(&k, &r, &a, &err), DK_OK);
	assert_null(strstr(a, vectors[0].signature));
	assert_null(strstr(a, "EXAMPLEKE"));
	free(a);
}

static void
test_sigv4_refuses_a_request_without_a_date(void **state)
{
	static const char *const h[] = { "Host:example.amazonaws.com", NULL };
	static const char *const bad[] = { "no colon here",
	    "X-Amz-Date:20150830T123600Z", NULL };
	struct dk_sigv4_request r;
	struct dk_error err = { 0, "" };
	char *a = NULL, *sh = NULL;

	request_of(&vectors[0], &r);
	r.headers = h;
	assert_int_equal(dk_sigv4_authorization(&suite_key, &r, &a, &err),
	    DK_EINVAL);
	assert_non_null(strstr(err.msg, "x-amz-date"));
	r.headers = bad;
	assert_int_equal(dk_sigv4_canonical(&r, &a, &sh, &err), DK_EINVAL);
	assert_null(a);
}

static void
test_sigv4_date_format(void **state)
{
	char buf[17];

	dk_sigv4_date(1440938160LL, buf);
	assert_string_equal(buf, "20150830T123600Z");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_sigv4_canonical_requests_match_the_aws_suite),
		cmocka_unit_test(
		    test_sigv4_strings_to_sign_match_the_aws_suite),
		cmocka_unit_test(
		    test_sigv4_authorization_headers_match_the_aws_suite),
		cmocka_unit_test(
		    test_sigv4_a_changed_secret_changes_the_signature),
		cmocka_unit_test(test_sigv4_refuses_a_request_without_a_date),
		cmocka_unit_test(test_sigv4_date_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
