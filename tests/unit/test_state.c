/* tests/unit/test_state.c — the state file: format, parser, commit. */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "state.h"

#define T0	1795392000	/* 2026-11-23T00:00:00Z */

static const char valid[] =
    "# dkimkeyd state for example.com\n"
    "# Written by dkimkeyd; edit only while no dkimkeyd command runs.\n"
    "version: 1\n"
    "domain: example.com\n"
    "\n"
    "key: mail1 5f3c0a1b2c3d4e5f\n"
    "  algorithm: rsa-2048\n"
    "  generation: 1\n"
    "  file: /var/lib/dkimkeyd/keys/example.com.mail1.5f3c0a1b2c3d4e5f.pem\n"
    "  public: MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "  ttl: 3600\n"
    "  drain: 3600\n"
    "  created: 1795392000\t# 2026-11-23T00:00:00Z\n"
    "  published: 1795392010\t# 2026-11-23T00:00:10Z\n"
    "  visible: 1795392020\t# 2026-11-23T00:00:20Z\n"
    "  active: 0\n"
    "  retired: 0\n"
    "  revoked: 0\n"
    "  removed: 0\n"
    "end\n";

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* valid with the first occurrence of from replaced by to. */
static char *
edit(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	size_t pre, n;
	char *out;

	assert_non_null(at);
	pre = (size_t)(at - text);
	n = strlen(text) - strlen(from) + strlen(to);
	out = malloc(n + 1);
	assert_non_null(out);
	memcpy(out, text, pre);
	memcpy(out + pre, to, strlen(to));
	strcpy(out + pre + strlen(to), at + strlen(from));
	return out;
}

static int
parse_str(const char *text, struct dk_error *err)
{
	struct dk_domain_state *st = NULL;
	int rc;

	rc = dk_state_parse(text, strlen(text), "t.state", &st, err);
	dk_state_free(st);
	return rc;
}

/* Assert that replacing from with to makes the file corrupt. */
static void
assert_corrupt_edit(const char *from, const char *to, const char *msgpart)
{
	struct dk_error err = { 0 };
	char *t = edit(valid, from, to);

	assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
	if (strstr(err.msg, msgpart) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, msgpart);
	free(t);
}

static void
make_key(struct dk_key_state *k, const char *sel, const char *id,
    const char *file)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->selector, sizeof(k->selector), "%s", sel);
	snprintf(k->key_id, sizeof(k->key_id), "%s", id);
	snprintf(k->algorithm, sizeof(k->algorithm), "rsa-2048");
	k->file = (char *)file;
	k->pubkey = (char *)"MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
	k->ttl = 3600;
	k->drain = -1;
	k->created_at = T0;
	k->generation = 1;
}

static struct dk_domain_state *
sample_state(void)
{
	struct dk_domain_state *st = dk_state_new("example.com");
	struct dk_key_state k;

	assert_non_null(st);
	make_key(&k, "mail1", "00112233aabbccdd", "/k/mail1.pem");
	k.published_at = T0 + 1;
	k.visible_at = T0 + 2;
	k.active_at = T0 + 3;
	k.retired_at = T0 + 4;
	k.revoked_at = T0 + 5;
	k.removed_at = T0 + 6;
	assert_int_equal(dk_state_add_key(st, &k), 0);
	make_key(&k, "mail2", "5f3c0a1b2c3d4e5f", "/k/dir#1/mail 2.pem");
	k.generation = 2;
	k.drain = 86400;
	k.published_at = T0 + 10;
	k.visible_at = T0 + 10;
	k.active_at = T0 + 20;
	assert_int_equal(dk_state_add_key(st, &k), 1);
	make_key(&k, "mail1", "ffee", "/k/mail1b.pem");
	k.generation = 3;
	k.compromised_at = T0 + 30;
	k.ttl = 1;
	assert_int_equal(dk_state_add_key(st, &k), 2);
	return st;
}

static void
assert_states_equal(const struct dk_domain_state *a,
    const struct dk_domain_state *b)
{
	const struct dk_key_state *x, *y;
	size_t i;

	assert_string_equal(a->domain, b->domain);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->nkeys, b->nkeys);
	for (i = 0; i < a->nkeys; i++) {
		x = &a->keys[i];
		y = &b->keys[i];
		assert_string_equal(x->selector, y->selector);
		assert_string_equal(x->key_id, y->key_id);
		assert_string_equal(x->algorithm, y->algorithm);
		assert_string_equal(x->file, y->file);
		assert_int_equal(x->ttl, y->ttl);
		assert_int_equal(x->drain, y->drain);
		assert_int_equal(x->created_at, y->created_at);
		assert_int_equal(x->published_at, y->published_at);
		assert_int_equal(x->visible_at, y->visible_at);
		assert_int_equal(x->active_at, y->active_at);
		assert_int_equal(x->retired_at, y->retired_at);
		assert_int_equal(x->revoked_at, y->revoked_at);
		assert_int_equal(x->removed_at, y->removed_at);
		assert_int_equal(x->generation, y->generation);
		assert_int_equal(x->compromised_at, y->compromised_at);
		assert_int_equal(x->testing, y->testing);
	}
	assert_int_equal(a->first_active_at, b->first_active_at);
}

static char *
mktemp_dir(void)
{
	char *d = xstrdup("/tmp/dk-state-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void
rm_dir(char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *dp;

	assert_non_null(dp = opendir(dir));
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == -1)
			assert_int_equal(rmdir(path), 0);
	}
	closedir(dp);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

static size_t
count_entries(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *dp;

	assert_non_null(dp = opendir(dir));
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static char *
read_file(const char *path)
{
	char *buf = calloc(1, 1 << 16);
	ssize_t n;
	int fd;

	assert_non_null(buf);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	n = read(fd, buf, (1 << 16) - 1);
	assert_true(n >= 0);
	close(fd);
	return buf;
}

static void
test_state_round_trip_format_then_parse_is_equal(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *text = NULL, *again = NULL;

	assert_int_equal(dk_state_format(st, &text), DK_OK);
	if (dk_state_parse(text, strlen(text), "rt", &back, &err) != DK_OK)
		fail_msg("%s", err.msg);
	assert_states_equal(st, back);
	assert_int_equal(dk_state_format(back, &again), DK_OK);
	assert_string_equal(text, again);
	free(text);
	free(again);
	dk_state_free(st);
	dk_state_free(back);
}

static void
test_state_format_writes_documented_layout(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *text = NULL;

	assert_int_equal(dk_state_parse(valid, strlen(valid), "v", &st, &err),
	    DK_OK);
	assert_int_equal(dk_state_format(st, &text), DK_OK);
	/* valid is an unsealed file: the writer adds the seal. */
	assert_int_equal(strncmp(text, valid, strlen(valid) - 4), 0);
	assert_int_equal(strncmp(text + strlen(valid) - 4, "end sha256=", 11),
	    0);
	assert_int_equal(strlen(text), strlen(valid) - 4 + 11 + 64 + 1);
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);
	dk_state_free(st);
}

static void
test_state_parse_accepts_comments_and_blank_lines(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *t = edit(valid, "domain: example.com\n",
	    "\n   # a comment\n\tdomain:   example.com   # trailing\n\n");

	assert_int_equal(dk_state_parse(t, strlen(t), "c", &st, &err), DK_OK);
	assert_string_equal(st->domain, "example.com");
	assert_int_equal(st->nkeys, 1);
	assert_int_equal(st->keys[0].visible_at, T0 + 20);
	free(t);
	dk_state_free(st);
}

static void
test_state_commit_then_load_gives_same_state(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir();

	assert_int_equal(dk_state_commit(dir, st, &err), DK_OK);
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err), DK_OK);
	assert_states_equal(st, back);
	dk_state_free(back);
	/* A second commit replaces the first. */
	st->keys[2].published_at = T0 + 100;
	assert_int_equal(dk_state_commit(dir, st, &err), DK_OK);
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err), DK_OK);
	assert_int_equal(back->keys[2].published_at, T0 + 100);
	dk_state_free(back);
	dk_state_free(st);
	rm_dir(dir);
}

static void
test_state_commit_leaves_no_temp_and_mode_0600(void **unused)
{
	struct dk_domain_state *st = sample_state();
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[512];
	struct stat sb;
	mode_t old = umask(0);

	assert_int_equal(dk_state_commit(dir, st, &err), DK_OK);
	umask(old);
	assert_int_equal(count_entries(dir), 1);
	snprintf(path, sizeof(path), "%s/example.com.state", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	dk_state_free(st);
	rm_dir(dir);
}

static void
test_state_commit_removes_stale_temp_from_crash(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[512];
	static const char junk[] = "version: 1\ndomain: exa";

	snprintf(path, sizeof(path), "%s/.example.com.state.tmp", dir);
	write_file(path, junk, sizeof(junk) - 1);
	/* Before the commit, the stale temp does not count as state. */
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err),
	    DK_ENOTFOUND);
	assert_int_equal(dk_state_commit(dir, st, &err), DK_OK);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err), DK_OK);
	assert_states_equal(st, back);
	dk_state_free(back);
	dk_state_free(st);
	rm_dir(dir);
}

static void
test_state_commit_failure_keeps_old_file(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[512], tmp[512], *before, *after;

	assert_int_equal(dk_state_commit(dir, st, &err), DK_OK);
	snprintf(path, sizeof(path), "%s/example.com.state", dir);
	before = read_file(path);
	/* A directory where the temp file goes: it cannot be created. */
	snprintf(tmp, sizeof(tmp), "%s/.example.com.state.tmp", dir);
	assert_int_equal(mkdir(tmp, 0700), 0);
	st->keys[2].published_at = T0 + 100;
	assert_int_equal(dk_state_commit(dir, st, &err), DK_EIO);
	assert_non_null(strstr(err.msg, ".example.com.state.tmp"));
	after = read_file(path);
	assert_string_equal(before, after);
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err), DK_OK);
	assert_int_equal(back->keys[2].published_at, 0);
	free(before);
	free(after);
	dk_state_free(back);
	dk_state_free(st);
	rm_dir(dir);
}

static void
test_state_commit_to_missing_dir_fails_with_eio(void **unused)
{
	struct dk_domain_state *st = sample_state();
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), sub[512];

	snprintf(sub, sizeof(sub), "%s/absent", dir);
	assert_int_equal(dk_state_commit(sub, st, &err), DK_EIO);
	assert_non_null(strstr(err.msg, sub));
	assert_int_equal(count_entries(dir), 0);
	dk_state_free(st);
	rm_dir(dir);
}

static void
test_state_commit_refuses_invalid_state(void **unused)
{
	struct dk_domain_state *st = sample_state();
	struct dk_error err = { 0 };
	char *dir = mktemp_dir();

	/* Out of order in memory: never written, never read back wrong. */
	st->keys[0].active_at = T0 + 100;
	assert_int_equal(dk_state_commit(dir, st, &err), DK_EINVAL);
	assert_int_equal(count_entries(dir), 0);
	dk_state_free(st);
	rm_dir(dir);
}

static void
test_state_load_missing_file_is_notfound(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir();

	assert_int_equal(dk_state_load(dir, "example.com", &st, &err),
	    DK_ENOTFOUND);
	assert_null(st);
	rm_dir(dir);
}

static void
test_state_load_refuses_symlink(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[512], real[512];

	snprintf(real, sizeof(real), "%s/real", dir);
	write_file(real, valid, strlen(valid));
	snprintf(path, sizeof(path), "%s/example.com.state", dir);
	assert_int_equal(symlink(real, path), 0);
	assert_int_equal(dk_state_load(dir, "example.com", &st, &err),
	    DK_EUNSAFE);
	assert_null(st);
	rm_dir(dir);
}

static void
test_state_load_refuses_file_over_1mib(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[512], *big;
	size_t n = 1024 * 1024 + 10;

	big = malloc(n);
	assert_non_null(big);
	memset(big, '#', n);
	big[n - 1] = '\n';
	snprintf(path, sizeof(path), "%s/example.com.state", dir);
	write_file(path, big, n);
	assert_int_equal(dk_state_load(dir, "example.com", &st, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "1 MiB"));
	free(big);
	rm_dir(dir);
}

static void
test_state_load_rejects_other_domain(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[512];

	snprintf(path, sizeof(path), "%s/example.org.state", dir);
	write_file(path, valid, strlen(valid));
	assert_int_equal(dk_state_load(dir, "example.org", &st, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "example.org.state:4:"));
	assert_non_null(strstr(err.msg, "example.com"));
	assert_null(st);
	rm_dir(dir);
}

static void
test_state_rejects_truncation_at_every_offset(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	size_t len = strlen(valid), cut;
	int rc;

	for (cut = 0; cut <= len; cut++) {
		st = NULL;
		rc = dk_state_parse(valid, cut, "cut", &st, &err);
		if (cut == len) {
			assert_int_equal(rc, DK_OK);
		} else if (rc != DK_ECORRUPT) {
			fail_msg("cut at %zu of %zu: rc %d", cut, len, rc);
		}
		dk_state_free(st);
	}
	assert_int_equal(dk_state_parse(valid, len - 4, "cut", &st, &err),
	    DK_ECORRUPT);
	assert_string_equal(err.msg, "cut: truncated (no end line)");
}

static void
test_state_rejects_newer_version(void **unused)
{
	struct dk_error err = { 0 };
	char *t = edit(valid, "version: 1", "version: 2");

	assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
	assert_string_equal(err.msg,
	    "t.state: version 2 is newer than this dkimkeyd understands");
	free(t);
	assert_corrupt_edit("version: 1", "version: 0", "t.state:3: bad version");
	assert_corrupt_edit("version: 1\n", "", "t.state:3: expected version");
}

static void
test_state_rejects_out_of_order_timestamps(void **unused)
{
	assert_corrupt_edit("visible: 1795392020", "visible: 1795392005",
	    "visible 1795392005 is before published 1795392010");
	assert_corrupt_edit("active: 0", "active: 1795392010",
	    "t.state:6: key mail1 5f3c0a1b2c3d4e5f: active 1795392010 is "
	    "before visible");
	/* A set timestamp needs all earlier ones set. */
	assert_corrupt_edit("removed: 0", "removed: 1795392100",
	    "removed is set but active is not");
	assert_corrupt_edit("published: 1795392010", "published: 0",
	    "visible is set but published is not");
	assert_corrupt_edit("created: 1795392000", "created: 0",
	    "created is not set");
}

static void
test_state_rejects_bad_numbers(void **unused)
{
	assert_corrupt_edit("active: 0", "active: -5", "t.state:16: bad active");
	assert_corrupt_edit("active: 0", "active: 12x", "bad active");
	assert_corrupt_edit("active: 0", "active: ", "bad active");
	assert_corrupt_edit("active: 0", "active: 99999999999999999999",
	    "bad active");
	assert_corrupt_edit("ttl: 3600", "ttl: -1", "bad ttl");
	assert_corrupt_edit("drain: 3600", "drain: -2", "bad drain");
}

static void
test_state_accepts_unknown_drain(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *t = edit(valid, "drain: 3600", "drain: -1");

	assert_int_equal(dk_state_parse(t, strlen(t), "d", &st, &err), DK_OK);
	assert_int_equal(st->keys[0].drain, -1);
	free(t);
	dk_state_free(st);
}

static void
test_state_rejects_bad_public_key(void **unused)
{
	assert_corrupt_edit("public: MCow", "public: MC!w",
	    "t.state:10: bad public key");
	assert_corrupt_edit("  public: MCow", "  publicx: MCow",
	    "unknown key");
	assert_corrupt_edit("  public: MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n",
	    "", "missing");
}

static void
test_state_rejects_unknown_key(void **unused)
{
	assert_corrupt_edit("  ttl: 3600\n", "  ttl: 3600\n  colour: red\n",
	    "t.state:12: unknown key \"colour\"");
	assert_corrupt_edit("domain: example.com\n",
	    "domain: example.com\nowner: me\n", "unknown key \"owner\"");
}

static void
test_state_rejects_duplicate_field(void **unused)
{
	assert_corrupt_edit("  ttl: 3600\n", "  ttl: 3600\n  ttl: 3600\n",
	    "t.state:12: duplicate ttl");
	assert_corrupt_edit("domain: example.com\n",
	    "domain: example.com\ndomain: example.com\n", "duplicate domain");
	assert_corrupt_edit("version: 1\n", "version: 1\nversion: 1\n",
	    "duplicate version");
}

static void
test_state_rejects_duplicate_key_entry(void **unused)
{
	const char *block = strstr(valid, "key: mail1");
	char *twice, *t;

	twice = malloc(strlen(block) * 2 + 1);
	assert_non_null(twice);
	strcpy(twice, block);
	twice[strlen(twice) - strlen("end\n")] = '\0';
	strcat(twice, block);
	t = edit(valid, block, twice);
	{
		struct dk_error err = { 0 };

		assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
		assert_non_null(strstr(err.msg,
		    "duplicate key mail1 5f3c0a1b2c3d4e5f"));
	}
	free(t);
	free(twice);
}

static void
test_state_rejects_missing_field(void **unused)
{
	assert_corrupt_edit("  drain: 3600\n", "",
	    "t.state:6: key mail1 5f3c0a1b2c3d4e5f: missing drain");
	assert_corrupt_edit("  removed: 0\n", "", "missing removed");
	assert_corrupt_edit("domain: example.com\n", "", "key before domain");
}

static void
test_state_rejects_nul_byte(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *t = xstrdup(valid);
	size_t len = strlen(t);

	t[strstr(t, "rsa-2048") - t + 3] = '\0';
	assert_int_equal(dk_state_parse(t, len, "n", &st, &err), DK_ECORRUPT);
	assert_string_equal(err.msg, "n:7: NUL byte");
	assert_null(st);
	free(t);
}

static void
test_state_rejects_bad_selector_and_key_id(void **unused)
{
	assert_corrupt_edit("key: mail1 ", "key: ma/il ", "bad selector");
	assert_corrupt_edit("key: mail1 ", "key: -mail ", "bad selector");
	assert_corrupt_edit("key: mail1 ", "key: a..b ", "bad selector");
	assert_corrupt_edit("5f3c0a1b2c3d4e5f\n", "5f3c0a1b2c3d4e5g\n",
	    "is not lower-case hex");
	assert_corrupt_edit("5f3c0a1b2c3d4e5f\n", "5F3C\n",
	    "is not lower-case hex");
	assert_corrupt_edit("5f3c0a1b2c3d4e5f\n", "5f3c extra\n",
	    "expected key: SELECTOR KEY-ID");
}

static void
test_state_rejects_content_after_end_and_control_chars(void **unused)
{
	struct dk_error err = { 0 };
	char *t;

	t = edit(valid, "end\n", "end\nkey: x 1\n");
	assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "content after end line"));
	free(t);
	assert_corrupt_edit("version: 1\n", "version: 1\r\n",
	    "control character");
}

static void
test_state_field_outside_key_block_is_corrupt(void **unused)
{
	assert_corrupt_edit("domain: example.com\n",
	    "domain: example.com\nttl: 5\n", "ttl: outside of a key block");
}

static void
test_key_state_follows_latest_past_timestamp(void **unused)
{
	struct dk_key_state k;

	make_key(&k, "s", "ab", "/f");
	assert_int_equal(dk_key_state_get(&k, T0), DK_KS_CREATED);
	assert_int_equal(dk_key_state_get(&k, T0 - 100), DK_KS_CREATED);
	k.published_at = T0 + 10;
	k.visible_at = T0 + 20;
	k.active_at = T0 + 30;
	k.retired_at = T0 + 40;
	k.revoked_at = T0 + 50;
	k.removed_at = T0 + 60;
	assert_int_equal(dk_key_state_get(&k, T0 + 9), DK_KS_CREATED);
	assert_int_equal(dk_key_state_get(&k, T0 + 10), DK_KS_PUBLISHED);
	assert_int_equal(dk_key_state_get(&k, T0 + 25), DK_KS_VISIBLE);
	assert_int_equal(dk_key_state_get(&k, T0 + 30), DK_KS_ACTIVE);
	assert_int_equal(dk_key_state_get(&k, T0 + 45), DK_KS_RETIRED);
	assert_int_equal(dk_key_state_get(&k, T0 + 59), DK_KS_REVOKED);
	assert_int_equal(dk_key_state_get(&k, T0 + 60), DK_KS_REMOVED);
	assert_string_equal(dk_kstate_name(DK_KS_ACTIVE), "active");
	assert_string_equal(dk_kstate_name(DK_KS_REMOVED), "removed");
}

static void
test_state_add_key_rejects_invalid_key(void **unused)
{
	struct dk_domain_state *st = dk_state_new("example.com");
	struct dk_key_state k;

	make_key(&k, "bad sel", "ab", "/f");
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	make_key(&k, "ok", "xyz", "/f");
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	make_key(&k, "ok", "ab", "/f\nversion: 2");
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	/* " #" would read back as a comment. */
	make_key(&k, "ok", "ab", "/f #x");
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	make_key(&k, "ok", "ab", "/f");
	k.visible_at = T0;
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	assert_int_equal(st->nkeys, 0);
	dk_state_free(st);
}

static void
test_state_path_refuses_unsafe_domain(void **unused)
{
	char *p = NULL;

	assert_int_equal(dk_state_path("/d", "example.com", &p), DK_OK);
	assert_string_equal(p, "/d/example.com.state");
	free(p);
	p = NULL;
	assert_int_equal(dk_state_path("/d", "../etc", &p), DK_EINVAL);
	assert_int_equal(dk_state_path("/d", "a/b", &p), DK_EINVAL);
	assert_int_equal(dk_state_path("/d", "", &p), DK_EINVAL);
	assert_null(p);
}

/* --- generations and compromised keys --- */

static void
test_state_writes_generation_and_compromised_only_when_set(void **unused)
{
	struct dk_domain_state *st = sample_state();
	char *text = NULL;

	assert_int_equal(dk_state_format(st, &text), DK_OK);
	assert_non_null(strstr(text, "key: mail2 5f3c0a1b2c3d4e5f\n"
	    "  algorithm: rsa-2048\n  generation: 2\n"));
	assert_non_null(strstr(text, "  compromised: 1795392030\t# "
	    "2026-11-23T00:00:30Z\nend sha256="));
	/* Only the compromised key carries the field. */
	assert_null(strstr(strstr(text, "compromised:") + 1,
	    "compromised:"));
	free(text);
	dk_state_free(st);
}

/* testing =: t=y on a key, and the domain's first activation. */
static void
test_state_testing_and_first_active_round_trip(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *text = NULL;

	st->keys[1].testing = 1;
	st->first_active_at = T0 + 20;
	assert_int_equal(dk_state_format(st, &text), DK_OK);
	assert_non_null(strstr(text, "domain: example.com\n"
	    "first_active: 1795392020\n"));
	assert_non_null(strstr(text, "  testing: 1\n"));
	assert_null(strstr(strstr(text, "testing:") + 1, "testing:"));
	if (dk_state_parse(text, strlen(text), "rt", &back, &err) != DK_OK)
		fail_msg("%s", err.msg);
	assert_states_equal(st, back);
	assert_int_equal(back->keys[1].testing, 1);
	assert_int_equal(dk_state_first_active(back), T0 + 20);
	/* Not recorded (an older state): the earliest activation. */
	back->first_active_at = 0;
	assert_int_equal(dk_state_first_active(back), T0 + 3);
	back->keys[0].active_at = 0;
	back->keys[1].active_at = 0;
	assert_int_equal(dk_state_first_active(back), 0);
	free(text);
	dk_state_free(st);
	dk_state_free(back);
	assert_corrupt_edit("  removed: 0\n", "  removed: 0\n  testing: 2\n",
	    "bad testing \"2\"");
}

static void
test_state_rejects_missing_or_bad_generation(void **unused)
{
	assert_corrupt_edit("  generation: 1\n", "",
	    "key mail1 5f3c0a1b2c3d4e5f: missing generation");
	assert_corrupt_edit("generation: 1", "generation: 0",
	    "t.state:8: bad generation \"0\"");
	assert_corrupt_edit("generation: 1", "generation: -1",
	    "bad generation");
	assert_corrupt_edit("generation: 1", "generation: 1x",
	    "bad generation");
	assert_corrupt_edit("generation: 1", "generation: 1\n  generation: 2",
	    "duplicate generation");
}

static void
test_state_rejects_bad_compromised(void **unused)
{
	assert_corrupt_edit("  removed: 0\n",
	    "  removed: 0\n  compromised: 0\n",
	    "bad compromised timestamp \"0\"");
	assert_corrupt_edit("  removed: 0\n",
	    "  removed: 0\n  compromised: x\n",
	    "bad compromised timestamp");
	/* Before the key existed. */
	assert_corrupt_edit("  removed: 0\n",
	    "  removed: 0\n  compromised: 1795391999\n",
	    "compromised out of range");
	assert_corrupt_edit("  removed: 0\n",
	    "  removed: 0\n  compromised: 1795392100\n"
	    "  compromised: 1795392100\n", "duplicate compromised");
}

/* The file with a second key block appended (before "end"). */
static char *
with_second_key(const char *sel, const char *id, const char *gen)
{
	char block[1024], *t;

	snprintf(block, sizeof(block),
	    "key: %s %s\n"
	    "  algorithm: ed25519\n"
	    "  generation: %s\n"
	    "  file: /k/%s.pem\n"
	    "  public: MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
	    "  ttl: 3600\n"
	    "  drain: -1\n"
	    "  created: 1795392000\n"
	    "  published: 0\n"
	    "  visible: 0\n"
	    "  active: 0\n"
	    "  retired: 0\n"
	    "  revoked: 0\n"
	    "  removed: 0\n"
	    "end\n", sel, id, gen, sel);
	t = edit(valid, "end\n", block);
	return t;
}

static void
test_state_generation_groups_keys_of_one_rotation(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *t;

	/* RSA and Ed25519 key of one rotation: accepted. */
	t = with_second_key("ed1", "0a0b", "1");
	assert_int_equal(dk_state_parse(t, strlen(t), "t.state", &st, &err),
	    DK_OK);
	assert_int_equal(st->nkeys, 2);
	assert_int_equal(st->keys[0].generation, 1);
	assert_int_equal(st->keys[1].generation, 1);
	dk_state_free(st);
	free(t);

	/* Two keys of one generation on one selector: corrupt. */
	t = with_second_key("mail1", "0a0b", "1");
	assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg,
	    "generation 1 already has a key on selector mail1"));
	free(t);

	/* Generations never go back in file order. */
	t = edit(valid, "generation: 1", "generation: 3");
	{
		char *t2 = edit(t, "end\n", "key: ed1 0a0b\n"
		    "  algorithm: ed25519\n  generation: 2\n"
		    "  file: /k/e.pem\n  public: AAAA\n  ttl: 1\n"
		    "  drain: -1\n  created: 1795392000\n  published: 0\n"
		    "  visible: 0\n  active: 0\n  retired: 0\n  revoked: 0\n"
		    "  removed: 0\nend\n");

		assert_int_equal(parse_str(t2, &err), DK_ECORRUPT);
		assert_non_null(strstr(err.msg, "generation 2 is older than "
		    "the previous key's (3)"));
		free(t2);
	}
	free(t);
}

static void
test_state_compromised_key_may_skip_to_revoked(void **unused)
{
	struct dk_domain_state *st = dk_state_new("example.com");
	struct dk_key_state k;

	assert_non_null(st);
	/* Abandoned before activation: revoked with no active/retired. */
	make_key(&k, "mail1", "ab", "/k/a.pem");
	k.published_at = T0 + 1;
	k.revoked_at = T0 + 5;
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	k.compromised_at = T0 + 4;
	assert_int_equal(dk_state_add_key(st, &k), 0);
	assert_int_equal(dk_key_state_get(&st->keys[0], T0 + 5),
	    DK_KS_REVOKED);
	/* But never a retired key without active, compromised or not. */
	make_key(&k, "mail2", "cd", "/k/b.pem");
	k.generation = 2;
	k.published_at = T0 + 1;
	k.visible_at = T0 + 2;
	k.retired_at = T0 + 3;
	k.compromised_at = T0 + 3;
	assert_int_equal(dk_state_add_key(st, &k), DK_EINVAL);
	assert_int_equal(st->nkeys, 1);
	dk_state_free(st);
}

/* Every single-bit flip of a sealed file is refused as corrupt. */
static void
test_state_seal_refuses_every_single_bit_flip(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *text = NULL;
	size_t len, i, flips = 0;
	int bit, rc;

	assert_int_equal(dk_state_format(st, &text), DK_OK);
	len = strlen(text);
	for (i = 0; i < len; i++)
		for (bit = 0; bit < 8; bit++) {
			text[i] ^= (char)(1 << bit);
			back = NULL;
			rc = dk_state_parse(text, len, "f", &back, &err);
			if (rc != DK_ECORRUPT)
				fail_msg("flip of bit %d at offset %zu: %d",
				    bit, i, rc);
			dk_state_free(back);
			text[i] ^= (char)(1 << bit);
			flips++;
		}
	assert_int_equal(flips, 8 * len);
	/* And the file itself still loads. */
	assert_int_equal(dk_state_parse(text, len, "f", &back, &err), DK_OK);
	dk_state_free(back);
	free(text);
	dk_state_free(st);
}

static void
test_state_seal_mismatch_names_the_seal_command(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *text = NULL, *t;

	assert_int_equal(dk_state_format(st, &text), DK_OK);
	/* A hand edit that is itself valid: still refused until sealed. */
	t = edit(text, "ttl: 3600", "ttl: 3601");
	assert_int_equal(dk_state_parse(t, strlen(t), "e.state", &back, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "e.state: the file does not match "
	    "its seal"));
	assert_non_null(strstr(err.msg, "dkimkeyd state seal"));
	free(t);
	/* A seal that is not 64 lower-case hex digits is malformed. */
	t = edit(text, "end sha256=", "end sha256=A");
	t[strlen(t) - 2] = '\n';
	t[strlen(t) - 1] = '\0';
	assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "malformed seal"));
	free(t);
	/* The seal is the last line only. */
	t = edit(text, "\nkey: mail2", "\nend sha256=00\nkey: mail2");
	assert_int_equal(parse_str(t, &err), DK_ECORRUPT);
	free(t);
	free(text);
	dk_state_free(st);
}

/* An edited file: load_edited checks every field but not the seal. */
static void
test_state_load_edited_ignores_seal_but_checks_fields(void **unused)
{
	struct dk_domain_state *st = sample_state(), *back = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), *text = NULL, *t, path[4096];
	FILE *f;

	assert_int_equal(dk_state_format(st, &text), DK_OK);
	snprintf(path, sizeof(path), "%s/example.com.state", dir);
	t = edit(text, "ttl: 3600", "ttl: 3601");
	assert_non_null(f = fopen(path, "w"));
	fputs(t, f);
	fclose(f);
	free(t);
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err),
	    DK_ECORRUPT);
	assert_int_equal(dk_state_load_edited(dir, "example.com", &back,
	    &err), DK_OK);
	assert_int_equal(back->keys[0].ttl, 3601);
	/* Commit seals it again: a plain load accepts it. */
	assert_int_equal(dk_state_commit(dir, back, &err), DK_OK);
	dk_state_free(back);
	assert_int_equal(dk_state_load(dir, "example.com", &back, &err),
	    DK_OK);
	dk_state_free(back);
	/* A bad field is still refused. */
	t = edit(text, "ttl: 3600", "ttl: 36x0");
	assert_non_null(f = fopen(path, "w"));
	fputs(t, f);
	fclose(f);
	free(t);
	assert_int_equal(dk_state_load_edited(dir, "example.com", &back,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "bad ttl"));
	unlink(path);
	rmdir(dir);
	free(dir);
	free(text);
	dk_state_free(st);
}

/* A file written before files were sealed is read as it is. */
static void
test_state_accepts_unsealed_file(void **unused)
{
	struct dk_error err = { 0 };

	assert_int_equal(parse_str(valid, &err), DK_OK);
}

static void
test_state_domain_is_canonical_lower_case(void **unused)
{
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0 };
	char *dir = mktemp_dir(), path[4096];
	char *t = edit(valid, "domain: example.com", "domain: EXAMPLE.Com");
	FILE *f;

	assert_int_equal(dk_state_parse(t, strlen(t), "c", &st, &err), DK_OK);
	assert_string_equal(st->domain, "example.com");
	dk_state_free(st);
	st = NULL;
	snprintf(path, sizeof(path), "%s/example.com.state", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(t, f);
	fclose(f);
	free(t);
	assert_int_equal(dk_state_load(dir, "example.com", &st, &err), DK_OK);
	assert_string_equal(st->domain, "example.com");
	dk_state_free(st);
	st = NULL;
	t = edit(valid, "domain: example.com", "domain: EXAMPLE.ORG");
	assert_non_null(f = fopen(path, "w"));
	fputs(t, f);
	fclose(f);
	free(t);
	assert_int_equal(dk_state_load(dir, "example.com", &st, &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "state is for domain example.org, "
	    "not example.com"));
	unlink(path);
	rmdir(dir);
	free(dir);
}

/* Values that parse but no configuration can produce. */
static void
test_state_rejects_values_out_of_range(void **unused)
{
	assert_corrupt_edit("ttl: 3600", "ttl: 4294967296", "ttl 4294967296 "
	    "out of range");
	assert_corrupt_edit("ttl: 3600", "ttl: 0", "ttl 0 out of range");
	assert_corrupt_edit("ttl: 3600", "ttl: 604801", "out of range");
	assert_corrupt_edit("drain: 3600", "drain: 99999999999",
	    "drain 99999999999 out of range");
	assert_corrupt_edit("drain: 3600", "drain: 2147483648",
	    "out of range");
	assert_corrupt_edit("generation: 1", "generation: 2147483648",
	    "generation 2147483648 out of range");
	assert_corrupt_edit("published: 1795392010",
	    "published: 999999999999", "published 999999999999 out of range");
	assert_corrupt_edit("removed: 0",
	    "compromised: 999999999999\n  removed: 0", "compromised out of "
	    "range");
	/* The largest values the configuration gives still load. */
	{
		struct dk_error err = { 0 };
		char *t = edit(valid, "ttl: 3600", "ttl: 604800");
		char *t2 = edit(t, "drain: 3600", "drain: 2147483647");

		assert_int_equal(parse_str(t2, &err), DK_OK);
		free(t);
		free(t2);
	}
}

/* Removed keys beyond the bound go, oldest first, never a selector's last. */
static void
test_state_compact_bounds_removed_history(void **unused)
{
	struct dk_domain_state *st = dk_state_new("example.com");
	struct dk_key_state k;
	char id[32];
	int64_t g;

	assert_non_null(st);
	for (g = 1; g <= 30; g++) {
		snprintf(id, sizeof(id), "%02llx", (unsigned long long)g);
		make_key(&k, g % 2 ? "mail1" : "mail2", id, "/k/x.pem");
		k.generation = g;
		k.created_at = T0 + g * 100;
		if (g <= 28) {
			k.published_at = k.created_at + 1;
			k.visible_at = k.created_at + 2;
			k.active_at = k.created_at + 3;
			k.retired_at = k.created_at + 100;
			k.revoked_at = k.created_at + 150;
			k.removed_at = k.created_at + 160;
		}
		assert_true(dk_state_add_key(st, &k) >= 0);
	}
	assert_int_equal(dk_state_compact(st, 30), 0);
	assert_int_equal(st->nkeys, 30);
	/* Committed with a bound: the file is compacted, st is not. */
	{
		struct dk_domain_state *back = NULL;
		struct dk_error err = { 0 };
		char *dir = mktemp_dir(), path[4096];

		assert_int_equal(dk_state_commit_keep(dir, st, 5, &err),
		    DK_OK);
		assert_int_equal(st->nkeys, 30);
		assert_int_equal(dk_state_load(dir, "example.com", &back,
		    &err), DK_OK);
		assert_int_equal(back->nkeys, 7);
		assert_string_equal(back->keys[0].key_id, "18");
		dk_state_free(back);
		snprintf(path, sizeof(path), "%s/example.com.state", dir);
		unlink(path);
		rmdir(dir);
		free(dir);
	}
	assert_int_equal(dk_state_compact(st, 5), 23);
	assert_int_equal(st->nkeys, 7);
	/* The newest five removed keys and the two live ones, in order. */
	assert_string_equal(st->keys[0].key_id, "18");
	assert_string_equal(st->keys[4].key_id, "1c");
	assert_string_equal(st->keys[6].key_id, "1e");
	assert_int_equal(dk_state_compact(st, 5), 0);
	/* Keep 0: each selector's newest removed key still stays. */
	assert_int_equal(dk_state_compact(st, 0), 3);
	assert_int_equal(st->nkeys, 4);
	assert_string_equal(st->keys[0].key_id, "1b");
	assert_string_equal(st->keys[1].key_id, "1c");
	dk_state_free(st);
}

static void
test_state_check_files_only_accepts_key_dir_names(void **unused)
{
	struct dk_domain_state *st = dk_state_new("example.com");
	struct dk_error err = { 0 };
	struct dk_key_state k;
	char *p = NULL;

	assert_non_null(st);
	assert_int_equal(dk_state_key_file("/var/k/", "example.com", "mail1",
	    "ab", &p), DK_OK);
	assert_string_equal(p, "/var/k/example.com.mail1.ab.pem");
	make_key(&k, "mail1", "ab", p);
	assert_int_equal(dk_state_add_key(st, &k), 0);
	free(p);
	assert_int_equal(dk_state_check_files(st, "/var/k", "s", &err), DK_OK);
	assert_int_equal(dk_state_check_files(st, "/var/k//", "s", &err),
	    DK_OK);
	assert_int_equal(dk_state_check_files(st, "/var/other", "s", &err),
	    DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "s: key mail1 ab: file "
	    "/var/k/example.com.mail1.ab.pem is not "
	    "/var/other/example.com.mail1.ab.pem"));
	free(st->keys[0].file);
	st->keys[0].file = strdup("/etc/passwd");
	assert_int_equal(dk_state_check_files(st, "/var/k", "s", &err),
	    DK_ECORRUPT);
	free(st->keys[0].file);
	st->keys[0].file = strdup("/var/k/../k/example.com.mail1.ab.pem");
	assert_int_equal(dk_state_check_files(st, "/var/k", "s", &err),
	    DK_ECORRUPT);
	free(st->keys[0].file);
	st->keys[0].file = strdup("/var/k/example.com.mail1.cd.pem");
	assert_int_equal(dk_state_check_files(st, "/var/k", "s", &err),
	    DK_ECORRUPT);
	dk_state_free(st);
}

static void
test_state_latest_is_the_last_recorded_step(void **unused)
{
	struct dk_domain_state *st = sample_state();

	assert_int_equal(dk_state_latest(st), T0 + 30);
	dk_state_free(st);
	st = dk_state_new("example.com");
	assert_int_equal(dk_state_latest(st), 0);
	dk_state_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_round_trip_format_then_parse_is_equal),
		cmocka_unit_test(test_state_format_writes_documented_layout),
		cmocka_unit_test(test_state_parse_accepts_comments_and_blank_lines),
		cmocka_unit_test(test_state_commit_then_load_gives_same_state),
		cmocka_unit_test(test_state_commit_leaves_no_temp_and_mode_0600),
		cmocka_unit_test(test_state_commit_removes_stale_temp_from_crash),
		cmocka_unit_test(test_state_commit_failure_keeps_old_file),
		cmocka_unit_test(test_state_commit_to_missing_dir_fails_with_eio),
		cmocka_unit_test(test_state_commit_refuses_invalid_state),
		cmocka_unit_test(test_state_load_missing_file_is_notfound),
		cmocka_unit_test(test_state_load_refuses_symlink),
		cmocka_unit_test(test_state_load_refuses_file_over_1mib),
		cmocka_unit_test(test_state_load_rejects_other_domain),
		cmocka_unit_test(test_state_rejects_truncation_at_every_offset),
		cmocka_unit_test(test_state_rejects_newer_version),
		cmocka_unit_test(test_state_rejects_out_of_order_timestamps),
		cmocka_unit_test(test_state_rejects_bad_numbers),
		cmocka_unit_test(test_state_accepts_unknown_drain),
		cmocka_unit_test(test_state_rejects_bad_public_key),
		cmocka_unit_test(test_state_rejects_unknown_key),
		cmocka_unit_test(test_state_rejects_duplicate_field),
		cmocka_unit_test(test_state_rejects_duplicate_key_entry),
		cmocka_unit_test(test_state_rejects_missing_field),
		cmocka_unit_test(test_state_rejects_nul_byte),
		cmocka_unit_test(test_state_rejects_bad_selector_and_key_id),
		cmocka_unit_test(test_state_rejects_content_after_end_and_control_chars),
		cmocka_unit_test(test_state_field_outside_key_block_is_corrupt),
		cmocka_unit_test(test_key_state_follows_latest_past_timestamp),
		cmocka_unit_test(test_state_add_key_rejects_invalid_key),
		cmocka_unit_test(test_state_path_refuses_unsafe_domain),
		cmocka_unit_test(test_state_writes_generation_and_compromised_only_when_set),
		cmocka_unit_test(test_state_testing_and_first_active_round_trip),
		cmocka_unit_test(test_state_rejects_missing_or_bad_generation),
		cmocka_unit_test(test_state_rejects_bad_compromised),
		cmocka_unit_test(test_state_generation_groups_keys_of_one_rotation),
		cmocka_unit_test(test_state_compromised_key_may_skip_to_revoked),
		cmocka_unit_test(test_state_seal_refuses_every_single_bit_flip),
		cmocka_unit_test(test_state_seal_mismatch_names_the_seal_command),
		cmocka_unit_test(test_state_load_edited_ignores_seal_but_checks_fields),
		cmocka_unit_test(test_state_accepts_unsealed_file),
		cmocka_unit_test(test_state_domain_is_canonical_lower_case),
		cmocka_unit_test(test_state_rejects_values_out_of_range),
		cmocka_unit_test(test_state_compact_bounds_removed_history),
		cmocka_unit_test(test_state_check_files_only_accepts_key_dir_names),
		cmocka_unit_test(test_state_latest_is_the_last_recorded_step),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
