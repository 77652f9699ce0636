/*
 * daemon/cmd_check.c — `check`: every managed selector on every
 * authoritative address matches what the state says, and the signer uses
 * the active key.  Monitoring-plugin output and exit codes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/record.h"
#include "daemon.h"

enum { ST_OK = 0, ST_UNKNOWN, ST_WARNING, ST_CRITICAL };	/* rank */

static const char *const st_name[] = { "OK", "UNKNOWN", "WARNING",
    "CRITICAL" };
static const int st_exit[] = { 0, 3, 1, 2 };

struct report {
	int	 worst;
	char	*first;		/* first problem, for the summary line */
	char	*details;	/* one problem per line */
	size_t	 dlen;
	char	*perf;
	size_t	 plen;
	size_t	 selectors, domains;
};

static void
append(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL, *n;
	int l;

	va_start(ap, fmt);
	l = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (l < 0)
		return;
	if ((n = realloc(*buf, *len + (size_t)l + 1)) != NULL) {
		memcpy(n + *len, line, (size_t)l + 1);
		*buf = n;
		*len += (size_t)l;
	}
	free(line);
}

static void
problem(struct report *r, int sev, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	append(&r->details, &r->dlen, "%s: %s\n", st_name[sev], msg);
	if (sev > r->worst) {
		r->worst = sev;
		free(r->first);
		r->first = msg;
	} else
		free(msg);
}

static void
check_key(struct report *r, struct dk_domain_ctx *c,
    const struct dk_key_state *ks, int64_t now, size_t *okp, size_t *np)
{
	struct dk_error err = { 0, "" };
	struct dk_txt txt = { NULL, 0 };
	struct dk_record *rec = NULL;
	struct dk_addr *addrs = NULL;
	struct dk_probe *res = NULL;
	enum dk_kstate s = dk_key_state_get(ks, now);
	char owner[512];
	size_t n = 0, i;
	int sev;

	dk_owner(ks->selector, c->dom->name, owner, sizeof(owner));
	if (s == DK_KS_CREATED)
		return;		/* not in DNS yet */
	if (dk_expected_txt(ks, s, &txt, &rec, &err) != DK_OK) {
		problem(r, ST_CRITICAL, "%s: %s", owner, err.msg);
		return;
	}
	if (c->pops->servers(c->pctx, owner, &addrs, &n, &err) != DK_OK ||
	    n == 0) {
		problem(r, ST_UNKNOWN, "%s: cannot find its servers: %s",
		    owner, err.msg);
		goto out;
	}
	if ((res = calloc(n, sizeof(*res))) == NULL)
		goto out;
	*okp += dk_dns_probe_txt(addrs, n, owner, rec,
	    c->pops->timeout_ms(c->pctx), res);
	*np += n;
	for (i = 0; i < n; i++) {
		if (res[i].status == DK_OK)
			continue;
		if (res[i].status == DK_ETEMP)
			sev = ST_UNKNOWN;
		else if (s == DK_KS_PUBLISHED)
			sev = ST_WARNING;	/* still propagating */
		else
			sev = ST_CRITICAL;
		problem(r, sev, "%s (%s): %s %s", owner, dk_kstate_name(s),
		    res[i].addr.text, res[i].detail);
	}
out:
	free(res);
	free(addrs);
	dk_txt_free(&txt);
	dk_record_free(rec);
}

static void
check_signer(struct report *r, struct dk_domain_ctx *c, int act)
{
	struct dk_error err = { 0, "" };
	char *sel = NULL, *file = NULL;
	int rc;

	rc = c->sops->current(c->sctx, c->dom->name, &sel, &file, &err);
	if (act < 0) {
		if (rc == DK_OK)
			problem(r, ST_CRITICAL, "%s: signer %s uses selector "
			    "%s but dkimkeyd has no active key", c->dom->name,
			    c->ssec->name, sel);
		else
			problem(r, ST_WARNING, "%s: no active key yet (run "
			    "dkimkeyd rotate --domain %s)", c->dom->name,
			    c->dom->name);
	} else if (rc == DK_ENOTFOUND) {
		problem(r, ST_CRITICAL, "%s: signer %s has no key for the "
		    "domain; expected %s", c->dom->name, c->ssec->name,
		    c->st->keys[act].selector);
	} else if (rc != DK_OK) {
		problem(r, ST_CRITICAL, "%s: signer %s: %s", c->dom->name,
		    c->ssec->name, err.msg);
	} else if (strcmp(sel, c->st->keys[act].selector) != 0 ||
	    strcmp(file, c->st->keys[act].file) != 0) {
		problem(r, ST_CRITICAL, "%s: signer %s uses %s (%s), the "
		    "active key is %s (%s)", c->dom->name, c->ssec->name, sel,
		    file, c->st->keys[act].selector, c->st->keys[act].file);
	}
	free(sel);
	free(file);
}

static void
check_domain(struct report *r, const struct dk_conf *conf,
    const struct dk_conf_domain *dom)
{
	struct dk_domain_ctx c;
	struct dk_error err = { 0, "" };
	struct dk_plan p;
	int64_t now = dk_now();
	size_t i, j, ok = 0, n = 0;
	int act, rc;

	r->domains++;
	if ((rc = dk_domain_open(conf, dom, "check", -1, &c, &err)) != DK_OK) {
		problem(r, rc == DK_ECORRUPT ? ST_CRITICAL : ST_UNKNOWN,
		    "%s", err.msg);
		return;
	}
	/* The newest key of each selector says what the name should hold. */
	for (i = 0; i < c.st->nkeys; i++) {
		for (j = i + 1; j < c.st->nkeys; j++)
			if (strcmp(c.st->keys[j].selector,
			    c.st->keys[i].selector) == 0)
				break;
		if (j < c.st->nkeys)
			continue;
		r->selectors++;
		check_key(r, &c, &c.st->keys[i], now, &ok, &n);
	}
	act = dk_plan_active_key(c.st, now);
	check_signer(r, &c, act);
	dk_plan_next(c.st, &c.pol, 0, now, &p);
	append(&r->perf, &r->plen, " '%s_servers_ok'=%zu;;;0;%zu", dom->name,
	    ok, n);
	if (act >= 0)
		append(&r->perf, &r->plen, " '%s_active_age'=%" PRId64 "s",
		    dom->name, now - c.st->keys[act].active_at);
	if (p.action != DK_ACT_NONE)
		append(&r->perf, &r->plen, " '%s_next_action'=0s", dom->name);
	else if (p.when != 0 && p.when != INT64_MAX)
		append(&r->perf, &r->plen, " '%s_next_action'=%" PRId64 "s",
		    dom->name, p.when - now);
	dk_domain_close(&c);
}

int
cmd_check(const struct dk_conf *conf, const char *domain)
{
	struct report r;
	size_t i;

	memset(&r, 0, sizeof(r));
	if (domain != NULL && dk_conf_domain_find(conf, domain) == NULL) {
		printf("DKIM UNKNOWN - no [domain %s] in %s\n", domain,
		    conf->path);
		return 3;
	}
	for (i = 0; i < conf->ndomains; i++) {
		if (domain != NULL && dk_conf_domain_find(conf, domain) !=
		    &conf->domains[i])
			continue;
		check_domain(&r, conf, &conf->domains[i]);
	}
	if (r.worst == ST_OK)
		printf("DKIM OK - %zu domain%s, %zu selector%s as expected |%s\n",
		    r.domains, r.domains == 1 ? "" : "s", r.selectors,
		    r.selectors == 1 ? "" : "s", r.perf ? r.perf : "");
	else
		printf("DKIM %s - %s |%s\n", st_name[r.worst], r.first,
		    r.perf ? r.perf : "");
	if (r.details != NULL)
		fputs(r.details, stdout);
	free(r.first);
	free(r.details);
	free(r.perf);
	return st_exit[r.worst];
}
