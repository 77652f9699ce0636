/* tests/unit/test_conf.c — dkimkeyd.conf(5) parsing. */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "conf.h"

struct fixture {
	char	dir[64];
	char	main[128];
};

static const char provider_signer[] =
    "[provider primary]\n"
    "type = rfc2136\n"
    "server = 192.0.2.53:53\n"
    "[signer opendkim]\n"
    "type = opendkim\n"
    "key_table = /etc/opendkim/KeyTable\n";

static int
setup(void **state)
{
	struct fixture *fx;

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/dk-test-conf.XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->main, sizeof(fx->main), "%s/dkimkeyd.conf", fx->dir);
	*state = fx;
	return 0;
}

static void
rm_tree(const char *dir)
{
	char cmd[PATH_MAX + 16];

	/* Only ever our own mkdtemp directory. */
	if (strncmp(dir, "/tmp/dk-test-conf.", 18) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	rm_tree(fx->dir);
	free(fx);
	return 0;
}

/* Write rel (relative to the fixture directory), creating a subdir. */
static void
put(struct fixture *fx, const char *rel, const char *text)
{
	char path[PATH_MAX], *slash;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", fx->dir, rel);
	if ((slash = strrchr(path, '/')) != NULL && slash > path +
	    strlen(fx->dir)) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* The main file is provider_signer followed by text. */
static void
put_main(struct fixture *fx, const char *text)
{
	char buf[8192];

	snprintf(buf, sizeof(buf), "%s%s", provider_signer, text);
	put(fx, "dkimkeyd.conf", buf);
}

/* Loading must fail with DK_ECONFIG and a message containing "REL:want". */
static void
expect_error(struct fixture *fx, const char *rel, const char *want)
{
	struct dk_error err = { 0 };
	struct dk_conf *c = NULL;
	char loc[PATH_MAX + 256];

	assert_int_equal(dk_conf_load(fx->main, &c, &err), DK_ECONFIG);
	assert_null(c);
	snprintf(loc, sizeof(loc), "%s/%s:%s", fx->dir, rel, want);
	if (strstr(err.msg, loc) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, loc);
}

static struct dk_conf *
expect_ok(struct fixture *fx)
{
	struct dk_error err = { 0 };
	struct dk_conf *c = NULL;

	if (dk_conf_load(fx->main, &c, &err) != DK_OK)
		fail_msg("load failed: %s", err.msg);
	assert_non_null(c);
	return c;
}

static void
test_conf_loads_full_config_with_sorted_includes(void **state)
{
	struct fixture *fx = *state;
	const struct dk_conf_section *p, *s;
	const struct dk_conf_domain *d;
	const struct dk_conf_kv *kv = NULL;
	struct dk_conf *c;
	char cwd[PATH_MAX], want[PATH_MAX + 32];

	put(fx, "dkimkeyd.conf",
	    "; main file\n"
	    "[dkimkeyd]\n"
	    "state_dir = /srv/dk\n"
	    "key_dir = /srv/dk/private\n"
	    "key_group = opendkim\n"
	    "include = conf.d/*.conf\n"
	    "\n"
	    "[provider primary]\n"
	    "type = rfc2136\n"
	    "server = 192.0.2.53:53\n"
	    "tsig_key_file = /etc/dkimkeyd/update.key\n"
	    "[signer opendkim]\n"
	    "type = opendkim\n"
	    "reload = /usr/bin/systemctl reload opendkim\n");
	put(fx, "conf.d/b.conf",
	    "[domain b.example]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = s1 s2\n");
	put(fx, "conf.d/a.conf",
	    "[domain A.Example.]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = Mail1 mail2\n"
	    "algorithm = ed25519\n"
	    "ttl = 300\n");
	put(fx, "conf.d/ignored.txt", "garbage\n");

	/* Includes are relative to the file, not the working directory. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/"), 0);
	c = expect_ok(fx);
	assert_int_equal(chdir(cwd), 0);

	assert_string_equal(c->path, fx->main);
	assert_string_equal(c->state_dir, "/srv/dk");
	assert_string_equal(c->key_dir, "/srv/dk/private");
	assert_string_equal(c->key_group, "opendkim");
	assert_int_equal(c->nproviders, 1);
	assert_int_equal(c->nsigners, 1);
	assert_int_equal(c->ndomains, 2);
	assert_string_equal(c->domains[0].name, "a.example");
	assert_string_equal(c->domains[1].name, "b.example");

	d = dk_conf_domain_find(c, "A.EXAMPLE.");
	assert_ptr_equal(d, &c->domains[0]);
	assert_string_equal(d->provider, "primary");
	assert_string_equal(d->signer, "opendkim");
	assert_string_equal(d->selectors[0], "mail1");
	assert_string_equal(d->selectors[1], "mail2");
	assert_int_equal(d->keyspec.alg, DK_ALG_ED25519);
	assert_int_equal(d->ttl, 300);
	assert_int_equal(d->line, 1);
	snprintf(want, sizeof(want), "%s/conf.d/a.conf", fx->dir);
	assert_string_equal(d->file, want);
	assert_null(dk_conf_domain_find(c, "c.example"));

	p = dk_conf_provider_find(c, "primary");
	assert_non_null(p);
	assert_string_equal(p->type, "rfc2136");
	assert_string_equal(p->kind, "provider");
	assert_int_equal(p->line, 8);
	assert_int_equal(p->nkv, 2);
	assert_string_equal(dk_conf_section_get(p, "server", &kv),
	    "192.0.2.53:53");
	assert_int_equal(kv->line, 10);
	assert_string_equal(kv->file, fx->main);
	assert_int_equal(kv->used, 1);
	assert_int_equal(p->kv[1].used, 0);
	assert_null(dk_conf_section_get(p, "zone", NULL));
	assert_null(dk_conf_provider_find(c, "opendkim"));

	s = dk_conf_signer_find(c, "opendkim");
	assert_non_null(s);
	assert_string_equal(dk_conf_section_get(s, "reload", NULL),
	    "/usr/bin/systemctl reload opendkim");
	dk_conf_free(c);
}

static void
test_conf_applies_defaults(void **state)
{
	struct fixture *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n");
	c = expect_ok(fx);
	assert_string_equal(c->state_dir, "/var/lib/dkimkeyd");
	assert_string_equal(c->key_dir, "/var/lib/dkimkeyd/keys");
	assert_null(c->key_group);
	assert_int_equal(c->backend, DK_BACKEND_DIR);
	assert_null(c->conninfo_file);
	assert_int_equal(c->lease_time, 60);
	d = &c->domains[0];
	assert_int_equal(d->keyspec.alg, DK_ALG_RSA);
	assert_int_equal(d->keyspec.bits, 2048);
	assert_int_equal(d->allow_weak_keys, 0);
	assert_int_equal(d->ttl, 3600);
	assert_int_equal(d->retire_after, 7 * 86400);
	assert_int_equal(d->propagation_timeout, 3600);
	assert_int_equal(d->safety_margin, 300);
	dk_conf_free(c);
}

static void
test_conf_postgresql_backend_with_conninfo_and_lease(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx, "[dkimkeyd]\nbackend = postgresql\n"
	    "conninfo_file = /etc/dkimkeyd/conninfo\nlease_time = 5s\n");
	c = expect_ok(fx);
	assert_int_equal(c->backend, DK_BACKEND_PG);
	assert_string_equal(c->conninfo_file, "/etc/dkimkeyd/conninfo");
	assert_int_equal(c->lease_time, 5);
	dk_conf_free(c);
}

#define PG_MAIN	"[dkimkeyd]\nbackend = postgresql\nconninfo_file = /c\n"
#define DOMAIN_X "[domain x.example]\nprovider = primary\nsigner = opendkim\n" \
	"selectors = a b\n"

static void
test_conf_hosts_kek_file_agent_timeout_and_key_scope(void **state)
{
	struct fixture *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;

	put_main(fx, PG_MAIN "kek_file = /etc/dkimkeyd/kek\n"
	    "agent_timeout = 45s\n" DOMAIN_X "hosts = mx1 MX2.example. mx3\n");
	c = expect_ok(fx);
	assert_string_equal(c->kek_file, "/etc/dkimkeyd/kek");
	assert_int_equal(c->agent_timeout, 45);
	d = &c->domains[0];
	assert_int_equal(d->nhosts, 3);
	assert_string_equal(d->hosts[0], "mx1");
	assert_string_equal(d->hosts[1], "mx2.example");
	assert_int_equal(d->key_scope, DK_SCOPE_SHARED);
	dk_conf_free(c);
	/* Defaults: no hosts, 5 minutes. */
	put_main(fx, DOMAIN_X);
	c = expect_ok(fx);
	assert_null(c->kek_file);
	assert_int_equal(c->agent_timeout, 300);
	assert_int_equal(c->domains[0].nhosts, 0);
	dk_conf_free(c);
}

static void
test_conf_hosts_need_postgresql_and_shared_keys_a_kek(void **state)
{
	struct fixture *fx = *state;

	/* provider_signer is 6 lines: [dkimkeyd] is line 7. */
	put_main(fx, "[dkimkeyd]\nkek_file = /k\n" DOMAIN_X "hosts = mx1\n");
	expect_error(fx, "dkimkeyd.conf", "13: [domain x.example] has hosts, "
	    "which need backend = postgresql");
	put_main(fx, PG_MAIN DOMAIN_X "hosts = mx1 mx2\n");
	expect_error(fx, "dkimkeyd.conf", "14: [domain x.example] shares its "
	    "keys between hosts (key_scope = shared): kek_file is needed");
	put_main(fx, PG_MAIN DOMAIN_X "key_scope = per-host\n");
	expect_error(fx, "dkimkeyd.conf", "13: [domain x.example]: key_scope "
	    "= per-host gives each host its own selectors");
	put_main(fx, PG_MAIN DOMAIN_X "key_scope = everywhere\n");
	expect_error(fx, "dkimkeyd.conf", "14: bad key_scope everywhere");
	put_main(fx, PG_MAIN "kek_file = /k\n" DOMAIN_X "hosts = mx1 mx1\n");
	expect_error(fx, "dkimkeyd.conf", "15: mx1 given twice");
	put_main(fx, PG_MAIN "kek_file = /k\n" DOMAIN_X "hosts = mx_1\n");
	expect_error(fx, "dkimkeyd.conf", "15: bad domain mx_1");
	put_main(fx, "[dkimkeyd]\nkek_file = kek\n");
	expect_error(fx, "dkimkeyd.conf", "8: kek_file must be an absolute "
	    "path");
	put_main(fx, "[dkimkeyd]\nagent_timeout = 0s\n");
	expect_error(fx, "dkimkeyd.conf", "8: agent_timeout 0s: not a "
	    "duration");
}

#define DOMAIN_T "[domain x.example]\nprovider = primary\nsigner = opendkim\n" \
	"selectors = {host}-a {host}-b\n"

static void
test_conf_per_host_selectors_expand_for_every_host(void **state)
{
	struct fixture *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;

	put_main(fx, PG_MAIN DOMAIN_T "hosts = mx1 mx2\nkey_scope = per-host\n");
	c = expect_ok(fx);
	d = &c->domains[0];
	assert_int_equal(d->key_scope, DK_SCOPE_PER_HOST);
	assert_non_null(d->host_selectors);
	assert_string_equal(d->host_selectors[0], "mx1-a");
	assert_string_equal(d->host_selectors[1], "mx1-b");
	assert_string_equal(d->host_selectors[2], "mx2-a");
	assert_string_equal(d->host_selectors[3], "mx2-b");
	/* The first host's pair stands for "the domain's selectors". */
	assert_string_equal(d->selectors[0], "mx1-a");
	assert_string_equal(dk_conf_host_of_selector(d, "mx2-b"), "mx2");
	assert_null(dk_conf_host_of_selector(d, "mail1"));
	dk_conf_free(c);
	/* No kek_file needed: no private key leaves a host. */
	put_main(fx, PG_MAIN DOMAIN_T "key_scope = per-host\n");
	expect_error(fx, "dkimkeyd.conf", "13: [domain x.example]: selector "
	    "templates ({host}) need hosts");
	put_main(fx, PG_MAIN "kek_file = /k\n" DOMAIN_T "hosts = mx1\n");
	expect_error(fx, "dkimkeyd.conf", "14: [domain x.example]: selector "
	    "templates ({host}) need hosts and key_scope = per-host");
	put_main(fx, PG_MAIN "[domain x.example]\nprovider = primary\n"
	    "signer = opendkim\nselectors = {host}-a b\n");
	expect_error(fx, "dkimkeyd.conf", "13: selectors: both or neither");
	put_main(fx, PG_MAIN "[domain x.example]\nprovider = primary\n"
	    "signer = opendkim\nselectors = {host}{host} {host}-b\n");
	expect_error(fx, "dkimkeyd.conf", "13: bad selector template");
	put_main(fx, PG_MAIN "[domain x.example]\nprovider = primary\n"
	    "signer = opendkim\nselectors = {host} {host}-b\nhosts = a a-b\n"
	    "key_scope = per-host\n");
	expect_error(fx, "dkimkeyd.conf", "13: [domain x.example]: hosts a "
	    "and a-b get the same selector a-b");
}

static void
test_conf_postgresql_backend_needs_conninfo_file(void **state)
{
	struct fixture *fx = *state;

	/* provider_signer is 6 lines: [dkimkeyd] is line 7. */
	put_main(fx, "[dkimkeyd]\nbackend = postgresql\n");
	expect_error(fx, "dkimkeyd.conf", "8: backend = postgresql needs "
	    "conninfo_file");
}

static void
test_conf_rejects_unknown_backend_and_bad_lease(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[dkimkeyd]\nbackend = sqlite\n");
	expect_error(fx, "dkimkeyd.conf", "8: backend sqlite: expected "
	    "state_dir or postgresql");
	put_main(fx, "[dkimkeyd]\nlease_time = 0s\n");
	expect_error(fx, "dkimkeyd.conf", "8: lease_time 0s: not a duration");
	put_main(fx, "[dkimkeyd]\nlease_time = 2h\n");
	expect_error(fx, "dkimkeyd.conf", "8: lease_time 2h: not a duration");
	put_main(fx, "[dkimkeyd]\nconninfo_file = conninfo\n");
	expect_error(fx, "dkimkeyd.conf", "8: conninfo_file must be an "
	    "absolute path");
}

static void
test_conf_key_dir_follows_state_dir(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx, "[dkimkeyd]\nstate_dir = /srv/dk\n");
	c = expect_ok(fx);
	assert_string_equal(c->key_dir, "/srv/dk/keys");
	dk_conf_free(c);
}

static void
test_conf_parses_durations_with_units(void **state)
{
	struct fixture *fx = *state;
	const struct dk_conf_domain *d;
	struct dk_conf *c;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "ttl = 2h\n"
	    "retire_after = 2w\n"
	    "propagation_timeout = 90s\n"
	    "safety_margin = 10m\n");
	c = expect_ok(fx);
	d = &c->domains[0];
	assert_int_equal(d->ttl, 7200);
	assert_int_equal(d->retire_after, 14 * 86400);
	assert_int_equal(d->propagation_timeout, 90);
	assert_int_equal(d->safety_margin, 600);
	dk_conf_free(c);
}

static void
test_conf_strips_inline_comments(void **state)
{
	struct fixture *fx = *state;
	const struct dk_conf_section *s;
	struct dk_conf *c;

	put(fx, "dkimkeyd.conf",
	    "[dkimkeyd] ; the daemon\n"
	    "  state_dir = /srv/dk   ; where state lives\n"
	    "\tkey_group = mail # a group\n"
	    "# full line\n"
	    "   ; indented comment\n"
	    "[provider primary]\n"
	    "type = rfc2136 ; comment\n"
	    "[signer opendkim]\n"
	    "type = opendkim\n"
	    "reload = /bin/echo a#b c;d\n"
	    "[domain example.com] # trailing\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2 ; two\n"
	    "ttl = 5m # five minutes\n");
	c = expect_ok(fx);
	assert_string_equal(c->state_dir, "/srv/dk");
	assert_string_equal(c->key_group, "mail");
	assert_string_equal(c->providers[0].type, "rfc2136");
	s = &c->signers[0];
	assert_string_equal(dk_conf_section_get(s, "reload", NULL),
	    "/bin/echo a#b c;d");
	assert_string_equal(c->domains[0].selectors[1], "mail2");
	assert_int_equal(c->domains[0].ttl, 300);
	dk_conf_free(c);
}

static void
test_conf_rejects_duplicate_key_in_domain(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "ttl = 1h\n"
	    "ttl = 2h\n");
	expect_error(fx, "dkimkeyd.conf", "12: duplicate key ttl");
}

static void
test_conf_rejects_duplicate_key_in_provider(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf",
	    "[provider primary]\n"
	    "type = rfc2136\n"
	    "server = 192.0.2.1\n"
	    "server = 192.0.2.2\n");
	expect_error(fx, "dkimkeyd.conf", "4: duplicate key server");
}

static void
test_conf_rejects_duplicate_type(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf",
	    "[signer x]\n"
	    "type = opendkim\n"
	    "type = files\n");
	expect_error(fx, "dkimkeyd.conf", "3: duplicate key type");
}

static void
test_conf_rejects_duplicate_section_across_includes(void **state)
{
	struct fixture *fx = *state;
	char want[PATH_MAX + 64];

	put_main(fx, "[dkimkeyd]\ninclude = conf.d/*.conf\n");
	put(fx, "conf.d/x.conf",
	    "\n"
	    "[provider primary]\n"
	    "type = rfc2136\n");
	expect_error(fx, "conf.d/x.conf", "2: duplicate section "
	    "[provider primary]");
	/* The first definition is named too. */
	snprintf(want, sizeof(want), "first at %s:1", fx->main);
	{
		struct dk_error err = { 0 };
		struct dk_conf *c = NULL;

		assert_int_equal(dk_conf_load(fx->main, &c, &err), DK_ECONFIG);
		assert_non_null(strstr(err.msg, want));
	}
}

static void
test_conf_rejects_duplicate_domain_after_normalising(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "[domain EXAMPLE.com.]\n");
	expect_error(fx, "dkimkeyd.conf", "11: duplicate section "
	    "[domain example.com]");
}

/* Many domains: each found, and a repeat of an early one after the
 * lookup table has grown several times is still caught. */
static void
test_conf_many_domains_found_and_late_duplicate_rejected(void **state)
{
	struct fixture *fx = *state;
	const int n = 3000;
	struct dk_conf *c;
	char *text, name[64], want[PATH_MAX + 128];
	size_t len = 0, cap = (size_t)n * 100 + 256;
	int i;

	text = malloc(cap);
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "%s", provider_signer);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "[domain d%d.example]\nprovider = primary\n"
		    "signer = opendkim\nselectors = a b\n", i);
	put(fx, "dkimkeyd.conf", text);
	c = expect_ok(fx);
	assert_int_equal(c->ndomains, n);
	for (i = 0; i < n; i += 7) {
		const struct dk_conf_domain *d;

		snprintf(name, sizeof(name), "D%d.example.", i);
		assert_non_null(d = dk_conf_domain_find(c, name));
		assert_ptr_equal(d, &c->domains[i]);
	}
	dk_conf_free(c);
	/* d5 began on line 6 + 4 * 5 + 1 = 27; the repeat comes last. */
	snprintf(text + len, cap - len, "[domain d5.EXAMPLE]\n");
	put(fx, "dkimkeyd.conf", text);
	snprintf(want, sizeof(want), "%d: duplicate section [domain "
	    "d5.example] (first at %s:27)", 6 + 4 * n + 1, fx->main);
	expect_error(fx, "dkimkeyd.conf", want);
	free(text);
}

static void
test_conf_rejects_duplicate_dkimkeyd_section(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf", "[dkimkeyd]\n[dkimkeyd]\n");
	expect_error(fx, "dkimkeyd.conf", "2: duplicate section [dkimkeyd]");
}

static void
test_conf_rejects_unknown_section(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "\n[foo bar]\n");
	expect_error(fx, "dkimkeyd.conf", "8: unknown section [foo]");
}

static void
test_conf_rejects_unnamed_domain(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain]\n");
	expect_error(fx, "dkimkeyd.conf", "7: section [domain] needs a name");
}

static void
test_conf_rejects_unknown_key_in_dkimkeyd(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf", "[dkimkeyd]\nstate_dir = /x\nstatedir = /y\n");
	expect_error(fx, "dkimkeyd.conf", "3: unknown key statedir in "
	    "[dkimkeyd]");
}

static void
test_conf_rejects_relative_state_dir(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf", "[dkimkeyd]\nstate_dir = var/dk\n");
	expect_error(fx, "dkimkeyd.conf", "2: state_dir must be an absolute");
}

static void
test_conf_rejects_unknown_key_in_domain(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "sigenr = opendkim\n");
	expect_error(fx, "dkimkeyd.conf", "9: unknown key sigenr in "
	    "[domain example.com]");
}

static void
test_conf_rejects_key_outside_section(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf", "; c\nstate_dir = /x\n");
	expect_error(fx, "dkimkeyd.conf", "2: key state_dir outside a section");
}

static void
test_conf_reports_missing_key_at_section_header(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "selectors = mail1 mail2\n"
	    "\n"
	    "[domain example.net]\n");
	expect_error(fx, "dkimkeyd.conf", "7: missing required key signer "
	    "in [domain example.com]");
}

static void
test_conf_reports_missing_key_at_end_of_file(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n");
	expect_error(fx, "dkimkeyd.conf", "7: missing required key selectors");
}

static void
test_conf_reports_missing_type_at_section_header(void **state)
{
	struct fixture *fx = *state;

	put(fx, "dkimkeyd.conf",
	    "[provider primary]\n"
	    "server = 192.0.2.1\n");
	expect_error(fx, "dkimkeyd.conf", "1: missing required key type in "
	    "[provider primary]");
}

static void
test_conf_rejects_bad_duration(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "retire_after = 7 days\n");
	expect_error(fx, "dkimkeyd.conf", "8: bad duration 7 days for "
	    "retire_after");
}

static void
test_conf_rejects_ttl_out_of_range(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain example.com]\nttl = 2w\n");
	expect_error(fx, "dkimkeyd.conf", "8: ttl must be between 1s and 1w");
	put_main(fx, "[domain example.com]\nttl = 0\n");
	expect_error(fx, "dkimkeyd.conf", "8: ttl must be between");
}

static void
test_conf_rejects_bad_selector(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain example.com]\nselectors = mail_1 mail2\n");
	expect_error(fx, "dkimkeyd.conf", "8: bad selector mail_1");
	put_main(fx, "[domain example.com]\nselectors = mail1 -mail2\n");
	expect_error(fx, "dkimkeyd.conf", "8: bad selector -mail2");
}

static void
test_conf_accepts_dotted_selectors(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = a.2024 b.2024\n");
	c = expect_ok(fx);
	assert_string_equal(c->domains[0].selectors[0], "a.2024");
	dk_conf_free(c);
}

static void
test_conf_requires_exactly_two_selectors(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain example.com]\nselectors = mail1\n");
	expect_error(fx, "dkimkeyd.conf", "8: selectors needs exactly 2 "
	    "selectors, not 1");
	put_main(fx, "[domain example.com]\nselectors = a b c\n");
	expect_error(fx, "dkimkeyd.conf", "8: selectors needs exactly 2 "
	    "selectors, not 3");
	put_main(fx, "[domain example.com]\nselectors = a A\n");
	expect_error(fx, "dkimkeyd.conf", "8: selectors must be distinct");
}

static void
test_conf_rejects_bad_boolean(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain example.com]\nallow_weak_keys = maybe\n");
	expect_error(fx, "dkimkeyd.conf", "8: bad value maybe for "
	    "allow_weak_keys");
}

static void
test_conf_rejects_bad_domain_name(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain exa_mple.com]\n");
	expect_error(fx, "dkimkeyd.conf", "7: bad domain name exa_mple.com");
	put_main(fx, "[domain example..com]\n");
	expect_error(fx, "dkimkeyd.conf", "7: bad domain name");
	put_main(fx, "[domain -example.com]\n");
	expect_error(fx, "dkimkeyd.conf", "7: bad domain name");
}

static const char weak_domain[] =
    "[domain example.com]\n"
    "provider = primary\n"
    "signer = opendkim\n"
    "selectors = mail1 mail2\n";

static void
test_conf_refuses_rsa1024_unless_weak_keys_allowed(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;
	char buf[1024];

	snprintf(buf, sizeof(buf), "%salgorithm = rsa-1024\n", weak_domain);
	put_main(fx, buf);
	expect_error(fx, "dkimkeyd.conf", "11: ");

	/* allow_weak_keys may come after algorithm. */
	snprintf(buf, sizeof(buf), "%salgorithm = rsa-1024\n"
	    "allow_weak_keys = yes\n", weak_domain);
	put_main(fx, buf);
	c = expect_ok(fx);
	assert_int_equal(c->domains[0].keyspec.alg, DK_ALG_RSA);
	assert_int_equal(c->domains[0].keyspec.bits, 1024);
	assert_int_equal(c->domains[0].allow_weak_keys, 1);
	dk_conf_free(c);
}

static void
test_conf_refuses_rsa512_always(void **state)
{
	struct fixture *fx = *state;
	char buf[1024];

	snprintf(buf, sizeof(buf), "%sallow_weak_keys = true\n"
	    "algorithm = rsa-512\n", weak_domain);
	put_main(fx, buf);
	expect_error(fx, "dkimkeyd.conf", "12: ");
}

static void
test_conf_rejects_unknown_algorithm(void **state)
{
	struct fixture *fx = *state;
	char buf[1024];

	snprintf(buf, sizeof(buf), "%salgorithm = dsa\n", weak_domain);
	put_main(fx, buf);
	expect_error(fx, "dkimkeyd.conf", "11: ");
}

static void
test_conf_rejects_undefined_provider_at_its_line(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[dkimkeyd]\ninclude = conf.d/*.conf\n");
	put(fx, "conf.d/example.conf",
	    "[domain example.com]\n"
	    "signer = opendkim\n"
	    "provider = secondary\n"
	    "selectors = mail1 mail2\n");
	expect_error(fx, "conf.d/example.conf", "3: [domain example.com] "
	    "names provider secondary");
}

/*
 * Debian 12's OpenDKIM cannot sign with an RSA and an Ed25519 key for
 * one domain (tests/integration/test_opendkim_milter.py): refused at the
 * ed25519_selectors line.
 */
static void
test_conf_refuses_dual_algorithms_on_opendkim(void **state)
{
	struct fixture *fx = *state;
	struct dk_error err = { 0 };
	struct dk_conf *c = NULL;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "ed25519_selectors = ed1 ed2\n");
	expect_error(fx, "dkimkeyd.conf", "11: [domain example.com] has "
	    "ed25519_selectors, but its signer opendkim is OpenDKIM");
	assert_int_equal(dk_conf_load(fx->main, &c, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "use a files, rspamd or exim "
	    "signer"));
}

static void
test_conf_reads_cname_mode_dual_algorithms_and_lists(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;
	const struct dk_conf_domain *d;
	char *t = NULL;

	put_main(fx,
	    "[dkimkeyd]\n"
	    "metrics_file = /var/lib/prometheus/dkimkeyd.prom\n"
	    "[signer exim]\n"
	    "type = exim\n"
	    "file = /etc/exim4/dkim\n"
	    "[domain Customer.Example]\n"
	    "provider = primary\n"
	    "signer = exim\n"
	    "selectors = mail1 mail2\n"
	    "ed25519_selectors = ed1 ed2\n"
	    "watch_selectors = google s1\n"
	    "senders = customer.example news.customer.example.\n"
	    "rotate_every = 90d\n"
	    "mode = cname\n"
	    "cname_target = {selector}.{domain}.dkim.Operator.Example.\n"
	    "cname_provider = primary\n");
	c = expect_ok(fx);
	assert_string_equal(c->metrics_file,
	    "/var/lib/prometheus/dkimkeyd.prom");
	d = dk_conf_domain_find(c, "customer.example");
	assert_non_null(d);
	assert_int_equal(d->mode, DK_MODE_CNAME);
	assert_int_equal(d->rotate_every, 90 * 86400);
	assert_int_equal(d->ned25519, 2);
	assert_string_equal(d->ed25519_selectors[1], "ed2");
	assert_int_equal(d->nwatch, 2);
	assert_string_equal(d->watch_selectors[0], "google");
	assert_int_equal(d->nsenders, 2);
	assert_string_equal(d->senders[1], "news.customer.example");
	assert_string_equal(d->cname_provider, "primary");
	assert_int_equal(dk_conf_cname_target(d, "mail2", &t), DK_OK);
	assert_string_equal(t, "mail2.customer.example.dkim.operator.example");
	free(t);
	dk_conf_free(c);
}

/* match =: the three values, the default, and the most specific wins. */
static void
test_conf_match_most_specific_section_signs(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;
	const struct dk_conf_domain *d;
	static const char *const cases[][2] = {
		{ "example.com", "example.com" },
		{ "EXAMPLE.COM.", "example.com" },
		{ "x.example.com", "example.com" },
		{ "sub.example.com", "sub.example.com" },
		{ "a.sub.example.com", "example.com" },
		{ "deep.example.com", "example.com" },
		{ "a.deep.example.com", "deep.example.com" },
		{ "b.a.deep.example.com.", "deep.example.com" },
		{ "only.org", "only.org" },
		{ "x.only.org", NULL },
		{ "only-sub.net", NULL },
		{ "a.only-sub.net", "only-sub.net" },
		{ "other.org", NULL },
		{ "com", NULL },
		{ "xexample.com", NULL },
	};
	size_t i;

	put_main(fx,
	    "[domain example.com]\nprovider = primary\nsigner = opendkim\n"
	    "selectors = a b\nmatch = domain-and-subdomains\n"
	    "testing = 2w\n"
	    "[domain sub.example.com]\nprovider = primary\n"
	    "signer = opendkim\nselectors = a b\nmatch = domain\n"
	    "[domain deep.example.com]\nprovider = primary\n"
	    "signer = opendkim\nselectors = a b\nmatch = subdomains\n"
	    "[domain only.org]\nprovider = primary\nsigner = opendkim\n"
	    "selectors = a b\n"
	    "[domain only-sub.net]\nprovider = primary\nsigner = opendkim\n"
	    "selectors = a b\nmatch = subdomains\n");
	c = expect_ok(fx);
	assert_int_equal(dk_conf_domain_find(c, "only.org")->match,
	    DK_MATCH_DOMAIN);
	assert_int_equal(dk_conf_domain_find(c, "only.org")->testing, 0);
	assert_int_equal(dk_conf_domain_find(c, "example.com")->testing,
	    14 * 86400);
	assert_int_equal(dk_conf_domain_find(c, "example.com")->match,
	    DK_MATCH_BOTH);
	assert_string_equal(dk_match_name(DK_MATCH_SUBDOMAINS), "subdomains");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		d = dk_conf_match_find(c, cases[i][0]);
		if (cases[i][1] == NULL) {
			if (d != NULL)
				fail_msg("%s: signed by %s, want none",
				    cases[i][0], d->name);
			continue;
		}
		if (d == NULL || strcmp(d->name, cases[i][1]) != 0)
			fail_msg("%s: signed by %s, want %s", cases[i][0],
			    d != NULL ? d->name : "none", cases[i][1]);
	}
	dk_conf_free(c);
}

static void
test_conf_match_bad_value(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\nprovider = primary\nsigner = opendkim\n"
	    "selectors = a b\nmatch = subdomain\n");
	expect_error(fx, "dkimkeyd.conf", "11: bad value subdomain for match");
}

static void
test_conf_defaults_to_txt_mode_without_rotation(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n");
	c = expect_ok(fx);
	assert_int_equal(c->domains[0].mode, DK_MODE_TXT);
	assert_int_equal(c->domains[0].rotate_every, 0);
	assert_int_equal(c->domains[0].ned25519, 0);
	assert_null(c->metrics_file);
	dk_conf_free(c);
}

static void
test_conf_rejects_cname_mode_without_target(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = cname\n");
	expect_error(fx, "dkimkeyd.conf", "11: mode = cname needs "
	    "cname_target");
}

static void
test_conf_rejects_cname_target_in_txt_mode(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "cname_target = {selector}.x.example\n");
	expect_error(fx, "dkimkeyd.conf", "11: cname_target and "
	    "cname_provider need mode = cname");
}

static void
test_conf_rejects_bad_cname_target(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = cname\n"
	    "cname_target = dkim.operator.example\n");
	expect_error(fx, "dkimkeyd.conf", "12: cname_target must contain "
	    "{selector}");
	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = cname\n"
	    "cname_target = {selector}..operator.example\n");
	expect_error(fx, "dkimkeyd.conf", "12: cname_target "
	    "{selector}..operator.example does not give a valid name");
}

static void
test_conf_rejects_undefined_cname_provider(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = cname\n"
	    "cname_target = {selector}.{domain}.op.example\n"
	    "cname_provider = customer-zone\n");
	expect_error(fx, "dkimkeyd.conf", "13: [domain example.com] names "
	    "cname_provider customer-zone");
}

static void
test_conf_rejects_selector_listed_twice_across_sets(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "ed25519_selectors = ed1 mail2\n");
	expect_error(fx, "dkimkeyd.conf", "11: selector mail2 is listed "
	    "twice");
	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "watch_selectors = google google\n");
	expect_error(fx, "dkimkeyd.conf", "11: google given twice");
}

static void
test_conf_rejects_one_ed25519_selector(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "ed25519_selectors = ed1\n");
	expect_error(fx, "dkimkeyd.conf", "11: needs 2 names, not 1");
}

static void
test_conf_rejects_short_rotate_every_and_bad_mode(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "rotate_every = 10s\n");
	expect_error(fx, "dkimkeyd.conf", "11: rotate_every must be at "
	    "least 1m");
	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = mx\n");
	expect_error(fx, "dkimkeyd.conf", "11: bad mode mx");
}

static void
test_conf_reads_cname_servers_in_cname_mode_only(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = cname\n"
	    "cname_target = {selector}.{domain}.op.example\n"
	    "cname_servers = 192.0.2.1 [2001:db8::1]:5353\n");
	c = expect_ok(fx);
	assert_non_null(c->domains[0].cname_servers);
	assert_non_null(strstr(c->domains[0].cname_servers, "192.0.2.1"));
	dk_conf_free(c);
	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "mode = cname\n"
	    "cname_target = {selector}.{domain}.op.example\n"
	    "cname_servers = 192.0.2.1 not-an-address\n");
	expect_error(fx, "dkimkeyd.conf", "13: cname_servers: ");
	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = opendkim\n"
	    "selectors = mail1 mail2\n"
	    "cname_servers = 192.0.2.1\n");
	expect_error(fx, "dkimkeyd.conf", "11: cname_servers needs mode = "
	    "cname");
}

static void
test_conf_rejects_undefined_signer_at_its_line(void **state)
{
	struct fixture *fx = *state;

	put_main(fx,
	    "[domain example.com]\n"
	    "provider = primary\n"
	    "signer = rspamd\n"
	    "selectors = mail1 mail2\n");
	expect_error(fx, "dkimkeyd.conf", "9: [domain example.com] names "
	    "signer rspamd");
}

static void
test_conf_reports_syntax_error_line(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[dkimkeyd]\nstate_dir /srv\nkey_dir = /x\n");
	expect_error(fx, "dkimkeyd.conf", "8: syntax error");
}

static void
test_conf_reports_first_of_syntax_and_other_errors(void **state)
{
	struct fixture *fx = *state;

	/* inih goes on after line 8; the unknown key at 9 comes second. */
	put_main(fx, "[dkimkeyd]\nno equals sign\nbogus = 1\n");
	expect_error(fx, "dkimkeyd.conf", "8: syntax error");
}

static void
test_conf_reports_unclosed_section_header(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain example.com\n");
	expect_error(fx, "dkimkeyd.conf", "7: syntax error");
}

static void
test_conf_reports_syntax_error_in_include(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[dkimkeyd]\ninclude = more.conf\n");
	put(fx, "more.conf", "[domain example.org]\nprovider\n");
	expect_error(fx, "more.conf", "2: syntax error");
}

static void
test_conf_rejects_overlong_line(void **state)
{
	struct fixture *fx = *state;
	char buf[1024];

	snprintf(buf, sizeof(buf), "[signer x]\ntype = files\ndir = /%0300d\n",
	    0);
	put(fx, "dkimkeyd.conf", buf);
	expect_error(fx, "dkimkeyd.conf", "3: line too long");
}

static void
test_conf_names_missing_main_file(void **state)
{
	struct fixture *fx = *state;
	struct dk_error err = { 0 };
	struct dk_conf *c = NULL;
	char want[PATH_MAX + 64];

	assert_int_equal(dk_conf_load(fx->main, &c, &err), DK_ECONFIG);
	assert_null(c);
	snprintf(want, sizeof(want), "%s: cannot open: %s", fx->main,
	    strerror(ENOENT));
	assert_string_equal(err.msg, want);
}

static void
test_conf_rejects_missing_literal_include(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[dkimkeyd]\ninclude = nothere.conf\n");
	expect_error(fx, "dkimkeyd.conf", "8: include ");
}

static void
test_conf_accepts_glob_matching_nothing(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx, "[dkimkeyd]\ninclude = none.d/*.conf\n"
	    "include = *.nothing\n");
	c = expect_ok(fx);
	assert_int_equal(c->ndomains, 0);
	dk_conf_free(c);
}

static void
test_conf_allows_nested_include_before_sections(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;

	put_main(fx, "[dkimkeyd]\ninclude = sub/one.conf\nkey_group = g\n");
	put(fx, "sub/one.conf", "include = two.conf\n");
	put(fx, "sub/two.conf", "[domain example.com]\n"
	    "provider = primary\nsigner = opendkim\nselectors = a b\n");
	c = expect_ok(fx);
	assert_int_equal(c->ndomains, 1);
	/* Back in [dkimkeyd] after the include. */
	assert_string_equal(c->key_group, "g");
	dk_conf_free(c);
}

static void
test_conf_rejects_include_inside_domain(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[domain example.com]\ninclude = x.conf\n");
	expect_error(fx, "dkimkeyd.conf", "8: include belongs in [dkimkeyd]");
}

static void
test_conf_globs_below_directory_with_pattern_characters(void **state)
{
	struct fixture *fx = *state;
	struct dk_conf *c;
	char buf[1024];

	/* The directory part is not a pattern: "we[i]rd" is literal. */
	snprintf(buf, sizeof(buf), "%s[dkimkeyd]\ninclude = conf.d/*.conf\n",
	    provider_signer);
	put(fx, "we[i]rd/dkimkeyd.conf", buf);
	put(fx, "we[i]rd/conf.d/d.conf", "[domain example.com]\n"
	    "provider = primary\nsigner = opendkim\nselectors = a b\n");
	snprintf(fx->main, sizeof(fx->main), "%s/we[i]rd/dkimkeyd.conf",
	    fx->dir);
	c = expect_ok(fx);
	assert_int_equal(c->ndomains, 1);
	dk_conf_free(c);
}

static void
test_conf_limits_include_nesting(void **state)
{
	struct fixture *fx = *state;

	put_main(fx, "[dkimkeyd]\ninclude = loop.conf\n");
	put(fx, "loop.conf", "include = loop.conf\n");
	expect_error(fx, "loop.conf", "1: include nesting deeper than 8");
}

static void
test_conf_section_check_names_unknown_key(void **state)
{
	struct fixture *fx = *state;
	static const char *const ok[] = { "server", "zone", NULL };
	static const char *const few[] = { "zone", NULL };
	struct dk_error err = { 0 };
	struct dk_conf *c;
	char want[PATH_MAX + 128];

	put_main(fx, "");
	c = expect_ok(fx);
	assert_int_equal(dk_conf_section_check(&c->providers[0], ok, &err),
	    DK_OK);
	assert_int_equal(dk_conf_section_check(&c->providers[0], few, &err),
	    DK_ECONFIG);
	snprintf(want, sizeof(want), "%s:3: unknown key server in "
	    "[provider primary] (type rfc2136)", fx->main);
	assert_string_equal(err.msg, want);
	dk_conf_free(c);
}

static void
test_conf_split_words_honours_quotes(void **state)
{
	char **argv = NULL;
	size_t argc = 0;

	(void)state;
	assert_int_equal(dk_conf_split_words("  /usr/bin/systemctl  reload\t"
	    "opendkim ", &argv, &argc), DK_OK);
	assert_int_equal(argc, 3);
	assert_string_equal(argv[0], "/usr/bin/systemctl");
	assert_string_equal(argv[2], "opendkim");
	assert_null(argv[3]);
	dk_conf_argv_free(argv);

	assert_int_equal(dk_conf_split_words("/bin/sh -c \"kill -USR1 "
	    "\\\"$(cat /run/x.pid)\\\"\" \"\" a\"b c\"d", &argv, &argc),
	    DK_OK);
	assert_int_equal(argc, 5);
	assert_string_equal(argv[2], "kill -USR1 \"$(cat /run/x.pid)\"");
	assert_string_equal(argv[3], "");
	assert_string_equal(argv[4], "ab cd");
	dk_conf_argv_free(argv);

	/* Outside quotes a backslash is an ordinary character. */
	assert_int_equal(dk_conf_split_words("a\\b", &argv, &argc), DK_OK);
	assert_string_equal(argv[0], "a\\b");
	dk_conf_argv_free(argv);

	assert_int_equal(dk_conf_split_words("", &argv, &argc), DK_OK);
	assert_int_equal(argc, 0);
	assert_null(argv[0]);
	dk_conf_argv_free(argv);
}

static void
test_conf_split_words_rejects_unterminated_quote(void **state)
{
	char **argv = (char **)state;	/* any non-NULL sentinel */
	char **before = argv;
	size_t argc = 42;

	assert_int_equal(dk_conf_split_words("echo \"open", &argv, &argc),
	    DK_EINVAL);
	assert_int_equal(dk_conf_split_words("echo \"ends in \\\"", &argv,
	    &argc), DK_EINVAL);
	/* Out-parameters untouched on failure. */
	assert_ptr_equal(argv, before);
	assert_int_equal(argc, 42);
	dk_conf_argv_free(NULL);
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

/* Load must fail with DK_EUNSAFE and a message containing want. */
static void
expect_unsafe(struct fixture *fx, const char *want)
{
	struct dk_error err = { 0 };
	struct dk_conf *c = NULL;

	assert_int_equal(dk_conf_load(fx->main, &c, &err), DK_EUNSAFE);
	assert_null(c);
	if (strstr(err.msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static const char one_domain[] =
    "[domain example.com]\n"
    "provider = primary\n"
    "signer = opendkim\n"
    "selectors = mail1 mail2\n";

static void
test_conf_refuses_configuration_writable_by_others(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX], want[2 * PATH_MAX + 64];
	struct dk_conf *c;

	put_main(fx, one_domain);
	assert_int_equal(chmod(fx->main, 0600), 0);
	c = expect_ok(fx);
	dk_conf_free(c);
	assert_int_equal(chmod(fx->main, 0666), 0);
	snprintf(want, sizeof(want), "%s: configuration file is writable by "
	    "others (owner %ld, mode 0666)", fx->main, (long)geteuid());
	expect_unsafe(fx, want);
	/* Group write: only when owner and group are root. */
	assert_int_equal(chmod(fx->main, 0664), 0);
	if (geteuid() == 0 && chown(fx->main, 0, 0) == 0) {
		c = expect_ok(fx);
		dk_conf_free(c);
		assert_int_equal(chown(fx->main, 0, 1), 0);
	}
	expect_unsafe(fx, "is writable by its group");
	assert_int_equal(chmod(fx->main, 0644), 0);
	if (geteuid() == 0) {
		/* Owned by someone else: refused. */
		assert_int_equal(chown(fx->main, 1, 0), 0);
		expect_unsafe(fx, "is owned by another user");
		assert_int_equal(chown(fx->main, 0, 0), 0);
	}
	/* Every include, naming the including line. */
	put(fx, "dkimkeyd.conf", "[dkimkeyd]\ninclude = conf.d/*.conf\n");
	assert_int_equal(chmod(fx->main, 0644), 0);
	put(fx, "conf.d/a.conf", provider_signer);
	snprintf(path, sizeof(path), "%s/conf.d/a.conf", fx->dir);
	assert_int_equal(chmod(path, 0646), 0);
	snprintf(want, sizeof(want), "%s:2: include %s: configuration file "
	    "is writable by others", fx->main, path);
	expect_unsafe(fx, want);
}

static void
test_conf_refuses_world_writable_key_dir(void **state)
{
	struct fixture *fx = *state;
	char buf[PATH_MAX + 256], dir[PATH_MAX];
	struct dk_conf *c;

	snprintf(buf, sizeof(buf), "[dkimkeyd]\nkey_dir = /tmp\n%s",
	    one_domain);
	put_main(fx, buf);
	expect_unsafe(fx, "/tmp: world-writable directory");
	/* state_dir too, and a missing one is fine (created later). */
	snprintf(dir, sizeof(dir), "%s/state", fx->dir);
	snprintf(buf, sizeof(buf), "[dkimkeyd]\nstate_dir = %s\n%s", dir,
	    one_domain);
	put_main(fx, buf);
	c = expect_ok(fx);
	dk_conf_free(c);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 01777), 0);
	expect_unsafe(fx, "state: world-writable directory");
	assert_int_equal(dk_conf_dir_safe(dir, NULL), DK_EUNSAFE);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(dk_conf_dir_safe(dir, NULL), DK_OK);
}

static void
test_conf_keep_removed(void **state)
{
	struct fixture *fx = *state;
	char buf[4096];
	struct dk_conf *c;

	put_main(fx, one_domain);
	c = expect_ok(fx);
	assert_int_equal(c->domains[0].keep_removed, DK_KEEP_REMOVED_DEFAULT);
	dk_conf_free(c);
	snprintf(buf, sizeof(buf), "%skeep_removed = 3\n", one_domain);
	put_main(fx, buf);
	c = expect_ok(fx);
	assert_int_equal(c->domains[0].keep_removed, 3);
	dk_conf_free(c);
	snprintf(buf, sizeof(buf), "%skeep_removed = 1001\n", one_domain);
	put_main(fx, buf);
	expect_error(fx, "dkimkeyd.conf", "11: bad value 1001 for "
	    "keep_removed");
	snprintf(buf, sizeof(buf), "%skeep_removed = -1\n", one_domain);
	put_main(fx, buf);
	expect_error(fx, "dkimkeyd.conf", "11: bad value -1 for "
	    "keep_removed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_conf_loads_full_config_with_sorted_includes),
		T(test_conf_applies_defaults),
		T(test_conf_postgresql_backend_with_conninfo_and_lease),
		T(test_conf_hosts_kek_file_agent_timeout_and_key_scope),
		T(test_conf_hosts_need_postgresql_and_shared_keys_a_kek),
		T(test_conf_per_host_selectors_expand_for_every_host),
		T(test_conf_postgresql_backend_needs_conninfo_file),
		T(test_conf_rejects_unknown_backend_and_bad_lease),
		T(test_conf_key_dir_follows_state_dir),
		T(test_conf_refuses_configuration_writable_by_others),
		T(test_conf_refuses_world_writable_key_dir),
		T(test_conf_keep_removed),
		T(test_conf_parses_durations_with_units),
		T(test_conf_strips_inline_comments),
		T(test_conf_rejects_duplicate_key_in_domain),
		T(test_conf_rejects_duplicate_key_in_provider),
		T(test_conf_rejects_duplicate_type),
		T(test_conf_rejects_duplicate_section_across_includes),
		T(test_conf_rejects_duplicate_domain_after_normalising),
		T(test_conf_many_domains_found_and_late_duplicate_rejected),
		T(test_conf_rejects_duplicate_dkimkeyd_section),
		T(test_conf_rejects_unknown_section),
		T(test_conf_rejects_unnamed_domain),
		T(test_conf_rejects_unknown_key_in_dkimkeyd),
		T(test_conf_rejects_relative_state_dir),
		T(test_conf_rejects_unknown_key_in_domain),
		T(test_conf_rejects_key_outside_section),
		T(test_conf_reports_missing_key_at_section_header),
		T(test_conf_reports_missing_key_at_end_of_file),
		T(test_conf_reports_missing_type_at_section_header),
		T(test_conf_rejects_bad_duration),
		T(test_conf_rejects_ttl_out_of_range),
		T(test_conf_rejects_bad_selector),
		T(test_conf_accepts_dotted_selectors),
		T(test_conf_requires_exactly_two_selectors),
		T(test_conf_rejects_bad_boolean),
		T(test_conf_rejects_bad_domain_name),
		T(test_conf_refuses_rsa1024_unless_weak_keys_allowed),
		T(test_conf_refuses_rsa512_always),
		T(test_conf_rejects_unknown_algorithm),
		T(test_conf_rejects_undefined_provider_at_its_line),
		T(test_conf_reads_cname_mode_dual_algorithms_and_lists),
		T(test_conf_match_most_specific_section_signs),
		T(test_conf_match_bad_value),
		T(test_conf_refuses_dual_algorithms_on_opendkim),
		T(test_conf_defaults_to_txt_mode_without_rotation),
		T(test_conf_rejects_cname_mode_without_target),
		T(test_conf_rejects_cname_target_in_txt_mode),
		T(test_conf_rejects_bad_cname_target),
		T(test_conf_rejects_undefined_cname_provider),
		T(test_conf_rejects_selector_listed_twice_across_sets),
		T(test_conf_rejects_one_ed25519_selector),
		T(test_conf_rejects_short_rotate_every_and_bad_mode),
		T(test_conf_reads_cname_servers_in_cname_mode_only),
		T(test_conf_rejects_undefined_signer_at_its_line),
		T(test_conf_reports_syntax_error_line),
		T(test_conf_reports_first_of_syntax_and_other_errors),
		T(test_conf_reports_unclosed_section_header),
		T(test_conf_reports_syntax_error_in_include),
		T(test_conf_rejects_overlong_line),
		T(test_conf_names_missing_main_file),
		T(test_conf_rejects_missing_literal_include),
		T(test_conf_accepts_glob_matching_nothing),
		T(test_conf_allows_nested_include_before_sections),
		T(test_conf_rejects_include_inside_domain),
		T(test_conf_globs_below_directory_with_pattern_characters),
		T(test_conf_limits_include_nesting),
		T(test_conf_section_check_names_unknown_key),
		T(test_conf_split_words_honours_quotes),
		T(test_conf_split_words_rejects_unterminated_quote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
