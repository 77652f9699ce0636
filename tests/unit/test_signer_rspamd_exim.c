/*
 * tests/unit/test_signer_rspamd_exim.c — the rspamd and exim signer
 * activators: the files they write, and current() reading them back.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "../../providers/signer/signer.h"
#include "../../providers/signer/signer_priv.h"

/* Test keys (made for this test, protect nothing). */
#define ED1_PEM	"-----BEGIN PRIVATE KEY-----\n" \
	"MC4CAQAwBQYDK2VwBCIEIIyEtCCWW7RA98aU473qUo0+Eki2saTgy1DVERXG//f3\n" \
	"-----END PRIVATE KEY-----\n"
#define ED1_RAW	"jIS0IJZbtED3xpTjvepSjT4SSLaxpODLUNURFcb/9/c=\n"
#define ED2_PEM	"-----BEGIN PRIVATE KEY-----\n" \
	"MC4CAQAwBQYDK2VwBCIEIDmpXz3nCXvWYMzV0T/ErgXSYWrUS1jS1vLBLLxrSy9e\n" \
	"-----END PRIVATE KEY-----\n"
#define ED2_RAW	"OalfPecJe9ZgzNXRP8SuBdJhatRLWNLW8sEsvGtLL14=\n"
/* Not parsed as RSA by the activators: anything not Ed25519 is passed on. */
#define RSA_PEM	"-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n" \
	"-----END PRIVATE KEY-----\n"

struct fix {
	char	dir[64];
	char	keys[96];		/* dkimkeyd's key_dir */
	char	out[96];		/* the file the signer writes */
	char	rdir[96];		/* rspamd's key_dir */
	char	path[8][160];		/* key files */
	struct dk_conf_kv kv[6];
	struct dk_conf_section sec;
	void	*ctx;
	const struct dk_signer_ops *ops;
};

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *
slurp(const char *path)
{
	FILE *fp;
	char *buf;
	long n;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	static const char *const names[8] = {
		"example.com.mail1.1111111111111111.pem",
		"example.com.ed1.2222222222222222.pem",
		"example.com.mail2.3333333333333333.pem",
		"example.com.ed2.4444444444444444.pem",
		"other.test.mail1.5555555555555555.pem",
		"example.com.ed1.6666666666666666.pem",
		"example.com.ed2.7777777777777777.pem",
		"example.com.mail1.8888888888888888.pem",
	};
	static const char *const text[8] = {
		RSA_PEM, ED1_PEM, RSA_PEM, ED2_PEM, RSA_PEM, ED2_PEM, ED1_PEM,
		RSA_PEM,
	};
	int i;

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_signer_re.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->dir);
	snprintf(f->rdir, sizeof(f->rdir), "%s/rspamd", f->dir);
	if (mkdir(f->keys, 0700) == -1 || mkdir(f->rdir, 0700) == -1)
		return -1;
	for (i = 0; i < 8; i++) {
		snprintf(f->path[i], sizeof(f->path[i]), "%s/%s", f->keys,
		    names[i]);
		write_file(f->path[i], text[i], 0600);
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	if (f->ops != NULL && f->ctx != NULL)
		f->ops->close(f->ctx);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
add_kv(struct fix *f, const char *k, const char *v)
{
	struct dk_conf_kv *kv = &f->kv[f->sec.nkv++];

	kv->key = (char *)k;
	kv->value = (char *)v;
	kv->file = (char *)"test.conf";
	kv->line = (int)f->sec.nkv + 1;
}

static void
open_signer(struct fix *f, const char *type, const char *reload)
{
	struct dk_error err = { 0, "" };

	f->sec.kind = (char *)"signer";
	f->sec.name = (char *)"s";
	f->sec.type = (char *)type;
	f->sec.file = (char *)"test.conf";
	f->sec.line = 1;
	f->sec.kv = f->kv;
	f->ops = dk_signer_find(type);
	assert_non_null(f->ops);
	if (strcmp(type, "rspamd") == 0) {
		snprintf(f->out, sizeof(f->out), "%s/dkim_signing.conf",
		    f->dir);
		add_kv(f, "file", f->out);
		add_kv(f, "key_dir", f->rdir);
		if (reload != NULL)
			add_kv(f, "reload", reload);
	} else {
		snprintf(f->out, sizeof(f->out), "%s/dkim.lsearch", f->dir);
		add_kv(f, "file", f->out);
	}
	assert_int_equal(f->ops->open(&f->sec, &f->ctx, &err), DK_OK);
}

static const char *const managed[] = { "mail1", "mail2", "ed1", "ed2" };

/* Activate keys (selector, path index) pairs. */
static int
act(struct fix *f, const char *domain, const char *s1, int k1,
    const char *s2, int k2, struct dk_error *err)
{
	struct dk_signer_key keys[2];

	keys[0].selector = (char *)s1;
	keys[0].keyfile = f->path[k1];
	if (s2 != NULL) {
		keys[1].selector = (char *)s2;
		keys[1].keyfile = f->path[k2];
	}
	return f->ops->activate(f->ctx, domain, DK_MATCH_DOMAIN,
	    managed, 4, keys,
	    s2 != NULL ? 2 : 1, err);
}

/* current(domain) must be exactly (s1, f1)[, (s2, f2)]. */
static void
assert_current(struct fix *f, const char *domain, const char *s1,
    const char *f1, const char *s2, const char *f2)
{
	struct dk_error err = { 0, "" };
	struct dk_signer_key *keys = NULL;
	size_t n = 0;

	assert_int_equal(f->ops->current(f->ctx, domain, &keys, &n, &err),
	    DK_OK);
	assert_int_equal(n, s2 != NULL ? 2 : 1);
	assert_string_equal(keys[0].selector, s1);
	assert_string_equal(keys[0].keyfile, f1);
	if (s2 != NULL) {
		assert_string_equal(keys[1].selector, s2);
		assert_string_equal(keys[1].keyfile, f2);
	}
	dk_signer_keys_free(keys, n);
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_signer_find_knows_rspamd_and_exim(void **state)
{
	assert_ptr_equal(dk_signer_find("rspamd"), &dk_signer_rspamd_ops);
	assert_ptr_equal(dk_signer_find("exim"), &dk_signer_exim_ops);
}

/* rspamd -------------------------------------------------------------- */

static void
test_rspamd_open_refuses_unquotable_paths(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };

	f->sec.kind = (char *)"signer";
	f->sec.name = (char *)"s";
	f->sec.type = (char *)"rspamd";
	f->sec.file = (char *)"test.conf";
	f->sec.line = 7;
	f->sec.kv = f->kv;
	f->ops = dk_signer_find("rspamd");
	add_kv(f, "file", "/var/lib/dkimkeyd/$HOME/dkim.conf");
	assert_int_equal(f->ops->open(&f->sec, &f->ctx, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "test.conf:7:"));
	f->ctx = NULL;
	f->sec.nkv = 0;
	add_kv(f, "file", "relative.conf");
	assert_int_equal(f->ops->open(&f->sec, &f->ctx, &err), DK_ECONFIG);
	f->ctx = NULL;
}

static void
test_rspamd_rsa_entry_names_dkimkeyd_key(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char want[2048], *got;

	open_signer(f, "rspamd", NULL);
	assert_int_equal(act(f, "example.com", "mail1", 0, NULL, 0, &err),
	    DK_OK);
	snprintf(want, sizeof(want),
	    "# Written by dkimkeyd: do not edit.  rspamd's dkim_signing "
	    "reads it\n"
	    "# through this line in local.d/dkim_signing.conf:\n"
	    "#   .include(try=true,priority=1,duplicate=merge) \"%s\"\n"
	    "domain {\n"
	    "  \"example.com\" {\n"
	    "    selectors [\n"
	    "      { selector = \"mail1\"; path = \"%s\"; }\n"
	    "    ]\n"
	    "  }\n"
	    "}\n", f->out, f->path[0]);
	got = slurp(f->out);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	assert_current(f, "example.com", "mail1", f->path[0], NULL, NULL);
	/* No copy for RSA. */
	assert_int_equal(count_entries(f->rdir), 0);
}

static void
test_rspamd_ed25519_copy_is_raw_seed(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct stat st;
	char raw[256], *got;

	open_signer(f, "rspamd", NULL);
	assert_int_equal(act(f, "example.com", "mail1", 0, "ed1", 1, &err),
	    DK_OK);
	snprintf(raw, sizeof(raw), "%s/example.com/example.com.ed1."
	    "2222222222222222.ed25519", f->rdir);
	got = slurp(raw);
	assert_non_null(got);
	assert_string_equal(got, ED1_RAW);
	free(got);
	assert_int_equal(stat(raw, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	got = slurp(f->out);
	assert_non_null(strstr(got, "{ selector = \"ed1\"; path = \""));
	assert_non_null(strstr(got, raw));
	assert_non_null(strstr(got, "# source "));
	free(got);
	/* current reports the key dkimkeyd manages, in activation order. */
	assert_current(f, "example.com", "mail1", f->path[0], "ed1",
	    f->path[1]);
}

static void
test_rspamd_switch_keeps_previous_copy_until_next(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char d[160], *got;

	open_signer(f, "rspamd", NULL);
	snprintf(d, sizeof(d), "%s/example.com", f->rdir);
	assert_int_equal(act(f, "example.com", "mail1", 0, "ed1", 1, &err),
	    DK_OK);
	assert_int_equal(act(f, "example.com", "mail2", 2, "ed2", 3, &err),
	    DK_OK);
	got = slurp(f->out);
	assert_null(strstr(got, "\"mail1\""));
	assert_null(strstr(got, "\"ed1\""));
	free(got);
	assert_current(f, "example.com", "mail2", f->path[2], "ed2",
	    f->path[3]);
	/* rspamd's old workers may still read ed1's copy. */
	assert_int_equal(count_entries(d), 2);
	/* A rerun changes nothing and removes nothing. */
	assert_int_equal(act(f, "example.com", "mail2", 2, "ed2", 3, &err),
	    DK_OK);
	assert_int_equal(count_entries(d), 2);
	/* The next switch destroys the copy two generations back. */
	assert_int_equal(act(f, "example.com", "mail1", 7, "ed1", 5, &err),
	    DK_OK);
	assert_int_equal(count_entries(d), 2);
	{
		char old[256];

		snprintf(old, sizeof(old), "%s/example.com.ed1."
		    "2222222222222222.ed25519", d);
		assert_int_equal(access(old, F_OK), -1);
		snprintf(old, sizeof(old), "%s/example.com.ed2."
		    "4444444444444444.ed25519", d);
		assert_int_equal(access(old, F_OK), 0);
	}
}

static void
test_rspamd_other_domains_kept_and_current_many(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_signer_current cur[3];
	const char *doms[3] = { "other.test", "example.com", "absent.test" };
	size_t i;

	open_signer(f, "rspamd", NULL);
	assert_int_equal(act(f, "other.test", "mail1", 4, NULL, 0, &err),
	    DK_OK);
	assert_int_equal(act(f, "example.com", "mail1", 0, NULL, 0, &err),
	    DK_OK);
	assert_int_equal(act(f, "example.com", "mail2", 2, NULL, 0, &err),
	    DK_OK);
	memset(cur, 0, sizeof(cur));
	assert_int_equal(f->ops->current_many(f->ctx, doms, 3, cur, &err),
	    DK_OK);
	assert_int_equal(cur[0].rc, DK_OK);
	assert_int_equal(cur[0].nkeys, 1);
	assert_string_equal(cur[0].keys[0].keyfile, f->path[4]);
	assert_int_equal(cur[1].rc, DK_OK);
	assert_string_equal(cur[1].keys[0].selector, "mail2");
	assert_int_equal(cur[2].rc, DK_ENOTFOUND);
	for (i = 0; i < 3; i++)
		dk_signer_keys_free(cur[i].keys, cur[i].nkeys);
}

static void
test_rspamd_hand_edited_file_is_corrupt(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_signer_key *keys = NULL;
	size_t n = 0;
	char *got;

	open_signer(f, "rspamd", NULL);
	write_file(f->out, "domain {\n  \"example.com\" {\n"
	    "    selectors [\n      { selector = \"x\"; path = \"/k\"; "
	    "key = \"inline\"; }\n    ]\n  }\n}\n", 0644);
	assert_int_equal(f->ops->current(f->ctx, "example.com", &keys, &n,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, ":4:"));
	/* Not rewritten: the operator's edit stays for them to see. */
	assert_int_equal(act(f, "example.com", "mail1", 0, NULL, 0, &err),
	    DK_ECORRUPT);
	got = slurp(f->out);
	assert_non_null(strstr(got, "inline"));
	free(got);
}

static void
test_rspamd_tampered_copy_is_corrupt(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_signer_key *keys = NULL;
	size_t n = 0;
	char raw[256];

	open_signer(f, "rspamd", NULL);
	assert_int_equal(act(f, "example.com", "ed1", 1, NULL, 0, &err),
	    DK_OK);
	snprintf(raw, sizeof(raw), "%s/example.com/example.com.ed1."
	    "2222222222222222.ed25519", f->rdir);
	write_file(raw, ED2_RAW, 0600);
	assert_int_equal(f->ops->current(f->ctx, "example.com", &keys, &n,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, raw));
	/* And activation never rewrites a copy in place. */
	assert_int_equal(act(f, "example.com", "ed1", 1, NULL, 0, &err),
	    DK_ECORRUPT);
}

static void
test_rspamd_reload_failure_is_temporary(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };

	open_signer(f, "rspamd", "/bin/false");
	assert_int_equal(act(f, "example.com", "mail1", 0, NULL, 0, &err),
	    DK_ETEMP);
	assert_non_null(strstr(err.msg, "/bin/false"));
}

static void
test_rspamd_missing_key_is_corrupt(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };

	open_signer(f, "rspamd", NULL);
	assert_int_equal(unlink(f->path[0]), 0);
	assert_int_equal(act(f, "example.com", "mail1", 0, NULL, 0, &err),
	    DK_ECORRUPT);
	assert_int_equal(access(f->out, F_OK), -1);
}

/* exim ---------------------------------------------------------------- */

static void
test_exim_lines_and_foreign_lines_kept(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char want[2048], *got;

	open_signer(f, "exim", NULL);
	write_file(f->out, "# by hand\nother.org: s1\nother.org/s1: "
	    "/etc/exim4/other.pem\nexample.com.au: x\n", 0640);
	assert_int_equal(act(f, "example.com", "mail1", 0, "ed1", 1, &err),
	    DK_OK);
	snprintf(want, sizeof(want), "# by hand\nother.org: s1\n"
	    "other.org/s1: /etc/exim4/other.pem\nexample.com.au: x\n"
	    "example.com: mail1 : ed1\n"
	    "example.com/mail1: %s\n"
	    "example.com/ed1: %s\n"
	    "@example.com: example.com\n", f->path[0], f->path[1]);
	got = slurp(f->out);
	assert_string_equal(got, want);
	free(got);
	assert_current(f, "example.com", "mail1", f->path[0], "ed1",
	    f->path[1]);
	assert_current(f, "other.org", "s1", "/etc/exim4/other.pem", NULL,
	    NULL);
	/* The switch replaces every line of the domain, and only those. */
	assert_int_equal(act(f, "example.com", "mail2", 2, NULL, 0, &err),
	    DK_OK);
	snprintf(want, sizeof(want), "# by hand\nother.org: s1\n"
	    "other.org/s1: /etc/exim4/other.pem\nexample.com.au: x\n"
	    "example.com: mail2\n"
	    "example.com/mail2: %s\n"
	    "@example.com: example.com\n", f->path[2]);
	got = slurp(f->out);
	assert_string_equal(got, want);
	free(got);
	assert_current(f, "example.com", "mail2", f->path[2], NULL, NULL);
}

static void
test_exim_current_many_and_errors(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_signer_current cur[3];
	const char *doms[3] = { "a.test", "b.test", "c.test" };
	size_t i;

	open_signer(f, "exim", NULL);
	write_file(f->out, "a.test: s1 : s2\na.test/s1: /k/1.pem\n"
	    "a.test/s2: /k/2.pem\nb.test: s1\n", 0644);
	memset(cur, 0, sizeof(cur));
	assert_int_equal(f->ops->current_many(f->ctx, doms, 3, cur, &err),
	    DK_OK);
	assert_int_equal(cur[0].rc, DK_OK);
	assert_int_equal(cur[0].nkeys, 2);
	assert_string_equal(cur[0].keys[1].selector, "s2");
	assert_string_equal(cur[0].keys[1].keyfile, "/k/2.pem");
	assert_int_equal(cur[1].rc, DK_ECORRUPT);
	assert_non_null(strstr(cur[1].err.msg, "b.test/s1"));
	assert_int_equal(cur[2].rc, DK_ENOTFOUND);
	for (i = 0; i < 3; i++)
		dk_signer_keys_free(cur[i].keys, cur[i].nkeys);
}

static void
test_exim_refuses_unsafe_key_path(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_signer_key k = { (char *)"mail1", (char *)"/k/a b.pem" };

	open_signer(f, "exim", NULL);
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed, 4,
	    &k, 1, &err), DK_EINVAL);
	k.keyfile = (char *)"/k/a:b.pem";
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed, 4,
	    &k, 1, &err), DK_EINVAL);
	assert_int_equal(access(f->out, F_OK), -1);
}

static void
test_exim_missing_key_is_corrupt(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };

	open_signer(f, "exim", NULL);
	assert_int_equal(unlink(f->path[0]), 0);
	assert_int_equal(act(f, "example.com", "mail1", 0, NULL, 0, &err),
	    DK_ECORRUPT);
	assert_int_equal(access(f->out, F_OK), -1);
}

/* match =: the @ and *. lines follow the setting, and only ours go. */
static void
test_exim_match_lines(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_signer_key k = { (char *)"mail1", NULL };
	char want[2048], *got;

	open_signer(f, "exim", NULL);
	write_file(f->out, "@other.org: other.org\n*.other.org: other.org\n"
	    "*.sub.example.com: x\n", 0640);
	k.keyfile = f->path[0];
	assert_int_equal(f->ops->activate(f->ctx, "example.com",
	    DK_MATCH_SUBDOMAINS, managed, 4, &k, 1, &err), DK_OK);
	snprintf(want, sizeof(want), "@other.org: other.org\n"
	    "*.other.org: other.org\n*.sub.example.com: x\n"
	    "example.com: mail1\nexample.com/mail1: %s\n"
	    "*.example.com: example.com\n", f->path[0]);
	got = slurp(f->out);
	assert_string_equal(got, want);
	free(got);
	assert_current(f, "example.com", "mail1", f->path[0], NULL, NULL);
	assert_int_equal(f->ops->activate(f->ctx, "example.com",
	    DK_MATCH_BOTH, managed, 4, &k, 1, &err), DK_OK);
	snprintf(want, sizeof(want), "@other.org: other.org\n"
	    "*.other.org: other.org\n*.sub.example.com: x\n"
	    "example.com: mail1\nexample.com/mail1: %s\n"
	    "@example.com: example.com\n*.example.com: example.com\n",
	    f->path[0]);
	got = slurp(f->out);
	assert_string_equal(got, want);
	free(got);
	/* Back to domain: the wildcard line goes. */
	assert_int_equal(f->ops->activate(f->ctx, "example.com",
	    DK_MATCH_DOMAIN, managed, 4, &k, 1, &err), DK_OK);
	snprintf(want, sizeof(want), "@other.org: other.org\n"
	    "*.other.org: other.org\n*.sub.example.com: x\n"
	    "example.com: mail1\nexample.com/mail1: %s\n"
	    "@example.com: example.com\n", f->path[0]);
	got = slurp(f->out);
	assert_string_equal(got, want);
	free(got);
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_signer_find_knows_rspamd_and_exim),
		T(test_rspamd_open_refuses_unquotable_paths),
		T(test_rspamd_rsa_entry_names_dkimkeyd_key),
		T(test_rspamd_ed25519_copy_is_raw_seed),
		T(test_rspamd_switch_keeps_previous_copy_until_next),
		T(test_rspamd_other_domains_kept_and_current_many),
		T(test_rspamd_hand_edited_file_is_corrupt),
		T(test_rspamd_tampered_copy_is_corrupt),
		T(test_rspamd_reload_failure_is_temporary),
		T(test_rspamd_missing_key_is_corrupt),
		T(test_exim_lines_and_foreign_lines_kept),
		T(test_exim_current_many_and_errors),
		T(test_exim_refuses_unsafe_key_path),
		T(test_exim_missing_key_is_corrupt),
		T(test_exim_match_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
