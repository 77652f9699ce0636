/* tests/unit/test_signer.c — signer activators: opendkim, files, reload. */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "unit.h"

#include "../../providers/signer/signer.h"
#include "../../providers/signer/signer_priv.h"
#include "../../providers/signer/table.h"

struct fix {
	char	dir[64];
	char	kt[128];		/* KeyTable */
	char	st[128];		/* SigningTable */
	char	lock[160];		/* KeyTable.lock */
	char	marker[128];
	char	reload[512];
	struct dk_conf_kv kv[6];
	struct dk_conf_section sec;
	void	*ctx;
	const struct dk_signer_ops *ops;
};

static const char *const managed[] = { "mail1", "mail2" };

#define KEY1	"/var/lib/dkimkeyd/keys/example.com/mail1.pem"
#define KEY2	"/var/lib/dkimkeyd/keys/example.com/mail2.pem"
#define KT1	"mail1._domainkey.example.com example.com:mail1:" KEY1 "\n"
#define ST1	"*@example.com mail1._domainkey.example.com\n"
#define KT2	"mail2._domainkey.example.com example.com:mail2:" KEY2 "\n"
#define ST2	"*@example.com mail2._domainkey.example.com\n"

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_signer.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->kt, sizeof(f->kt), "%s/KeyTable", f->dir);
	snprintf(f->st, sizeof(f->st), "%s/SigningTable", f->dir);
	snprintf(f->lock, sizeof(f->lock), "%s/KeyTable.lock", f->dir);
	snprintf(f->marker, sizeof(f->marker), "%s/marker", f->dir);
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
write_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* The file's bytes as a string; NULL when missing. */
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

static void
assert_file(const char *path, const char *want)
{
	char *got = slurp(path);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static mode_t
file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Nothing but the named files is left in the directory. */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
add_kv(struct fix *f, const char *key, const char *value)
{
	struct dk_conf_kv *kv = &f->kv[f->sec.nkv++];

	kv->key = (char *)key;
	kv->value = (char *)value;
	kv->file = (char *)"test.conf";
	kv->line = (int)f->sec.nkv + 1;
}

static void
init_sec(struct fix *f, const char *type)
{
	memset(&f->sec, 0, sizeof(f->sec));
	memset(f->kv, 0, sizeof(f->kv));
	f->sec.kind = (char *)"signer";
	f->sec.name = (char *)"mta";
	f->sec.type = (char *)type;
	f->sec.file = (char *)"test.conf";
	f->sec.line = 1;
	f->sec.kv = f->kv;
	f->ops = dk_signer_find(type);
	assert_non_null(f->ops);
}

static int
open_sec(struct fix *f, struct dk_error *err)
{
	return f->ops->open(&f->sec, &f->ctx, err);
}

/* An opendkim activator on the fixture's tables, with reload if given. */
static void
open_opendkim(struct fix *f, const char *reload)
{
	struct dk_error err = { 0 };

	init_sec(f, "opendkim");
	add_kv(f, "key_table", f->kt);
	add_kv(f, "signing_table", f->st);
	if (reload != NULL) {
		snprintf(f->reload, sizeof(f->reload), "%s", reload);
		add_kv(f, "reload", f->reload);
	}
	assert_int_equal(open_sec(f, &err), DK_OK);
}

static int
activate(struct fix *f, const char *domain, const char *sel,
    const char *key, struct dk_error *err)
{
	struct dk_signer_key k = { (char *)sel, (char *)key };

	return f->ops->activate(f->ctx, domain, DK_MATCH_DOMAIN,
	    managed, 2, &k, 1, err);
}

/* Two keys at once: a dual-algorithm domain (RSA, then Ed25519). */
static int
activate2(struct fix *f, const char *domain, const char *sel1,
    const char *key1, const char *sel2, const char *key2,
    struct dk_error *err)
{
	static const char *const managed4[] = { "mail1", "mail2", "ed1",
	    "ed2" };
	struct dk_signer_key k[2] = {
		{ (char *)sel1, (char *)key1 },
		{ (char *)sel2, (char *)key2 },
	};

	return f->ops->activate(f->ctx, domain, DK_MATCH_DOMAIN,
	    managed4, 4, k, 2, err);
}

/*
 * The signer's single key for domain (as before dual algorithms): the
 * strings are handed over to the caller; a second key fails the test.
 */
static int
current1(struct fix *f, const char *domain, char **sel, char **key,
    struct dk_error *err)
{
	struct dk_signer_key *keys = NULL;
	size_t n = 0;
	int rc;

	if ((rc = f->ops->current(f->ctx, domain, &keys, &n, err)) != DK_OK)
		return rc;
	assert_int_equal(n, 1);
	*sel = keys[0].selector;
	*key = keys[0].keyfile;
	free(keys);
	return rc;
}

/* One key with match m. */
static int
activate_m(struct fix *f, const char *domain, enum dk_match m,
    const char *sel, const char *key, struct dk_error *err)
{
	struct dk_signer_key k = { (char *)sel, (char *)key };

	return f->ops->activate(f->ctx, domain, m, managed, 2, &k, 1, err);
}

/* match = subdomains and domain-and-subdomains: the pattern lines. */
static void
test_opendkim_match_lines_and_current(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *sel = NULL, *key = NULL;

	open_opendkim(f, NULL);
	assert_int_equal(activate_m(f, "example.com", DK_MATCH_SUBDOMAINS,
	    "mail1", KEY1, &err), DK_OK);
	assert_file(f->st, "*@*.example.com mail1._domainkey.example.com\n");
	assert_file(f->kt, KT1);
	assert_int_equal(current1(f, "example.com", &sel, &key, &err), DK_OK);
	assert_string_equal(sel, "mail1");
	assert_string_equal(key, KEY1);
	free(sel);
	free(key);
	/* Both lines, one key as current sees it. */
	assert_int_equal(activate_m(f, "example.com", DK_MATCH_BOTH, "mail2",
	    KEY2, &err), DK_OK);
	assert_file(f->st, "*@example.com mail2._domainkey.example.com\n"
	    "*@*.example.com mail2._domainkey.example.com\n");
	assert_int_equal(current1(f, "example.com", &sel, &key, &err), DK_OK);
	assert_string_equal(sel, "mail2");
	assert_string_equal(key, KEY2);
	free(sel);
	free(key);
	assert_int_equal(activate_m(f, "example.com", DK_MATCH_DOMAIN, "mail1",
	    KEY1, &err), DK_OK);
	assert_file(f->st, ST1);
}

/*
 * OpenDKIM signs with the first line that matches: whichever domain is
 * switched first, a more specific line ends up above the wildcard of a
 * parent, and every one of ours above a catch-all the operator wrote;
 * other lines keep their place.
 */
static void
test_opendkim_match_more_specific_line_first(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	static const char want[] =
	    "# by hand\n"
	    "*@a.sub.example.com mail1._domainkey.a.sub.example.com\n"
	    "*@*.sub.example.com mail1._domainkey.sub.example.com\n"
	    "*@example.com mail2._domainkey.example.com\n"
	    "*@*.example.com mail2._domainkey.example.com\n"
	    "*@* default._domainkey.fallback.example\n";
	int order;

	for (order = 0; order < 2; order++) {
		write_file(f->st, "# by hand\n*@* default._domainkey."
		    "fallback.example\n", 0644);
		write_file(f->kt, "", 0644);
		open_opendkim(f, NULL);
		if (order == 0) {
			assert_int_equal(activate_m(f, "example.com",
			    DK_MATCH_BOTH, "mail1", KEY1, &err), DK_OK);
			assert_int_equal(activate_m(f, "sub.example.com",
			    DK_MATCH_SUBDOMAINS, "mail1", KEY1, &err), DK_OK);
			assert_int_equal(activate_m(f, "a.sub.example.com",
			    DK_MATCH_DOMAIN, "mail1", KEY1, &err), DK_OK);
		} else {
			assert_int_equal(activate_m(f, "a.sub.example.com",
			    DK_MATCH_DOMAIN, "mail1", KEY1, &err), DK_OK);
			assert_int_equal(activate_m(f, "sub.example.com",
			    DK_MATCH_SUBDOMAINS, "mail1", KEY1, &err), DK_OK);
			assert_int_equal(activate_m(f, "example.com",
			    DK_MATCH_BOTH, "mail1", KEY1, &err), DK_OK);
		}
		/* A rotation of the parent keeps the order. */
		assert_int_equal(activate_m(f, "example.com", DK_MATCH_BOTH,
		    "mail2", KEY2, &err), DK_OK);
		assert_file(f->st, want);
		f->ops->close(f->ctx);
		f->ctx = NULL;
	}
}

static void
test_signer_find_knows_builtin_types(void **state)
{
	assert_ptr_equal(dk_signer_find("opendkim"), &dk_signer_opendkim_ops);
	assert_ptr_equal(dk_signer_find("files"), &dk_signer_files_ops);
	assert_null(dk_signer_find("milter"));
	assert_null(dk_signer_find(NULL));
}

static void
test_opendkim_activate_creates_missing_tables(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	assert_file(f->kt, KT1);
	assert_file(f->st, ST1);
	assert_int_equal(file_mode(f->kt), 0644);
	assert_int_equal(file_mode(f->st), 0644);
	/* No temporary file left behind; the lock file stays. */
	assert_int_equal(count_entries(f->dir), 3);
	assert_int_equal(file_mode(f->lock), 0600);
}

static void
test_opendkim_activate_into_empty_tables(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	write_file(f->kt, "", 0644);
	write_file(f->st, "", 0644);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	assert_file(f->kt, KT1);
	assert_file(f->st, ST1);
}

static void
test_opendkim_activate_preserves_foreign_lines_exactly(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	const char *kt =
	    "# OpenDKIM KeyTable\n"
	    "\n"
	    "s1._domainkey.other.org   other.org:s1:/etc/keys/other.pem\n"
	    "  # indented comment mentions mail1._domainkey.example.com\n"
	    "sel._domainkey.example.com example.com:sel:/etc/keys/x.pem\r\n"
	    "last._domainkey.third.net third.net:last:/k/t.pem";
	const char *st =
	    "# refile\n"
	    "*@other.org\ts1._domainkey.other.org\n"
	    "\n"
	    "*@third.net last._domainkey.third.net";

	write_file(f->kt, kt, 0644);
	write_file(f->st, st, 0644);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	/* A missing final newline is added before the new line only. */
	assert_file(f->kt,
	    "# OpenDKIM KeyTable\n"
	    "\n"
	    "s1._domainkey.other.org   other.org:s1:/etc/keys/other.pem\n"
	    "  # indented comment mentions mail1._domainkey.example.com\n"
	    "sel._domainkey.example.com example.com:sel:/etc/keys/x.pem\r\n"
	    "last._domainkey.third.net third.net:last:/k/t.pem\n"
	    KT1);
	assert_file(f->st,
	    "# refile\n"
	    "*@other.org\ts1._domainkey.other.org\n"
	    "\n"
	    "*@third.net last._domainkey.third.net\n"
	    ST1);
}

static void
test_opendkim_switch_removes_only_old_managed_lines(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	const char *kt =
	    "MAIL1._domainkey.Example.COM example.com:mail1:/old/k.pem\n"
	    "mail1._domainkey.example.net example.net:mail1:/n/k.pem\n"
	    "mail3._domainkey.example.com example.com:mail3:/x/k.pem\n";
	const char *st =
	    "*@example.net mail1._domainkey.example.net\n"
	    "*@example.com MAIL1._domainkey.Example.COM\n"
	    "*@sub.example.com mail3._domainkey.example.com\n";

	write_file(f->kt, kt, 0644);
	write_file(f->st, st, 0644);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	assert_int_equal(activate(f, "example.com", "mail2", KEY2, &err),
	    DK_OK);
	assert_file(f->kt,
	    "mail1._domainkey.example.net example.net:mail1:/n/k.pem\n"
	    "mail3._domainkey.example.com example.com:mail3:/x/k.pem\n"
	    KT2);
	assert_file(f->st,
	    "*@example.net mail1._domainkey.example.net\n"
	    "*@sub.example.com mail3._domainkey.example.com\n"
	    ST2);
}

static void
test_opendkim_activate_is_idempotent(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *kt1, *st1;

	write_file(f->kt, "# keys\nmail2._domainkey.example.com "
	    "example.com:mail2:/o.pem\nx._domainkey.a.org a.org:x:/a", 0644);
	write_file(f->st, "*@a.org x._domainkey.a.org", 0644);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	kt1 = slurp(f->kt);
	st1 = slurp(f->st);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	assert_file(f->kt, kt1);
	assert_file(f->st, st1);
	assert_file(f->kt, "# keys\nx._domainkey.a.org a.org:x:/a\n" KT1);
	free(kt1);
	free(st1);
}

static void
test_opendkim_activate_keeps_file_mode(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	write_file(f->kt, "# keys\n", 0640);
	write_file(f->st, "# signing\n", 0600);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	assert_int_equal(file_mode(f->kt), 0640);
	assert_int_equal(file_mode(f->st), 0600);
	assert_file(f->kt, "# keys\n" KT1);
}

static void
test_opendkim_activate_rejects_nul_byte(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	int fd;

	fd = open(f->kt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a\0b\n", 4), 4);
	close(fd);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, f->kt));
	/* Neither table was touched. */
	assert_null(slurp(f->st));
}

static void
test_opendkim_activate_rejects_overlong_line(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *big = malloc(100000);

	assert_non_null(big);
	memset(big, 'a', 99998);
	big[99998] = '\n';
	big[99999] = '\0';
	write_file(f->st, big, 0644);
	free(big);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, f->st));
}

static void
test_opendkim_activate_refuses_symlinked_table(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char real[160];

	snprintf(real, sizeof(real), "%s/real", f->dir);
	write_file(real, "# real\n", 0644);
	assert_int_equal(symlink(real, f->kt), 0);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_EUNSAFE);
	assert_file(real, "# real\n");
}

static void
test_opendkim_activate_rejects_bad_key_path(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1",
	    "relative/k.pem", &err), DK_EINVAL);
	assert_int_equal(activate(f, "example.com", "mail1",
	    "/k:ey.pem", &err), DK_EINVAL);
	assert_int_equal(activate(f, "example.com", "mail 1", KEY1, &err),
	    DK_EINVAL);
	assert_null(slurp(f->kt));
}

static void
test_opendkim_current_reads_back_active_key(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *sel = NULL, *key = NULL;

	write_file(f->st, "# x\n*@example.com example\n", 0644);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail2", KEY2, &err),
	    DK_OK);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_OK);
	assert_string_equal(sel, "mail2");
	assert_string_equal(key, KEY2);
	free(sel);
	free(key);
}

static void
test_opendkim_current_not_found(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *sel = NULL, *key = NULL;

	open_opendkim(f, NULL);
	/* Missing tables. */
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ENOTFOUND);
	/* Only another domain, and a key name not shaped SEL._domainkey. */
	write_file(f->st, "*@example.net mail1._domainkey.example.net\n"
	    "*@example.com example\n", 0644);
	write_file(f->kt, "example example.com:x:/k.pem\n", 0644);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ENOTFOUND);
	assert_null(sel);
	assert_null(key);
}

static void
test_opendkim_current_signing_entry_without_key_is_corrupt(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *sel = NULL, *key = NULL;

	write_file(f->st, "# one\n" ST1, 0644);
	write_file(f->kt, KT2, 0644);
	open_opendkim(f, NULL);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, f->st));
	assert_non_null(strstr(err.msg, ":2:"));
	assert_null(sel);
}

static void
test_opendkim_current_malformed_key_value_is_corrupt(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char *sel = NULL, *key = NULL;

	write_file(f->st, ST1, 0644);
	write_file(f->kt, "mail1._domainkey.example.com example.com:mail1\n",
	    0644);
	open_opendkim(f, NULL);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, f->kt));
}

static void
test_opendkim_open_requires_absolute_tables(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	init_sec(f, "opendkim");
	add_kv(f, "key_table", f->kt);
	assert_int_equal(open_sec(f, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "signing_table"));

	init_sec(f, "opendkim");
	add_kv(f, "key_table", "KeyTable");
	add_kv(f, "signing_table", f->st);
	assert_int_equal(open_sec(f, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "test.conf:2:"));
	assert_null(f->ctx);
}

static void
test_opendkim_open_rejects_unknown_key(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	init_sec(f, "opendkim");
	add_kv(f, "key_table", f->kt);
	add_kv(f, "signing_table", f->st);
	add_kv(f, "dir", "/tmp");
	assert_int_equal(open_sec(f, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "dir"));
	assert_null(f->ctx);
}

static void
test_opendkim_open_rejects_relative_reload(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	init_sec(f, "opendkim");
	add_kv(f, "key_table", f->kt);
	add_kv(f, "signing_table", f->st);
	add_kv(f, "reload", "opendkim-reload now");
	assert_int_equal(open_sec(f, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "opendkim-reload"));
	assert_null(f->ctx);
}

static void
test_opendkim_reload_runs_after_switch(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char cmd[512];

	/* The reload sees the new SigningTable: it ran after the switch. */
	snprintf(cmd, sizeof(cmd), "/bin/sh -c \"cat %s > %s\"", f->st,
	    f->marker);
	open_opendkim(f, cmd);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	assert_file(f->marker, ST1);
}

static void
test_opendkim_reload_failure_is_temporary(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	open_opendkim(f, "/bin/false");
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_ETEMP);
	assert_non_null(strstr(err.msg, "'/bin/false' exited with status 1"));
	/* The tables are switched; a rerun only repeats the reload. */
	assert_file(f->st, ST1);
}

static void
test_signer_run_succeeds_on_exit_zero(void **state)
{
	char *argv[] = { (char *)"/bin/true", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_OK);
}

static void
test_signer_run_reports_exit_status(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"exit 3",
	    NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_ETEMP);
	assert_string_equal(err.msg,
	    "reload command '/bin/sh' exited with status 3");
}

static void
test_signer_run_quotes_first_stderr_line(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"printf '\\n  opendkim: \\033[31mbad\\n"
	    "second line\\n' >&2; exit 2", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_ETEMP);
	/* Control characters are not echoed to the terminal or log. */
	assert_string_equal(err.msg, "reload command '/bin/sh' exited with "
	    "status 2: opendkim: ?[31mbad");
}

static void
test_signer_run_reports_signal(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"kill -9 $$", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_ETEMP);
	assert_non_null(strstr(err.msg, "signal 9"));
}

static void
test_signer_run_rejects_relative_command(void **state)
{
	char *argv[] = { (char *)"true", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "absolute"));
}

static void
test_signer_run_reports_exec_failure(void **state)
{
	char *argv[] = { (char *)"/nonexistent/reload", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/reload"));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
}

static void
test_signer_run_stdin_is_dev_null(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"[ \"$(readlink /proc/self/fd/0)\" = /dev/null ]", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run(argv, &err), DK_OK);
}

/* A files activator writing into DIR/out. */
static void
open_files(struct fix *f, char *out, size_t outlen)
{
	struct dk_error err = { 0 };

	snprintf(out, outlen, "%s/out", f->dir);
	assert_int_equal(mkdir(out, 0755), 0);
	init_sec(f, "files");
	add_kv(f, "dir", out);
	assert_int_equal(open_sec(f, &err), DK_OK);
}

static void
test_files_activate_writes_index_and_key_copy(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], src[128], path[192], copy[192], want[512];
	char *sel = NULL, *key = NULL;

	snprintf(src, sizeof(src), "%s/mail1.pem", f->dir);
	write_file(src, "-----BEGIN PRIVATE KEY-----\nAAAA\n", 0600);
	open_files(f, out, sizeof(out));
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_OK);
	/* The copy is named like its source (by key id in key_dir). */
	snprintf(copy, sizeof(copy), "%s/mail1.pem", out);
	snprintf(path, sizeof(path), "%s/example.com.keys", out);
	snprintf(want, sizeof(want), "mail1 %s\n", copy);
	assert_file(path, want);
	assert_int_equal(file_mode(path), 0644);
	assert_file(copy, "-----BEGIN PRIVATE KEY-----\nAAAA\n");
	assert_int_equal(file_mode(copy), 0600);
	assert_int_equal(count_entries(out), 2);

	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_OK);
	assert_string_equal(sel, "mail1");
	assert_string_equal(key, copy);
	free(sel);
	free(key);
}

static void
test_files_key_copy_readable_by_group_only(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], src[128], path[192];

	snprintf(src, sizeof(src), "%s/mail1.pem", f->dir);
	write_file(src, "key\n", 0644);
	open_files(f, out, sizeof(out));
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_OK);
	snprintf(path, sizeof(path), "%s/mail1.pem", out);
	assert_int_equal(file_mode(path), 0640);
}

/*
 * A switch keeps the copy the previous index named for one more switch
 * (a reader that read the index just before the rename still finds its
 * key), and the switch after removes it; a rerun keeps what it kept.
 */
static void
test_files_switch_keeps_previous_copy_one_switch(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], s1[128], s2[128], s3[128], idx[192], want[512];

	snprintf(s1, sizeof(s1), "%s/k1.pem", f->dir);
	snprintf(s2, sizeof(s2), "%s/k2.pem", f->dir);
	snprintf(s3, sizeof(s3), "%s/k3.pem", f->dir);
	write_file(s1, "key one\n", 0600);
	write_file(s2, "key two\n", 0600);
	write_file(s3, "key three\n", 0600);
	open_files(f, out, sizeof(out));
	snprintf(idx, sizeof(idx), "%s/example.com.keys", out);
	assert_int_equal(activate(f, "example.com", "mail1", s1, &err),
	    DK_OK);
	assert_int_equal(activate(f, "example.com", "mail2", s2, &err),
	    DK_OK);
	assert_int_equal(activate(f, "example.com", "mail2", s2, &err),
	    DK_OK);
	snprintf(want, sizeof(want), "mail2 %s/k2.pem\n# kept %s/k1.pem\n",
	    out, out);
	assert_file(idx, want);
	assert_int_equal(count_entries(out), 3);
	assert_int_equal(activate(f, "example.com", "mail1", s3, &err),
	    DK_OK);
	snprintf(want, sizeof(want), "mail1 %s/k3.pem\n# kept %s/k2.pem\n",
	    out, out);
	assert_file(idx, want);
	/* k1.pem is gone: no index names or keeps it. */
	assert_int_equal(count_entries(out), 3);
	snprintf(want, sizeof(want), "%s/k1.pem", out);
	assert_int_equal(access(want, F_OK), -1);
}

/* A copy is never rewritten under a name an index may have named. */
static void
test_files_refuses_to_rewrite_a_copy(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], src[128], path[192];

	snprintf(src, sizeof(src), "%s/mail1.pem", f->dir);
	write_file(src, "new key\n", 0600);
	open_files(f, out, sizeof(out));
	snprintf(path, sizeof(path), "%s/mail1.pem", out);
	write_file(path, "old key\n", 0600);
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, path));
	assert_file(path, "old key\n");
	snprintf(path, sizeof(path), "%s/example.com.keys", out);
	assert_int_equal(access(path, F_OK), -1);
}

static void
test_files_activate_refuses_missing_key(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], src[128];

	snprintf(src, sizeof(src), "%s/absent.pem", f->dir);
	open_files(f, out, sizeof(out));
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, src));
	assert_int_equal(count_entries(out), 0);
}

static void
test_files_current_not_found(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], path[192], text[512];
	char *sel = NULL, *key = NULL;

	open_files(f, out, sizeof(out));
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ENOTFOUND);
	/* An index naming a missing key is corrupt. */
	snprintf(path, sizeof(path), "%s/example.com.keys", out);
	snprintf(text, sizeof(text), "mail1 %s/gone.pem\n", out);
	write_file(path, text, 0644);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "gone.pem"));
	/* So is a line that is not SELECTOR KEYFILE, named by line. */
	write_file(path, "# a comment\nmail1\n", 0644);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "example.com.keys:2:"));
	/* Without an index, the legacy pair: a selector file without its
	 * key is corrupt. */
	unlink(path);
	snprintf(path, sizeof(path), "%s/example.com.selector", out);
	write_file(path, "mail1\n", 0644);
	assert_int_equal(current1(f, "example.com", &sel, &key,
	    &err), DK_ECORRUPT);
	assert_null(sel);
	assert_null(key);
}

/*
 * Migration: legacy = yes also writes DOMAIN.selector and DOMAIN.key;
 * without it an activation deletes them; current reads them while no
 * index exists.
 */
static void
test_files_legacy_pair_written_read_and_removed(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], src[128], path[192], idx[192];
	char *sel = NULL, *key = NULL;

	snprintf(src, sizeof(src), "%s/mail1.pem", f->dir);
	write_file(src, "key one\n", 0600);
	snprintf(out, sizeof(out), "%s/out", f->dir);
	assert_int_equal(mkdir(out, 0755), 0);
	/* A pair left by an older dkimkeyd: current reads it. */
	snprintf(path, sizeof(path), "%s/example.com.selector", out);
	write_file(path, "mail0\n", 0644);
	snprintf(path, sizeof(path), "%s/example.com.key", out);
	write_file(path, "old\n", 0600);
	init_sec(f, "files");
	add_kv(f, "dir", out);
	add_kv(f, "legacy", "yes");
	assert_int_equal(open_sec(f, &err), DK_OK);
	assert_int_equal(current1(f, "example.com", &sel, &key, &err),
	    DK_OK);
	assert_string_equal(sel, "mail0");
	assert_string_equal(key, path);
	free(sel);
	free(key);
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_OK);
	assert_file(path, "key one\n");
	snprintf(path, sizeof(path), "%s/example.com.selector", out);
	assert_file(path, "mail1\n");
	snprintf(idx, sizeof(idx), "%s/example.com.keys", out);
	assert_int_equal(access(idx, F_OK), 0);
	assert_int_equal(count_entries(out), 4);
	f->ops->close(f->ctx);
	f->ctx = NULL;

	init_sec(f, "files");
	add_kv(f, "dir", out);
	add_kv(f, "legacy", "no");
	assert_int_equal(open_sec(f, &err), DK_OK);
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_OK);
	assert_int_equal(count_entries(out), 2);	/* index, copy */
	f->ops->close(f->ctx);
	f->ctx = NULL;

	init_sec(f, "files");
	add_kv(f, "dir", out);
	add_kv(f, "legacy", "maybe");
	assert_int_equal(open_sec(f, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "test.conf:3: legacy = maybe"));
}

static void
test_files_reload_runs(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128], src[128], cmd[512];

	snprintf(src, sizeof(src), "%s/mail1.pem", f->dir);
	write_file(src, "key\n", 0600);
	snprintf(out, sizeof(out), "%s/out", f->dir);
	assert_int_equal(mkdir(out, 0755), 0);
	snprintf(cmd, sizeof(cmd), "/bin/sh -c \"echo x > %s\"", f->marker);
	init_sec(f, "files");
	add_kv(f, "dir", out);
	add_kv(f, "reload", cmd);
	assert_int_equal(open_sec(f, &err), DK_OK);
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_OK);
	assert_file(f->marker, "x\n");
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

/* --- dual algorithms (RFC 8463): two keys switched together --- */

#define KEYE1	"/var/lib/dkimkeyd/keys/example.com/ed1.pem"
#define KEYE2	"/var/lib/dkimkeyd/keys/example.com/ed2.pem"

static void
test_opendkim_activate_two_keys_writes_both_lines(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_signer_key *keys = NULL;
	size_t n = 0;

	write_file(f->st, "# mine\n*@other.org x._domainkey.other.org\n", 0644);
	open_opendkim(f, NULL);
	assert_int_equal(activate2(f, "example.com", "mail1", KEY1, "ed1",
	    KEYE1, &err), DK_OK);
	assert_file(f->kt,
	    "mail1._domainkey.example.com example.com:mail1:" KEY1 "\n"
	    "ed1._domainkey.example.com example.com:ed1:" KEYE1 "\n");
	/* One SigningTable line per key: OpenDKIM with MultipleSignatures
	 * signs with both. */
	assert_file(f->st, "# mine\n*@other.org x._domainkey.other.org\n"
	    "*@example.com mail1._domainkey.example.com\n"
	    "*@example.com ed1._domainkey.example.com\n");
	assert_int_equal(f->ops->current(f->ctx, "example.com", &keys, &n,
	    &err), DK_OK);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].selector, "mail1");
	assert_string_equal(keys[0].keyfile, KEY1);
	assert_string_equal(keys[1].selector, "ed1");
	assert_string_equal(keys[1].keyfile, KEYE1);
	dk_signer_keys_free(keys, n);

	/* The next generation replaces both, leaving no line behind. */
	assert_int_equal(activate2(f, "example.com", "mail2", KEY2, "ed2",
	    KEYE2, &err), DK_OK);
	assert_file(f->kt,
	    "mail2._domainkey.example.com example.com:mail2:" KEY2 "\n"
	    "ed2._domainkey.example.com example.com:ed2:" KEYE2 "\n");
	assert_file(f->st, "# mine\n*@other.org x._domainkey.other.org\n"
	    "*@example.com mail2._domainkey.example.com\n"
	    "*@example.com ed2._domainkey.example.com\n");
}

static void
test_opendkim_activate_one_key_drops_managed_second_key(void **state)
{
	static const char *const managed4[] = { "mail1", "mail2", "ed1",
	    "ed2" };
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_signer_key k = { (char *)"mail1", (char *)KEY1 };

	open_opendkim(f, NULL);
	assert_int_equal(activate2(f, "example.com", "mail2", KEY2, "ed2",
	    KEYE2, &err), DK_OK);
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed4, 4,
	    &k, 1, &err), DK_OK);
	assert_file(f->kt, KT1);
	assert_file(f->st, ST1);
}

static void
test_signer_activate_refuses_empty_key_list(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128];

	open_opendkim(f, NULL);
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed, 2,
	    NULL, 0, &err), DK_EINVAL);
	f->ops->close(f->ctx);
	f->ctx = NULL;
	open_files(f, out, sizeof(out));
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed, 2,
	    NULL, 0, &err), DK_EINVAL);
	assert_int_equal(count_entries(out), 0);
}

static void
test_files_activate_two_keys_names_both_in_one_index(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_signer_key *keys = NULL;
	char out[128], src1[128], src2[128], path[192], want[512];
	size_t n = 0;

	snprintf(src1, sizeof(src1), "%s/mail1.pem", f->dir);
	snprintf(src2, sizeof(src2), "%s/ed1.pem", f->dir);
	write_file(src1, "RSA KEY\n", 0600);
	write_file(src2, "ED KEY\n", 0600);
	open_files(f, out, sizeof(out));
	assert_int_equal(activate2(f, "example.com", "mail1", src1, "ed1",
	    src2, &err), DK_OK);
	snprintf(path, sizeof(path), "%s/example.com.keys", out);
	snprintf(want, sizeof(want), "mail1 %s/mail1.pem\ned1 %s/ed1.pem\n",
	    out, out);
	assert_file(path, want);
	snprintf(path, sizeof(path), "%s/ed1.pem", out);
	assert_file(path, "ED KEY\n");
	assert_int_equal(file_mode(path), 0600);
	assert_int_equal(count_entries(out), 3);

	assert_int_equal(f->ops->current(f->ctx, "example.com", &keys, &n,
	    &err), DK_OK);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].selector, "mail1");
	assert_string_equal(keys[1].selector, "ed1");
	assert_string_equal(keys[1].keyfile, path);
	dk_signer_keys_free(keys, n);

	/* Back to one key: the index names it alone, so nothing signs
	 * with a key whose record is about to be revoked. */
	assert_int_equal(activate(f, "example.com", "mail2", src1, &err),
	    DK_OK);
	assert_int_equal(f->ops->current(f->ctx, "example.com", &keys, &n,
	    &err), DK_OK);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].selector, "mail2");
	dk_signer_keys_free(keys, n);
}

static void
test_files_activate_refuses_three_keys(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_signer_key k[3] = {
		{ (char *)"a", (char *)"/x" }, { (char *)"b", (char *)"/y" },
		{ (char *)"c", (char *)"/z" },
	};
	char out[128];

	open_files(f, out, sizeof(out));
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed, 2,
	    k, 3, &err), DK_EINVAL);
	assert_int_equal(count_entries(out), 0);
}

/* --- crash safety: table switch order, stale temps, shared tables --- */

/*
 * rename(3) as seen by libdk, replaced here: after every rename onto a
 * watched table the tables must be consistent (each state a kill can
 * leave), and crash_at = N ends the process just before the Nth rename
 * onto a table, leaving the staged file as a SIGKILL would.
 */
static const struct fix *watch;
static int renames, crash_at, inconsistent;
static char inconsistency[512];

/* Every SigningTable key name has a KeyTable entry: "" or the first
 * missing name. */
static void
tables_consistent(const struct fix *f, char *bad, size_t badlen)
{
	char *kt = slurp(f->kt), *st = slurp(f->st), *line, *sp, *k, *v;
	char *kl, *ksp, *kname;
	int found;

	bad[0] = '\0';
	if (st == NULL)
		goto out;
	for (line = strtok_r(st, "\n", &sp); line != NULL;
	    line = strtok_r(NULL, "\n", &sp)) {
		if ((k = strtok(line, " \t\r")) == NULL || k[0] == '#' ||
		    (v = strtok(NULL, " \t\r")) == NULL)
			continue;
		found = 0;
		if (kt != NULL) {
			char *copy = strdup(kt);

			assert_non_null(copy);
			for (kl = strtok_r(copy, "\n", &ksp); kl != NULL &&
			    !found; kl = strtok_r(NULL, "\n", &ksp)) {
				kname = kl + strspn(kl, " \t");
				kname[strcspn(kname, " \t\r")] = '\0';
				found = kname[0] != '#' &&
				    strcasecmp(kname, v) == 0;
			}
			free(copy);
		}
		if (!found) {
			snprintf(bad, badlen, "SigningTable names %s, absent "
			    "from KeyTable", v);
			break;
		}
	}
out:
	free(kt);
	free(st);
}

/*
 * The files signer as a reader sees it: after every rename into
 * files_dir, each selector the index names must be paired with its own
 * key (files_want[i] is selector files_sel[i]'s key), and a key file
 * once named never changes.
 */
static const char *files_dir, *files_sel[4], *files_want[4];
static char *files_seen[16], *files_seen_text[16];
static int files_renames, files_bad;
static char files_why[512];

static void
files_reader_check(void)
{
	char idx[256], *text, *line, *sp, *sel, *kf, *key;
	size_t i, j;

	snprintf(idx, sizeof(idx), "%s/example.com.keys", files_dir);
	if ((text = slurp(idx)) == NULL) {
		/* The pair of the layout before the index. */
		char sp2[256], kp2[256], *s2, *k2;

		snprintf(sp2, sizeof(sp2), "%s/example.com.selector",
		    files_dir);
		snprintf(kp2, sizeof(kp2), "%s/example.com.key", files_dir);
		s2 = slurp(sp2);
		k2 = slurp(kp2);
		for (i = 0; s2 != NULL && k2 != NULL && i < 4 &&
		    files_sel[i] != NULL; i++)
			if (strncmp(s2, files_sel[i], strlen(files_sel[i])) ==
			    0 && strcmp(k2, files_want[i]) != 0) {
				files_bad++;
				snprintf(files_why, sizeof(files_why),
				    "selector %s paired with key '%s'",
				    files_sel[i], k2);
			}
		free(s2);
		free(k2);
		return;
	}
	for (line = strtok_r(text, "\n", &sp); line != NULL;
	    line = strtok_r(NULL, "\n", &sp)) {
		if (line[0] == '#')
			continue;
		sel = line;
		if ((kf = strchr(line, ' ')) == NULL)
			continue;
		*kf++ = '\0';
		key = slurp(kf);
		for (i = 0; i < 4 && files_sel[i] != NULL; i++)
			if (strcmp(sel, files_sel[i]) == 0 && (key == NULL ||
			    strcmp(key, files_want[i]) != 0)) {
				files_bad++;
				snprintf(files_why, sizeof(files_why),
				    "selector %s paired with %s: '%s'", sel,
				    kf, key != NULL ? key : "(missing)");
			}
		for (j = 0; j < 16 && files_seen[j] != NULL; j++)
			if (strcmp(files_seen[j], kf) == 0)
				break;
		if (j < 16 && files_seen[j] == NULL) {
			files_seen[j] = strdup(kf);
			files_seen_text[j] = key != NULL ? strdup(key) : NULL;
		}
		free(key);
	}
	free(text);
	/* Every key file an index ever named still holds what it held. */
	for (j = 0; j < 16 && files_seen[j] != NULL; j++) {
		key = slurp(files_seen[j]);
		if (key != NULL && files_seen_text[j] != NULL &&
		    strcmp(key, files_seen_text[j]) != 0) {
			files_bad++;
			snprintf(files_why, sizeof(files_why), "%s changed "
			    "from '%s' to '%s'", files_seen[j],
			    files_seen_text[j], key);
		}
		free(key);
	}
}

int
rename(const char *from, const char *to)
{
	int table = watch != NULL && (strcmp(to, watch->kt) == 0 ||
	    strcmp(to, watch->st) == 0);

	if (files_dir != NULL &&
	    strncmp(to, files_dir, strlen(files_dir)) == 0) {
		if (renameat(AT_FDCWD, from, AT_FDCWD, to) == -1)
			return -1;
		files_renames++;
		files_reader_check();
		return 0;
	}

	if (table && crash_at > 0 && renames + 1 == crash_at)
		_exit(42);
	if (renameat(AT_FDCWD, from, AT_FDCWD, to) == -1)
		return -1;
	if (table) {
		renames++;
		tables_consistent(watch, inconsistency, sizeof(inconsistency));
		if (inconsistency[0] != '\0')
			inconsistent++;
	}
	return 0;
}

static void
unwatch(void)
{
	watch = NULL;
	renames = crash_at = inconsistent = 0;
	inconsistency[0] = '\0';
}

/* Dot files in dir (temporary files by the stage naming). */
static int
count_dot_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

#define KT_FOREIGN	"# keys\nx._domainkey.a.org a.org:x:/k/a.pem\n"
#define ST_FOREIGN	"# signing\n*@a.org x._domainkey.a.org\n"

static void
test_opendkim_switch_is_consistent_after_every_rename(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_signer_key k = { (char *)"mail2", (char *)KEY2 };
	static const char *const managed4[] = { "mail1", "mail2", "ed1",
	    "ed2" };

	write_file(f->kt, KT_FOREIGN, 0644);
	write_file(f->st, ST_FOREIGN, 0644);
	open_opendkim(f, NULL);
	unwatch();
	watch = f;
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	/* KeyTable, SigningTable; the KeyTable has nothing to drop. */
	assert_int_equal(renames, 2);
	renames = 0;
	assert_int_equal(activate(f, "example.com", "mail2", KEY2, &err),
	    DK_OK);
	/* Old and new KeyTable entries, switch, old entry dropped. */
	assert_int_equal(renames, 3);
	renames = 0;
	assert_int_equal(activate2(f, "example.com", "mail1", KEY1, "ed1",
	    KEYE1, &err), DK_OK);
	assert_int_equal(renames, 3);
	renames = 0;
	assert_int_equal(f->ops->activate(f->ctx, "example.com", DK_MATCH_DOMAIN,
	    managed4, 4,
	    &k, 1, &err), DK_OK);
	assert_int_equal(renames, 3);
	assert_string_equal(inconsistency, "");
	assert_int_equal(inconsistent, 0);
	unwatch();
	assert_file(f->kt, KT_FOREIGN KT2);
	assert_file(f->st, ST_FOREIGN ST2);
}

static void
test_opendkim_kill_before_any_rename_leaves_usable_tables(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	int step, status;
	pid_t pid;
	char *kt, *st;

	write_file(f->kt, KT_FOREIGN, 0644);
	write_file(f->st, ST_FOREIGN, 0644);
	open_opendkim(f, NULL);
	for (step = 1; step <= 3; step++) {
		unwatch();
		assert_int_equal(activate(f, "example.com", "mail1", KEY1,
		    &err), DK_OK);
		assert_int_equal(count_dot_files(f->dir), 0);
		if ((pid = fork()) == 0) {
			watch = f;
			crash_at = step;
			activate(f, "example.com", "mail2", KEY2, &err);
			_exit(1);	/* never got to the crash */
		}
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 42);
		/* The kill left a staged copy and consistent tables. */
		assert_int_equal(count_dot_files(f->dir), 1);
		tables_consistent(f, inconsistency, sizeof(inconsistency));
		assert_string_equal(inconsistency, "");
		/* Up to the switch, the old key signs; after it, the new. */
		st = slurp(f->st);
		assert_non_null(strstr(st, step <= 2 ?
		    "mail1._domainkey" : "mail2._domainkey"));
		free(st);
		if (step == 3) {
			kt = slurp(f->kt);
			assert_non_null(strstr(kt, KT1));
			free(kt);
		}
		/* The rerun sweeps the staged copy and completes. */
		assert_int_equal(activate(f, "example.com", "mail2", KEY2,
		    &err), DK_OK);
		assert_int_equal(count_dot_files(f->dir), 0);
		assert_file(f->kt, KT_FOREIGN KT2);
		assert_file(f->st, ST_FOREIGN ST2);
	}
	unwatch();
}

static void
test_opendkim_activate_sweeps_only_its_stale_temps(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	static const char *const stale[] = { ".KeyTable.0123456789abcdef",
	    ".SigningTable.fedcba9876543210" };
	static const char *const kept[] = { ".KeyTable.0123456789ABCDEF",
	    ".KeyTable.0123456789abcde", ".KeyTable.0123456789abcdef0",
	    ".Other.0123456789abcdef", "KeyTable.0123456789abcdef",
	    ".KeyTable.lock" };
	char path[256];
	size_t i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, stale[i]);
		write_file(path, "half a table", 0600);
	}
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, kept[i]);
		write_file(path, "not ours", 0600);
	}
	/* A directory of the stage name is not a file stage made. */
	snprintf(path, sizeof(path), "%s/.KeyTable.aaaaaaaaaaaaaaaa", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_OK);
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, stale[i]);
		assert_int_equal(access(path, F_OK), -1);
	}
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, kept[i]);
		assert_file(path, "not ours");
	}
	/* kept, the directory, the two tables and the lock file */
	assert_int_equal(count_entries(f->dir),
	    (int)(sizeof(kept) / sizeof(kept[0])) + 4);
}

static void
test_files_activate_sweeps_only_its_domains_stale_temps(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	static const char *const stale[] = {
	    ".example.com.key.00112233445566aa",
	    ".example.com.selector.00112233445566ab",
	    ".example.com.ed25519.key.00112233445566ac",
	    ".example.com.ed25519.selector.00112233445566ad",
	    ".example.com.keys.00112233445566ae",
	    ".mail1.pem.00112233445566af" };
	char out[128], src[128], path[256];
	size_t i;

	snprintf(src, sizeof(src), "%s/mail1.pem", f->dir);
	write_file(src, "key\n", 0600);
	open_files(f, out, sizeof(out));
	for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", out, stale[i]);
		write_file(path, "partial", 0600);
	}
	snprintf(path, sizeof(path), "%s/.example.net.key.00112233445566aa",
	    out);
	write_file(path, "another domain's", 0600);
	assert_int_equal(activate(f, "example.com", "mail1", src, &err),
	    DK_OK);
	assert_file(path, "another domain's");
	/* example.com.keys, mail1.pem and the other domain's temp */
	assert_int_equal(count_entries(out), 3);
}

/*
 * Each state a reader of the files signer can see, after every rename of
 * a switch (RSA and Ed25519 rotated three times), pairs each selector
 * with its own key, and no key file changes under a name once used:
 * what one index rename gives, and two renames (selector file, key
 * file) cannot.
 */
static void
test_files_every_visible_state_pairs_selector_with_its_key(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	static const char *const sel[4] = { "mail1", "ed1", "mail2", "ed2" };
	char out[128], src[4][128], text[4][32];
	size_t i;
	int gen;

	open_files(f, out, sizeof(out));
	for (i = 0; i < 4; i++) {
		snprintf(src[i], sizeof(src[i]), "%s/example.com.%s.%zu.pem",
		    f->dir, sel[i], i);
		snprintf(text[i], sizeof(text[i]), "key of %s\n", sel[i]);
		write_file(src[i], text[i], 0600);
		files_sel[i] = sel[i];
		files_want[i] = text[i];
	}
	files_dir = out;
	for (gen = 0; gen < 3; gen++) {
		i = gen % 2 == 0 ? 0 : 2;
		assert_int_equal(activate2(f, "example.com", sel[i], src[i],
		    sel[i + 1], src[i + 1], &err), DK_OK);
	}
	files_dir = NULL;
	for (i = 0; i < 16 && files_seen[i] != NULL; i++) {
		free(files_seen[i]);
		free(files_seen_text[i]);
		files_seen[i] = files_seen_text[i] = NULL;
	}
	memset(files_sel, 0, sizeof(files_sel));
	if (files_bad != 0)
		fail_msg("a reader saw %d inconsistent states, e.g. %s",
		    files_bad, files_why);
	assert_true(files_renames >= 3);
	files_renames = 0;
}

/* Run n activations of domain in a child, alternating mail1 and mail2. */
static pid_t
activate_loop(struct fix *f, const char *domain, int n)
{
	struct dk_error err = { 0 };
	pid_t pid;
	int i;

	if ((pid = fork()) != 0)
		return pid;
	for (i = 0; i < n; i++)
		if (activate(f, domain, i % 2 == 0 ? "mail1" : "mail2",
		    i % 2 == 0 ? KEY1 : KEY2, &err) != DK_OK) {
			fprintf(stderr, "%s: %s\n", domain, err.msg);
			_exit(1);
		}
	_exit(0);
}

static void
test_opendkim_concurrent_domains_keep_both_lines(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	const int n = 61;		/* odd: both end on mail1 */
	pid_t a, b;
	int status;
	char *sel = NULL, *key = NULL, *kt;

	write_file(f->kt, KT_FOREIGN, 0644);
	write_file(f->st, ST_FOREIGN, 0644);
	open_opendkim(f, NULL);
	a = activate_loop(f, "example.com", n);
	b = activate_loop(f, "example.net", n);
	assert_true(a > 0 && b > 0);
	assert_int_equal(waitpid(a, &status, 0), a);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(waitpid(b, &status, 0), b);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(current1(f, "example.com", &sel, &key, &err), DK_OK);
	assert_string_equal(sel, "mail1");
	free(sel);
	free(key);
	assert_int_equal(current1(f, "example.net", &sel, &key, &err), DK_OK);
	assert_string_equal(sel, "mail1");
	free(sel);
	free(key);
	kt = slurp(f->kt);
	assert_non_null(kt);
	assert_non_null(strstr(kt, "x._domainkey.a.org"));
	free(kt);
	tables_consistent(f, inconsistency, sizeof(inconsistency));
	assert_string_equal(inconsistency, "");
	assert_int_equal(count_dot_files(f->dir), 0);
}

static void
test_signer_lock_times_out_naming_holder(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char want[64];
	int fd, fd2 = -1;

	/* Another open file description: flock excludes it even here. */
	assert_int_equal(dk_signer_lock(f->lock, 1, &fd, &err), DK_OK);
	assert_int_equal(dk_signer_lock(f->lock, 1, &fd2, &err), DK_ETEMP);
	assert_int_equal(fd2, -1);
	snprintf(want, sizeof(want), "locked by pid %ld on ", (long)getpid());
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, f->lock));
	dk_signer_unlock(fd);
	assert_int_equal(dk_signer_lock(f->lock, 1, &fd2, &err), DK_OK);
	dk_signer_unlock(fd2);
	assert_int_equal(file_mode(f->lock), 0600);
}

static void
test_opendkim_activate_refuses_symlinked_lock(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char real[160];

	snprintf(real, sizeof(real), "%s/elsewhere", f->dir);
	assert_int_equal(symlink(real, f->lock), 0);
	open_opendkim(f, NULL);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_EUNSAFE);
	assert_null(slurp(f->kt));
	assert_int_equal(access(real, F_OK), -1);
}

/* The state letter in /proc/PID/stat; 0 when the process is gone. */
static int
proc_state(const char *path)
{
	char buf[512], *p;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return 0;
	return (unsigned char)p[2];
}

static void
test_signer_run_times_out_and_ends_the_group(void **state)
{
	struct fix *f = *state;
	char script[512];
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };
	struct dk_error err = { 0 };
	char *pidtext, path[64];
	long bg;
	int i, st = 0;

	/* The command starts a child of its own and waits for it. */
	snprintf(script, sizeof(script), "/bin/sleep 30 & echo $! > %s; "
	    "wait", f->marker);
	assert_int_equal(dk_signer_run_timeout(argv, 1, &err), DK_ETEMP);
	assert_string_equal(err.msg,
	    "reload command '/bin/sh' timed out after 1s");
	pidtext = slurp(f->marker);
	assert_non_null(pidtext);
	bg = atol(pidtext);
	free(pidtext);
	assert_true(bg > 0);
	/* Its child was signalled too: gone, or a zombie until init reaps
	 * it (a bounded number of looks, not a deadline). */
	snprintf(path, sizeof(path), "/proc/%ld/stat", bg);
	for (i = 0; i < 1000; i++) {
		if ((st = proc_state(path)) == 0 || st == 'Z')
			break;
		poll(NULL, 0, 1);	/* look again in 1 ms */
	}
	assert_true(st == 0 || st == 'Z');
}

static void
test_signer_run_kills_command_ignoring_sigterm(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"trap '' TERM; while :; do /bin/sleep 1; done", NULL };
	struct dk_error err = { 0 };

	assert_int_equal(dk_signer_run_timeout(argv, 1, &err), DK_ETEMP);
	assert_non_null(strstr(err.msg, "timed out after 1s"));
}

/* An opendkim activator with reload and reload_timeout. */
static int
open_opendkim_timeout(struct fix *f, const char *reload, const char *timeout,
    struct dk_error *err)
{
	init_sec(f, "opendkim");
	add_kv(f, "key_table", f->kt);
	add_kv(f, "signing_table", f->st);
	snprintf(f->reload, sizeof(f->reload), "%s", reload);
	add_kv(f, "reload", f->reload);
	add_kv(f, "reload_timeout", timeout);
	return open_sec(f, err);
}

static void
test_opendkim_hung_reload_times_out(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };

	assert_int_equal(open_opendkim_timeout(f, "/bin/sleep 30", "1s",
	    &err), DK_OK);
	assert_int_equal(activate(f, "example.com", "mail1", KEY1, &err),
	    DK_ETEMP);
	assert_string_equal(err.msg,
	    "reload command '/bin/sleep' timed out after 1s");
	/* Switched before the reload; a rerun only repeats the reload. */
	assert_file(f->st, ST1);
}

static void
test_signer_open_rejects_bad_reload_timeout(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	char out[128];

	assert_int_equal(open_opendkim_timeout(f, "/bin/true", "soon", &err),
	    DK_ECONFIG);
	assert_non_null(strstr(err.msg, "test.conf:5:"));
	assert_non_null(strstr(err.msg, "reload_timeout"));
	assert_null(f->ctx);
	assert_int_equal(open_opendkim_timeout(f, "/bin/true", "0", &err),
	    DK_ECONFIG);
	assert_null(f->ctx);
	assert_int_equal(open_opendkim_timeout(f, "/bin/true", "2m", &err),
	    DK_OK);
	f->ops->close(f->ctx);
	f->ctx = NULL;

	snprintf(out, sizeof(out), "%s/out", f->dir);
	init_sec(f, "files");
	add_kv(f, "dir", out);
	add_kv(f, "reload_timeout", "-1s");
	assert_int_equal(open_sec(f, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "reload_timeout"));
	assert_null(f->ctx);
}

/*
 * current_many against current, domain by domain: the same code, message,
 * keys and order.  res (n entries) is left filled for further checks;
 * free it with many_free.
 */
static void
many_equals_current(struct fix *f, const char *const *domains, size_t n,
    struct dk_signer_current *res)
{
	struct dk_error err = { 0 };
	struct dk_signer_key *keys;
	size_t i, j, nk;
	int rc;

	assert_non_null(f->ops->current_many);
	assert_int_equal(f->ops->current_many(f->ctx, domains, n, res, &err),
	    DK_OK);
	for (i = 0; i < n; i++) {
		keys = NULL;
		nk = 0;
		memset(&err, 0, sizeof(err));
		rc = f->ops->current(f->ctx, domains[i], &keys, &nk, &err);
		assert_int_equal(res[i].rc, rc);
		if (rc != DK_OK) {
			assert_string_equal(res[i].err.msg, err.msg);
			assert_null(res[i].keys);
			continue;
		}
		assert_int_equal(res[i].nkeys, nk);
		for (j = 0; j < nk; j++) {
			assert_string_equal(res[i].keys[j].selector,
			    keys[j].selector);
			assert_string_equal(res[i].keys[j].keyfile,
			    keys[j].keyfile);
		}
		dk_signer_keys_free(keys, nk);
	}
}

static void
many_free(struct dk_signer_current *res, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dk_signer_keys_free(res[i].keys, res[i].nkeys);
	free(res);
}

/* The single key of res: selector and key file as given. */
static void
assert_one_key(const struct dk_signer_current *res, const char *sel,
    const char *key)
{
	assert_int_equal(res->rc, DK_OK);
	assert_int_equal(res->nkeys, 1);
	assert_string_equal(res->keys[0].selector, sel);
	assert_string_equal(res->keys[0].keyfile, key);
}

#define NMANY	300

static void
test_opendkim_current_many_equals_current_over_many_domains(void **state)
{
	struct fix *f = *state;
	struct dk_signer_current *res;
	const char *domains[NMANY + 4];
	char names[NMANY][32], sel[32], key[64];
	char *st = NULL, *kt = NULL;
	size_t stl, ktl, i, d;
	FILE *sp, *kp;

	assert_non_null(sp = open_memstream(&st, &stl));
	assert_non_null(kp = open_memstream(&kt, &ktl));
	fprintf(sp, "# SigningTable\n\n*@foreign.example "
	    "mail1._domainkey.foreign.example\nexample.org default\n"
	    "*@d7.example default\n");
	fprintf(kp, "# KeyTable\nmail1._domainkey.foreign.example "
	    "foreign.example:mail1:/keys/foreign.pem\n");
	/* Tables in different orders, comments naming old keys between. */
	for (i = 0; i < NMANY; i++) {
		d = i * 7 % NMANY;
		if (d % 10 == 0)
			fprintf(sp, "# *@d%zu.example "
			    "old._domainkey.d%zu.example\n", d, d);
		fprintf(sp, "*@d%zu.example s%zu._domainkey.d%zu.example\n",
		    d, d, d);
		d = NMANY - 1 - i;
		fprintf(kp, "s%zu._domainkey.d%zu.example "
		    "d%zu.example:s%zu:/keys/d%zu.pem\n", d, d, d, d, d);
	}
	fclose(sp);
	fclose(kp);
	write_file(f->st, st, 0644);
	write_file(f->kt, kt, 0644);
	free(st);
	free(kt);
	open_opendkim(f, NULL);

	for (i = 0; i < NMANY; i++) {
		snprintf(names[i], sizeof(names[i]), "d%zu.example", i);
		domains[i] = names[i];
	}
	domains[NMANY] = "none.example";	/* no line */
	domains[NMANY + 1] = "D3.EXAMPLE";	/* case folded */
	domains[NMANY + 2] = "d5.example";	/* asked twice */
	domains[NMANY + 3] = "example.org";	/* only a foreign line */
	assert_non_null(res = calloc(NMANY + 4, sizeof(*res)));
	many_equals_current(f, domains, NMANY + 4, res);
	for (i = 0; i < NMANY; i++) {
		snprintf(sel, sizeof(sel), "s%zu", i);
		snprintf(key, sizeof(key), "/keys/d%zu.pem", i);
		assert_one_key(&res[i], sel, key);
	}
	assert_int_equal(res[NMANY].rc, DK_ENOTFOUND);
	assert_non_null(strstr(res[NMANY].err.msg,
	    "no signing entry for none.example"));
	assert_one_key(&res[NMANY + 1], "s3", "/keys/d3.pem");
	assert_one_key(&res[NMANY + 2], "s5", "/keys/d5.pem");
	assert_int_equal(res[NMANY + 3].rc, DK_ENOTFOUND);
	many_free(res, NMANY + 4);
}

static void
test_opendkim_current_many_keeps_dual_domain_line_order(void **state)
{
	struct fix *f = *state;
	struct dk_signer_current res[3];
	const char *domains[] = { "a.example", "b.example", "c.example" };

	/* a: RSA line first; b: Ed25519 line first; KeyTable reversed. */
	write_file(f->st,
	    "*@a.example rsa._domainkey.a.example\n"
	    "*@b.example ed._domainkey.b.example\n"
	    "*@c.example one._domainkey.c.example\n"
	    "*@b.example rsa._domainkey.b.example\n"
	    "*@a.example ed._domainkey.a.example\n", 0644);
	write_file(f->kt,
	    "ed._domainkey.a.example a.example:ed:/k/a-ed.pem\n"
	    "rsa._domainkey.b.example b.example:rsa:/k/b-rsa.pem\n"
	    "one._domainkey.c.example c.example:one:/k/c.pem\n"
	    "ed._domainkey.b.example b.example:ed:/k/b-ed.pem\n"
	    "rsa._domainkey.a.example a.example:rsa:/k/a-rsa.pem\n", 0644);
	open_opendkim(f, NULL);
	many_equals_current(f, domains, 3, res);
	assert_int_equal(res[0].rc, DK_OK);
	assert_int_equal(res[0].nkeys, 2);
	assert_string_equal(res[0].keys[0].selector, "rsa");
	assert_string_equal(res[0].keys[0].keyfile, "/k/a-rsa.pem");
	assert_string_equal(res[0].keys[1].selector, "ed");
	assert_string_equal(res[0].keys[1].keyfile, "/k/a-ed.pem");
	assert_int_equal(res[1].rc, DK_OK);
	assert_int_equal(res[1].nkeys, 2);
	assert_string_equal(res[1].keys[0].selector, "ed");
	assert_string_equal(res[1].keys[1].selector, "rsa");
	assert_one_key(&res[2], "one", "/k/c.pem");
	dk_signer_keys_free(res[0].keys, res[0].nkeys);
	dk_signer_keys_free(res[1].keys, res[1].nkeys);
	dk_signer_keys_free(res[2].keys, res[2].nkeys);
}

static void
test_opendkim_current_many_missing_key_fails_that_domain_only(void **state)
{
	struct fix *f = *state;
	struct dk_signer_current res[5];
	const char *domains[] = { "a.example", "b.example", "c.example",
	    "d.example", "e.example" };
	char want[512];
	size_t i;

	/*
	 * b's second key is not in the KeyTable; d's key has no value;
	 * e's first key is missing, which its good second key cannot mend.
	 */
	write_file(f->st,
	    "# header\n"
	    "*@a.example s._domainkey.a.example\n"
	    "*@b.example s._domainkey.b.example\n"
	    "*@b.example t._domainkey.b.example\n"
	    "*@e.example x._domainkey.e.example\n"
	    "*@c.example s._domainkey.c.example\n"
	    "*@d.example s._domainkey.d.example\n"
	    "*@e.example s._domainkey.e.example\n", 0644);
	write_file(f->kt,
	    "s._domainkey.a.example a.example:s:/k/a.pem\n"
	    "s._domainkey.b.example b.example:s:/k/b.pem\n"
	    "s._domainkey.d.example\n"
	    "s._domainkey.c.example c.example:s:/k/c.pem\n"
	    "s._domainkey.e.example e.example:s:/k/e.pem\n", 0644);
	open_opendkim(f, NULL);
	many_equals_current(f, domains, 5, res);
	assert_one_key(&res[0], "s", "/k/a.pem");
	assert_int_equal(res[1].rc, DK_ECORRUPT);
	snprintf(want, sizeof(want), "%s:4: key t._domainkey.b.example is "
	    "not in %s", f->st, f->kt);
	assert_string_equal(res[1].err.msg, want);
	assert_null(res[1].keys);
	assert_one_key(&res[2], "s", "/k/c.pem");
	assert_int_equal(res[3].rc, DK_ECORRUPT);
	snprintf(want, sizeof(want), "%s:3: key s._domainkey.d.example has "
	    "no value", f->kt);
	assert_string_equal(res[3].err.msg, want);
	assert_int_equal(res[4].rc, DK_ECORRUPT);
	assert_non_null(strstr(res[4].err.msg, ":5: key x._domainkey"));
	assert_null(res[4].keys);
	for (i = 0; i < 5; i++)
		dk_signer_keys_free(res[i].keys, res[i].nkeys);
}

static void
test_opendkim_current_many_duplicate_lines_as_current(void **state)
{
	struct fix *f = *state;
	struct dk_signer_current res[3];
	const char *domains[] = { "a.example", "b.example", "c.example" };
	char want[512];
	size_t i;

	/*
	 * a's line twice: two keys, as OpenDKIM signs twice.  A KeyTable
	 * name twice: its first line counts, even when broken (c).
	 */
	write_file(f->st,
	    "*@a.example s._domainkey.a.example\n"
	    "*@b.example s._domainkey.b.example\n"
	    "*@a.example s._domainkey.a.example\n"
	    "*@c.example s._domainkey.c.example\n", 0644);
	write_file(f->kt,
	    "s._domainkey.a.example a.example:s:/k/a.pem\n"
	    "S._DOMAINKEY.B.EXAMPLE b.example:s:/k/b-first.pem\n"
	    "s._domainkey.c.example c.example:s\n"
	    "s._domainkey.b.example b.example:s:/k/b-second.pem\n"
	    "s._domainkey.c.example c.example:s:/k/c.pem\n", 0644);
	open_opendkim(f, NULL);
	many_equals_current(f, domains, 3, res);
	assert_int_equal(res[0].rc, DK_OK);
	assert_int_equal(res[0].nkeys, 2);
	assert_string_equal(res[0].keys[0].keyfile, "/k/a.pem");
	assert_string_equal(res[0].keys[1].keyfile, "/k/a.pem");
	assert_one_key(&res[1], "s", "/k/b-first.pem");
	assert_int_equal(res[2].rc, DK_ECORRUPT);
	snprintf(want, sizeof(want), "%s:3: value of s._domainkey.c.example "
	    "is not DOMAIN:SELECTOR:KEYFILE", f->kt);
	assert_string_equal(res[2].err.msg, want);
	for (i = 0; i < 3; i++)
		dk_signer_keys_free(res[i].keys, res[i].nkeys);
}

static void
test_opendkim_current_many_bad_table_as_current(void **state)
{
	struct fix *f = *state;
	struct dk_signer_current res[2];
	const char *domains[] = { "a.example", "none.example" };
	char *kt;
	size_t i;

	open_opendkim(f, NULL);
	/* No tables: nothing found, and nothing to read for none. */
	many_equals_current(f, domains, 2, res);
	assert_int_equal(res[0].rc, DK_ENOTFOUND);
	assert_int_equal(res[1].rc, DK_ENOTFOUND);

	/* An overlong KeyTable line fails only the domains with a line. */
	write_file(f->st, "*@a.example s._domainkey.a.example\n", 0644);
	assert_non_null(kt = malloc(DK_SIGNER_LINE_MAX + 64));
	memset(kt, 'x', DK_SIGNER_LINE_MAX + 62);
	memcpy(kt, "# ok\n", 5);
	kt[DK_SIGNER_LINE_MAX + 62] = '\n';
	kt[DK_SIGNER_LINE_MAX + 63] = '\0';
	write_file(f->kt, kt, 0644);
	free(kt);
	many_equals_current(f, domains, 2, res);
	assert_int_equal(res[0].rc, DK_ECORRUPT);
	assert_non_null(strstr(res[0].err.msg, f->kt));
	assert_non_null(strstr(res[0].err.msg, ":2: line longer"));
	assert_int_equal(res[1].rc, DK_ENOTFOUND);

	/* A SigningTable that is not one fails every domain. */
	write_file(f->st, "# ok\n*@a.example\n\n", 0644);
	assert_int_equal(truncate(f->st, 64), 0);	/* NUL bytes */
	many_equals_current(f, domains, 2, res);
	for (i = 0; i < 2; i++) {
		assert_int_equal(res[i].rc, DK_ECORRUPT);
		assert_non_null(strstr(res[i].err.msg, "NUL byte"));
	}
	/* No domain: nothing to do.  The files signer has no batch. */
	assert_int_equal(f->ops->current_many(f->ctx, domains, 0, res, NULL),
	    DK_OK);
	assert_null(dk_signer_files_ops.current_many);
}

/* ---- the shared table editor ---------------------------------------- */

static void
test_table_edit_keeps_every_other_byte(void **state)
{
	static const char in[] =
	    "# managed by hand: mail1._domainkey.example.com\n"
	    "\n"
	    "other.org other.org:s:/k\n"
	    "MAIL1._domainkey.Example.COM example.com:mail1:/old\n"
	    "  mail9._domainkey.example.com example.com:mail9:/x";
	static const char want[] =
	    "# managed by hand: mail1._domainkey.example.com\n"
	    "\n"
	    "other.org other.org:s:/k\n"
	    "  mail9._domainkey.example.com example.com:mail9:/x\n"
	    "mail2._domainkey.example.com example.com:mail2:/new\n";
	char *names[] = { (char *)"mail1._domainkey.example.com" };
	struct dk_strbuf out = DK_STRBUF_INIT;

	(void)state;
	assert_int_equal(dk_table_edit(&dk_table_fmt_blank, in, strlen(in), 0,
	    names, 1, "mail2._domainkey.example.com example.com:mail2:/new\n",
	    &out), 0);
	assert_int_equal(out.len, strlen(want));
	assert_string_equal(out.p, want);
	free(out.p);
}

/* The checks every activate makes first, with the signer's name. */
static void
test_activate_names_refused_before_anything(void **state)
{
	struct dk_signer_key keys[2] = { { (char *)"mail1", (char *)"/k1" },
	    { (char *)"ma/il2", (char *)"/k2" } };
	const char *sels[2] = { "mail1", "bad sel" };
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_signer_activate_names("exim", "example.com",
	    sels, 1, keys, 1, &err), DK_OK);
	assert_int_equal(dk_signer_activate_names("exim", "example.com",
	    sels, 1, keys, 0, &err), DK_EINVAL);
	assert_string_equal(err.msg, "exim: example.com: no key to activate");
	assert_int_equal(dk_signer_activate_names("rspamd", "exa..mple.com",
	    sels, 1, keys, 1, &err), DK_EINVAL);
	assert_string_equal(err.msg, "rspamd: bad domain 'exa..mple.com'");
	assert_int_equal(dk_signer_activate_names("opendkim", "example.com",
	    sels, 2, keys, 1, &err), DK_EINVAL);
	assert_string_equal(err.msg,
	    "opendkim: example.com: bad selector 'bad sel'");
	assert_int_equal(dk_signer_activate_names("opendkim", "example.com",
	    sels, 1, keys, 2, &err), DK_EINVAL);
	assert_string_equal(err.msg,
	    "opendkim: example.com: bad selector 'ma/il2'");
}

static void
test_table_edit_splits_on_format_delimiters(void **state)
{
	/* An Exim lsearch file: "key: value". */
	static const struct dk_table_fmt exim = { '#', ":" };
	static const char in[] = "example.com: mail1\nexample.org: x\n";
	char *names[] = { (char *)"example.com" };
	struct dk_strbuf out = DK_STRBUF_INIT;
	const char *f;
	size_t fl;

	(void)state;
	assert_int_equal(dk_table_field(&exim, in, 18, 1, &f, &fl), 1);
	assert_int_equal(fl, 5);
	assert_memory_equal(f, "mail1", 5);
	assert_int_equal(dk_table_edit(&exim, in, strlen(in), 0, names, 1,
	    "example.com: mail2\n", &out), 0);
	assert_string_equal(out.p, "example.org: x\nexample.com: mail2\n");
	free(out.p);
}

static void
test_table_update_leaves_unchanged_file_alone(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_table t;
	char *names[] = { (char *)"a" };
	struct stat before, after;

	write_file(f->kt, "x 1\na 2\n", 0640);
	assert_int_equal(stat(f->kt, &before), 0);
	assert_int_equal(dk_table_update(&dk_table_fmt_blank, f->kt, 0, names,
	    1, "a 2\n", &t, &err), DK_OK);
	assert_string_equal(t.buf, "x 1\na 2\n");
	free(t.buf);
	assert_int_equal(stat(f->kt, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	/* A change is a new file, with the old mode. */
	assert_int_equal(dk_table_update(&dk_table_fmt_blank, f->kt, 0, names,
	    1, "a 3\n", NULL, &err), DK_OK);
	assert_int_equal(stat(f->kt, &after), 0);
	assert_true(after.st_ino != before.st_ino);
	assert_int_equal(after.st_mode & 0777, 0640);
	assert_file(f->kt, "x 1\na 3\n");
}

static void
test_table_read_refuses_fifo(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0 };
	struct dk_table t;

	assert_int_equal(mkfifo(f->kt, 0600), 0);
	assert_int_equal(dk_table_read(f->kt, &t, &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "not a regular file (a FIFO)"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_table_edit_keeps_every_other_byte),
		T(test_table_edit_splits_on_format_delimiters),
		T(test_activate_names_refused_before_anything),
		T(test_table_update_leaves_unchanged_file_alone),
		T(test_table_read_refuses_fifo),
		T(test_signer_find_knows_builtin_types),
		T(test_opendkim_activate_creates_missing_tables),
		T(test_opendkim_activate_into_empty_tables),
		T(test_opendkim_activate_preserves_foreign_lines_exactly),
		T(test_opendkim_switch_removes_only_old_managed_lines),
		T(test_opendkim_activate_is_idempotent),
		T(test_opendkim_activate_keeps_file_mode),
		T(test_opendkim_activate_rejects_nul_byte),
		T(test_opendkim_activate_rejects_overlong_line),
		T(test_opendkim_activate_refuses_symlinked_table),
		T(test_opendkim_activate_rejects_bad_key_path),
		T(test_opendkim_current_reads_back_active_key),
		T(test_opendkim_current_not_found),
		T(test_opendkim_current_signing_entry_without_key_is_corrupt),
		T(test_opendkim_current_malformed_key_value_is_corrupt),
		T(test_opendkim_open_requires_absolute_tables),
		T(test_opendkim_open_rejects_unknown_key),
		T(test_opendkim_open_rejects_relative_reload),
		T(test_opendkim_reload_runs_after_switch),
		T(test_opendkim_reload_failure_is_temporary),
		T(test_signer_run_succeeds_on_exit_zero),
		T(test_signer_run_reports_exit_status),
		T(test_signer_run_quotes_first_stderr_line),
		T(test_signer_run_reports_signal),
		T(test_signer_run_rejects_relative_command),
		T(test_signer_run_reports_exec_failure),
		T(test_signer_run_stdin_is_dev_null),
		T(test_files_activate_writes_index_and_key_copy),
		T(test_files_key_copy_readable_by_group_only),
		T(test_files_switch_keeps_previous_copy_one_switch),
		T(test_files_refuses_to_rewrite_a_copy),
		T(test_files_activate_refuses_missing_key),
		T(test_files_current_not_found),
		T(test_files_legacy_pair_written_read_and_removed),
		T(test_files_reload_runs),
		T(test_opendkim_activate_two_keys_writes_both_lines),
		T(test_opendkim_activate_one_key_drops_managed_second_key),
		T(test_signer_activate_refuses_empty_key_list),
		T(test_files_activate_two_keys_names_both_in_one_index),
		T(test_files_activate_refuses_three_keys),
		T(test_opendkim_switch_is_consistent_after_every_rename),
		T(test_opendkim_kill_before_any_rename_leaves_usable_tables),
		T(test_opendkim_activate_sweeps_only_its_stale_temps),
		T(test_files_activate_sweeps_only_its_domains_stale_temps),
		T(test_files_every_visible_state_pairs_selector_with_its_key),
		T(test_opendkim_concurrent_domains_keep_both_lines),
		T(test_signer_lock_times_out_naming_holder),
		T(test_opendkim_activate_refuses_symlinked_lock),
		T(test_signer_run_times_out_and_ends_the_group),
		T(test_signer_run_kills_command_ignoring_sigterm),
		T(test_opendkim_hung_reload_times_out),
		T(test_signer_open_rejects_bad_reload_timeout),
		T(test_opendkim_current_many_equals_current_over_many_domains),
		T(test_opendkim_current_many_keeps_dual_domain_line_order),
		T(test_opendkim_current_many_missing_key_fails_that_domain_only),
		T(test_opendkim_current_many_duplicate_lines_as_current),
		T(test_opendkim_current_many_bad_table_as_current),
		T(test_opendkim_match_lines_and_current),
		T(test_opendkim_match_more_specific_line_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
