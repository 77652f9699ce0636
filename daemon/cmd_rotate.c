/*
 * daemon/cmd_rotate.c — `rotate`: one rotation, by hand, blocking until
 * the new key is active.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "publish.h"

#define NEVER_TEXT	"never (without another rotation)"

/* Append to buf (NUL-terminated, len bytes); cut, never overrun. */
static void
append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t len, const char *fmt, ...)
{
	size_t off = strlen(buf);
	va_list ap;

	if (off + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
}

/*
 * Why a rotation is blocked: every configured selector that is not free
 * and does not hold an active key, with what its last key still has to go
 * through.  A selector is reused only once its previous key is removed
 * and that record's TTL has passed (DESIGN.md, RFC 6376 §3.1).
 */
static void
busy_selectors(const struct dk_domain_ctx *c, int64_t now, char *buf,
    size_t len)
{
	const struct dk_policy *pol = &c->pol;
	const struct dk_key_state *k;
	const char *sel;
	char ra[32], ttl[32], t[64];
	size_t i, j, n = 0;
	int last;

	buf[0] = '\0';
	dk_duration_format(pol->retire_after, ra, sizeof(ra));
	for (i = 0; i < pol->nselectors + pol->ned; i++) {
		sel = i < pol->nselectors ? pol->selectors[i] :
		    pol->ed_selectors[i - pol->nselectors];
		if (dk_plan_selector_free_at(c->st, pol, sel) <= now)
			continue;
		for (j = 0, last = -1; j < c->st->nkeys; j++)
			if (strcmp(c->st->keys[j].selector, sel) == 0)
				last = (int)j;
		if (last == -1)
			continue;
		k = &c->st->keys[last];
		dk_duration_format(k->ttl, ttl, sizeof(ttl));
		append(buf, len, "%s", n++ ? "; " : "");
		switch (dk_key_state_get(k, now)) {
		case DK_KS_ACTIVE:
			append(buf, len, "%s holds the active key %s", sel,
			    k->key_id);
			break;
		case DK_KS_RETIRED:
			if (k->compromised_at != 0)
				append(buf, len, "%s still holds key %s "
				    "(retired, compromised; revoked at once, "
				    "then removed after its TTL %s)", sel,
				    k->key_id, ttl);
			else
				append(buf, len, "%s still holds key %s "
				    "(retired; revoked after retire_after %s, "
				    "then removed after its TTL %s)", sel,
				    k->key_id, ra, ttl);
			break;
		case DK_KS_REVOKED:
			append(buf, len, "%s still holds key %s (revoked; "
			    "removed after its TTL %s)", sel, k->key_id, ttl);
			break;
		case DK_KS_REMOVED:
			dk_format_time(dk_plan_selector_free_at(c->st, pol,
			    sel), NEVER_TEXT, t, sizeof(t));
			append(buf, len, "%s's last key %s was removed; "
			    "resolvers may cache its record for its TTL %s, "
			    "until %s", sel, k->key_id, ttl, t);
			break;
		default:
			append(buf, len, "%s holds key %s of a rotation not "
			    "finished (%s)", sel, k->key_id,
			    dk_kstate_name(dk_key_state_get(k, now)));
			break;
		}
	}
	if (n == 0)
		append(buf, len, "every selector's previous key is still "
		    "in DNS");
}

static void
print_dry_run(const struct dk_domain_ctx *c, const struct dk_plan *p)
{
	const struct dk_conf_domain *d = c->dom;
	char owner[512], alg[32], t1[32], t2[32], t3[32];
	int act = dk_plan_active_key(c->st, dk_now());

	dk_keyspec_format(&d->keyspec, alg, sizeof(alg));
	dk_duration_format(d->propagation_timeout, t1, sizeof(t1));
	dk_duration_format(d->safety_margin, t2, sizeof(t2));
	dk_duration_format(d->retire_after, t3, sizeof(t3));
	if (p->action == DK_ACT_GENERATE) {
		dk_owner(p->selector, d->name, owner, sizeof(owner));
		say("would generate a %s key for selector %s", alg,
		    p->selector);
		if (c->pol.ned > 0)
			say("would generate an ed25519 key on the idle one "
			    "of %s and %s too, switched on together with it",
			    c->pol.ed_selectors[0],
			    c->pol.ed_selectors[c->pol.ned - 1]);
	} else {
		const struct dk_key_state *ks = &c->st->keys[p->key];

		dk_owner(ks->selector, d->name, owner, sizeof(owner));
		say("would continue the rotation to %s (key %s): next step "
		    "%s", ks->selector, ks->key_id, dk_action_name(p->action));
	}
	if (d->mode == DK_MODE_CNAME) {
		char target[512];
		const char *sel = p->action == DK_ACT_GENERATE ? p->selector :
		    c->st->keys[p->key].selector;

		if (dk_txt_owner(d, sel, target, sizeof(target), NULL) != DK_OK)
			snprintf(target, sizeof(target), "(invalid name)");
		say("would publish %s TXT through provider %s (%s)", target,
		    c->psec->name, c->psec->type);
		say("would wait until every server of %s serves %s CNAME %s",
		    d->name, owner, target);
	} else
		say("would publish %s TXT through provider %s (%s)", owner,
		    c->psec->name, c->psec->type);
	say("would wait until every authoritative server serves it "
	    "(at most %s)", t1);
	say("would wait out resolver caches: the name's previous TTL or the "
	    "SOA negative TTL, plus %s", t2);
	say("would switch signer %s (%s) to %s", c->ssec->name, c->ssec->type,
	    owner);
	if (act >= 0)
		say("would retire %s._domainkey.%s: revoked %s later, then "
		    "deleted", c->st->keys[act].selector, d->name, t3);
}

/*
 * Once the new key is published: how long activation will wait and why,
 * on stdout like the other progress lines (-q silences it; stderr stays
 * empty on success, for cron).  A name that held no record (a fresh or
 * reused selector: the usual case) is cached as absent for the SOA
 * negative TTL; one that held a record, for that record's TTL.
 */
static void
say_expected_wait(const struct dk_domain_ctx *c, int k)
{
	const struct dk_key_state *ks = &c->st->keys[k];
	char d[32], m[32], total[32];
	size_t i;
	int held = 0;

	for (i = 0; i < c->st->nkeys; i++)
		if ((int)i != k && c->st->keys[i].removed_at == 0 &&
		    c->st->keys[i].published_at != 0 &&
		    strcmp(c->st->keys[i].selector, ks->selector) == 0)
			held = 1;
	dk_duration_format(ks->drain, d, sizeof(d));
	dk_duration_format(c->pol.safety_margin, m, sizeof(m));
	dk_duration_format(ks->drain + c->pol.safety_margin, total,
	    sizeof(total));
	say("%s: selector %s: activation expected about %s after every "
	    "authoritative server serves the record: %s %s plus "
	    "safety_margin %s", c->dom->name, ks->selector, total,
	    held ? "the previous record's TTL" : "the SOA negative TTL "
	    "(resolvers may cache the name's absence that long)", d, m);
}

/* The blocked-selector failure, said here: it may be longer than an
 * error message holds. */
static int
say_blocked(const struct dk_domain_ctx *c, const char *domain,
    const struct dk_plan *p, int64_t now)
{
	char when[64], busy[1024];

	dk_format_time(p->when, NEVER_TEXT, when, sizeof(when));
	busy_selectors(c, now, busy, sizeof(busy));
	complain("%s: no selector is free for a new key until %s: %s",
	    domain, when, busy);
	return DK_ETEMP;
}

static void
rotate_plan(struct dk_domain_ctx *c, void *arg, int64_t now,
    struct dk_plan *p)
{
	const struct dk_rotate_goal *r = arg;

	dk_plan_next(c->st, &c->pol, r->rotate, now, p);
}

/*
 * Nothing due: done once the new key is active (steps due now, such as
 * a compromised key's revocation, run first), or with nothing more to
 * wait for; a busy selector fails; otherwise wait for the next step.
 */
static int
rotate_idle(struct dk_domain_ctx *c, void *arg, const struct dk_plan *p,
    int64_t now, int *rc, struct dk_error *err)
{
	const struct dk_rotate_goal *r = arg;
	char d[32];

	if (r->target >= 0 && dk_key_state_get(&c->st->keys[r->target],
	    now) == DK_KS_ACTIVE) {
		*rc = DK_OK;
		return 0;
	}
	if (p->blocked) {
		*rc = say_blocked(c, r->domain, p, now);
		err->msg[0] = '\0';
		return 0;
	}
	if (p->when == 0) {
		*rc = DK_OK;
		return 0;
	}
	if (r->target >= 0) {
		dk_duration_format(p->when - now, d, sizeof(d));
		say("%s: %s; activation in %s", r->domain,
		    p->why ? p->why : "waiting", d);
	}
	return 1;
}

/* A rotation in progress, or the one just asked for: its new key. */
static int
rotate_step(struct dk_domain_ctx *c, void *arg, const struct dk_plan *p,
    int64_t now, int *pending, int *parked, struct dk_error *err)
{
	struct dk_rotate_goal *r = arg;
	int rc, was = r->rotate;

	(void)parked;
	if (p->action == DK_ACT_GENERATE) {
		r->rotate = 0;
	} else if (p->key >= 0 && r->target < 0 &&
	    dk_key_state_get(&c->st->keys[p->key], now) < DK_KS_ACTIVE) {
		r->target = p->key;
		r->rotate = 0;
	}
	rc = dk_domain_step(c, p, pending, err);
	if (p->action == DK_ACT_GENERATE && rc == DK_OK)
		r->target = (int)c->st->nkeys - 1;
	/* A key a host has yet to make: the rotation still asked. */
	else if (p->action == DK_ACT_GENERATE)
		r->rotate = was;
	if (rc == DK_OK && !r->told && r->target >= 0 &&
	    c->st->keys[r->target].published_at != 0 &&
	    c->st->keys[r->target].drain >= 0) {
		say_expected_wait(c, r->target);
		r->told = 1;
	}
	return rc;
}

void
dk_goal_rotate(struct dk_goal *g, struct dk_rotate_goal *r)
{
	memset(g, 0, sizeof(*g));
	g->plan = rotate_plan;
	g->idle = rotate_idle;
	g->step = rotate_step;
	g->interrupted = "interrupted; state kept, the next run resumes";
	g->too_many = "too many steps; state kept, the next run resumes";
	g->name = r->domain;
	g->arg = r;
}

/* --dry-run: what the next rotation would do, without doing it. */
static int
rotate_dry_run(const struct dk_domain_ctx *c, const char *domain)
{
	struct dk_plan p;
	int64_t now = dk_now();

	dk_plan_next(c->st, &c->pol, 1, now, &p);
	if (p.action == DK_ACT_GENERATE || (p.key >= 0 &&
	    dk_key_state_get(&c->st->keys[p.key], now) < DK_KS_ACTIVE)) {
		print_dry_run(c, &p);
		return DK_OK;
	}
	if (p.blocked)
		return say_blocked(c, domain, &p, now);
	say("nothing to do for %s", domain);
	return DK_OK;
}

int
cmd_rotate(const struct dk_conf *conf, const char *domain, int dry_run)
{
	const struct dk_conf_domain *dom;
	struct dk_domain_ctx c;
	struct dk_error err = { 0, "" };
	struct dk_rotate_goal r = { 1, -1, 0, domain };
	struct dk_goal g;
	int rc, steps = 0, parked;

	if ((dom = dk_conf_domain_find(conf, domain)) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	if ((rc = dk_domain_open(conf, dom, "rotate", dry_run ? -1 :
	    LOCK_WAIT, &c, &err)) != DK_OK) {
		complain("%s", err.msg);
		return dk_exit_code(rc);
	}
	dk_stop_handlers();
	if (dry_run) {
		rc = rotate_dry_run(&c, domain);
	} else {
		dk_goal_rotate(&g, &r);
		rc = dk_domain_drive(&c, &g, &steps, &parked, &err);
		if (rc != DK_OK && err.msg[0] != '\0')
			complain("%s", err.msg);
	}
	dk_domain_close(&c);
	return dk_exit_code(rc);
}
