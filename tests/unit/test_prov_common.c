/*
 * tests/unit/test_prov_common.c — what the API publishers share
 * (providers/dns/prov_common.h): the token header from a secret file,
 * ca_file, name comparison, the per-section memo, TXT presentation
 * format round trips and replace_many's grouping by zone.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "dk.h"
#include "secret.h"
#include "../../providers/dns/prov_common.h"

struct fix {
	char	dir[64];
	char	token[128];
	struct dk_conf_kv kv[2];
	struct dk_conf_section sec;
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_prov.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->token, sizeof(f->token), "%s/token", f->dir);
	f->kv[0].key = "token_file";
	f->kv[0].value = f->token;
	f->kv[0].file = "/etc/dkimkeyd/dkimkeyd.conf";
	f->kv[0].line = 12;
	f->sec.kind = "provider";
	f->sec.name = "cf";
	f->sec.type = "cloudflare";
	f->sec.file = "/etc/dkimkeyd/dkimkeyd.conf";
	f->sec.line = 10;
	f->sec.kv = f->kv;
	f->sec.nkv = 1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	unlink(f->token);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
put(const char *path, const char *s, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_secret_header_trims_one_line(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char *h = NULL;

	put(f->token, "  s3cret-token \r\n\n", 0600);
	assert_int_equal(dk_prov_secret_header(&f->sec, "token_file", "why",
	    "Authorization: Bearer ", &h, &err), DK_OK);
	assert_string_equal(h, "Authorization: Bearer s3cret-token");
	dk_secret_cleanse(h, strlen(h));
	free(h);
}

static void
test_secret_header_refuses_with_file_line_and_no_secret(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char *h = NULL;

	put(f->token, "line-one-secret\nline-two\n", 0600);
	assert_int_equal(dk_prov_secret_header(&f->sec, "token_file", "why",
	    "X: ", &h, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "dkimkeyd.conf:12: token_file"));
	assert_non_null(strstr(err.msg, "more than one line"));
	assert_null(strstr(err.msg, "line-one-secret"));
	put(f->token, " \n", 0600);
	assert_int_equal(dk_prov_secret_header(&f->sec, "token_file", "why",
	    "X: ", &h, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "empty"));
	put(f->token, "secret\n", 0604);
	assert_int_equal(dk_prov_secret_header(&f->sec, "token_file", "why",
	    "X: ", &h, &err), DK_EUNSAFE);
	assert_int_equal(dk_exit_code(DK_EUNSAFE), 77);
	f->sec.nkv = 0;
	assert_int_equal(dk_prov_secret_header(&f->sec, "token_file",
	    "a file holding the token", "X: ", &h, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "needs token_file"));
	assert_null(h);
}

static void
test_ca_file_must_be_absolute(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char *ca = (char *)"x";

	assert_int_equal(dk_prov_ca_file(&f->sec, &ca, &err), DK_OK);
	assert_null(ca);
	f->kv[1].key = "ca_file";
	f->kv[1].value = "ca.pem";
	f->kv[1].file = f->sec.file;
	f->kv[1].line = 14;
	f->sec.nkv = 2;
	assert_int_equal(dk_prov_ca_file(&f->sec, &ca, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, ":14: ca_file"));
	f->kv[1].value = "/etc/ssl/ca.pem";
	assert_int_equal(dk_prov_ca_file(&f->sec, &ca, &err), DK_OK);
	assert_string_equal(ca, "/etc/ssl/ca.pem");
	free(ca);
}

static void
test_names_compare_without_case_and_final_dot(void **state)
{
	assert_true(dk_prov_name_eq("Mail1._DomainKey.Example.COM.",
	    "mail1._domainkey.example.com"));
	assert_false(dk_prov_name_eq("mail1.example.com", "mail1.example.co"));
	assert_false(dk_prov_name_eq("a.example.com", "b.example.com"));
}

static void
test_memo_is_per_section(void **state)
{
	struct fix *f = *state;
	struct dk_conf_section other = f->sec;

	other.line = 20;
	assert_null(dk_prov_memo_get(&f->sec, "example.com"));
	dk_prov_memo_put(&f->sec, "example.com", "0123abcd");
	dk_prov_memo_put(&f->sec, "nozone.example", "");
	assert_string_equal(dk_prov_memo_get(&f->sec, "example.com"),
	    "0123abcd");
	assert_string_equal(dk_prov_memo_get(&f->sec, "nozone.example"), "");
	assert_null(dk_prov_memo_get(&other, "example.com"));
}

static void
test_txt_split_or_quoted_otherwise_is_the_same_record(void **state)
{
	struct dk_txt a, b, c;
	/* RFC 8463's example key. */
	const char *p = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	char one[200], two[200];

	snprintf(one, sizeof(one), "\"v=DKIM1; k=ed25519; p=%s\"", p);
	snprintf(two, sizeof(two), "\"v=DKIM1;k=ed25519;\"  \"p=%.20s\" "
	    "\"%s\"", p, p + 20);
	assert_int_equal(dk_prov_txt_parse(one, &a), DK_OK);
	assert_int_equal(dk_prov_txt_parse(two, &b), DK_OK);
	assert_int_equal(b.nstr, 3);
	assert_true(dk_prov_txt_same(&a, &b));
	assert_int_equal(dk_prov_txt_parse("\"v=DKIM1; k=ed25519; p=\"", &c),
	    DK_OK);
	assert_false(dk_prov_txt_same(&a, &c));
	dk_txt_free(&c);
	assert_int_equal(dk_prov_txt_parse("\"cut short", &c), DK_EINVAL);
	dk_txt_free(&a);
	dk_txt_free(&b);
}

/* replace_by_zone: what the zone callbacks saw. */
struct calls {
	char	zones[4][32];
	size_t	idx[4][8];
	size_t	n[4];
	size_t	ncalls;
};

static int
zone_of(void *arg, const char *owner, char **zone, struct dk_error *err)
{
	const char *dot = strchr(owner, '.');

	(void)arg;
	if (strncmp(owner, "bad", 3) == 0)
		return dk_err(err, DK_ETEMP, "%s: no zone", owner);
	return (*zone = dk_strdup(dot + 1)) != NULL ? DK_OK : DK_ENOMEM;
}

static void
one_zone(void *arg, const char *zone, const struct dk_dns_change *ch,
    const size_t *idx, size_t n, int *status, struct dk_error *errs)
{
	struct calls *c = arg;
	size_t i;

	(void)ch;
	snprintf(c->zones[c->ncalls], sizeof(c->zones[0]), "%s", zone);
	for (i = 0; i < n; i++) {
		c->idx[c->ncalls][i] = idx[i];
		status[idx[i]] = strcmp(zone, "b.example") == 0 ?
		    dk_err(&errs[idx[i]], DK_EMISMATCH, "foreign") : DK_OK;
	}
	c->n[c->ncalls++] = n;
}

static void
test_replace_by_zone_groups_in_first_seen_order(void **state)
{
	struct dk_dns_change ch[5];
	const char *owners[5] = { "s1.A.example", "s2.b.example",
	    "bad.c.example", "s3.a.example", "s4.b.example" };
	struct dk_error errs[5];
	struct calls c;
	int status[5];
	size_t i;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(ch, 0, sizeof(ch));
	for (i = 0; i < 5; i++)
		ch[i].owner = owners[i];
	/* The first failure in change order: the foreign record at 1. */
	assert_int_equal(dk_prov_replace_by_zone(&c, ch, 5, status, errs,
	    zone_of, one_zone), DK_EMISMATCH);
	assert_int_equal(c.ncalls, 2);
	assert_string_equal(c.zones[0], "A.example");
	assert_int_equal(c.n[0], 2);
	assert_int_equal(c.idx[0][0], 0);
	assert_int_equal(c.idx[0][1], 3);
	assert_string_equal(c.zones[1], "b.example");
	assert_int_equal(c.n[1], 2);
	assert_int_equal(c.idx[1][0], 1);
	assert_int_equal(c.idx[1][1], 4);
	assert_int_equal(status[0], DK_OK);
	assert_int_equal(status[2], DK_ETEMP);
	assert_non_null(strstr(errs[2].msg, "bad.c.example: no zone"));
	assert_int_equal(status[4], DK_EMISMATCH);
	assert_int_equal(dk_prov_replace_by_zone(&c, ch, 0, status, errs,
	    zone_of, one_zone), DK_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_secret_header_trims_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_secret_header_refuses_with_file_line_and_no_secret,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_file_must_be_absolute,
		    setup, teardown),
		cmocka_unit_test(test_names_compare_without_case_and_final_dot),
		cmocka_unit_test_setup_teardown(test_memo_is_per_section,
		    setup, teardown),
		cmocka_unit_test(
		    test_txt_split_or_quoted_otherwise_is_the_same_record),
		cmocka_unit_test(
		    test_replace_by_zone_groups_in_first_seen_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
