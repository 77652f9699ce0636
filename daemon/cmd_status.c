/* daemon/cmd_status.c — `status`: what each selector's key is doing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

static void
iso(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* JSON string: our strings are hostnames, hex and paths; escape anyway. */
static void
jstr(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
jtime(const char *name, int64_t t, int comma)
{
	if (t == 0)
		printf("\"%s\":null%s", name, comma ? "," : "");
	else
		printf("\"%s\":%" PRId64 "%s", name, t, comma ? "," : "");
}

/* Who holds the domain (backend = postgresql): NULL when nobody. */
static const struct dk_store_holder *
holder_of(const struct dk_conf *conf, const char *domain,
    struct dk_store_holder *h)
{
	struct dk_error err = { 0, "" };
	struct dk_store *store;

	if (conf->backend != DK_BACKEND_PG ||
	    (store = dk_daemon_store(conf, &err)) == NULL ||
	    dk_store_holder(store, domain, h, &err) != DK_OK ||
	    h->holder[0] == '\0')
		return NULL;
	return h;
}

static void
json_domain(const struct dk_domain_state *st, const struct dk_plan *p,
    const struct dk_policy *pol, int64_t now, int first,
    const struct dk_store_holder *h)
{
	int64_t tend = dk_plan_testing_end(st, pol);
	size_t i;

	printf("%s{\"domain\":", first ? "" : ",");
	jstr(st->domain);
	printf(",\"keys\":[");
	for (i = 0; i < st->nkeys; i++) {
		const struct dk_key_state *k = &st->keys[i];

		printf("%s{\"selector\":", i ? "," : "");
		jstr(k->selector);
		printf(",\"key_id\":");
		jstr(k->key_id);
		printf(",\"algorithm\":");
		jstr(k->algorithm);
		printf(",\"state\":");
		jstr(dk_kstate_name(dk_key_state_get(k, now)));
		printf(",\"generation\":%" PRId64 ",\"ttl\":%" PRId64 ",",
		    k->generation, k->ttl);
		jtime("created", k->created_at, 1);
		jtime("published", k->published_at, 1);
		jtime("visible", k->visible_at, 1);
		jtime("active", k->active_at, 1);
		jtime("retired", k->retired_at, 1);
		jtime("revoked", k->revoked_at, 1);
		jtime("removed", k->removed_at, 1);
		jtime("compromised", k->compromised_at, 0);
		printf(",\"testing\":%s}", k->testing ? "true" : "false");
	}
	printf("],");
	/* testing =: the period, and its end (null: not yet known). */
	printf("\"testing\":%" PRId64 ",", pol->testing);
	jtime("testing_until", tend == INT64_MAX ? 0 : tend, 1);
	if (h != NULL) {
		printf("\"lease\":{\"holder\":");
		jstr(h->holder);
		printf(",\"expires\":%" PRId64 ",\"token\":%" PRId64 "},",
		    h->expires, h->token);
	}
	printf("\"next_action\":");
	jstr(p->action == DK_ACT_NONE ? "none" : dk_action_name(p->action));
	printf(",");
	jtime("next_at", p->action != DK_ACT_NONE ? now :
	    (p->when == INT64_MAX ? 0 : p->when), 0);
	printf("}");
}

static void
text_domain(const struct dk_domain_state *st, const struct dk_plan *p,
    const struct dk_policy *pol, int64_t now, const struct dk_store_holder *h)
{
	int64_t tend = dk_plan_testing_end(st, pol);
	char t1[32], t2[32];
	size_t i;

	printf("%s\n", st->domain);
	if (h != NULL) {
		iso(h->expires, t1, sizeof(t1));
		printf("  leased to %s until %s (token %" PRId64 ")\n",
		    h->holder, t1, h->token);
	}
	if (st->nkeys == 0)
		printf("  no keys yet: run dkimkeyd rotate --domain %s\n",
		    st->domain);
	if (pol->testing > 0) {
		dk_duration_format(pol->testing, t2, sizeof(t2));
		if (tend == INT64_MAX)
			printf("  testing (t=y) %s from the first activation\n",
			    t2);
		else {
			iso(tend, t1, sizeof(t1));
			printf("  testing (t=y) %s: %s %s\n", t2,
			    now < tend ? "until" : "ended", t1);
		}
	}
	for (i = 0; i < st->nkeys; i++) {
		const struct dk_key_state *k = &st->keys[i];
		enum dk_kstate s = dk_key_state_get(k, now);
		int64_t since;

		if (s == DK_KS_REMOVED && now - k->removed_at > 86400)
			continue;	/* history: shown in --json */
		switch (s) {
		case DK_KS_CREATED:	since = k->created_at; break;
		case DK_KS_PUBLISHED:	since = k->published_at; break;
		case DK_KS_VISIBLE:	since = k->visible_at; break;
		case DK_KS_ACTIVE:	since = k->active_at; break;
		case DK_KS_RETIRED:	since = k->retired_at; break;
		case DK_KS_REVOKED:	since = k->revoked_at; break;
		default:		since = k->removed_at; break;
		}
		iso(since, t1, sizeof(t1));
		printf("  %-12s %-9s %-9s key-id %s  gen %" PRId64
		    "  since %s", k->selector, dk_kstate_name(s),
		    k->algorithm, k->key_id, k->generation, t1);
		/* Marked by `revoke`: say so until the key is gone. */
		if (k->compromised_at != 0) {
			iso(k->compromised_at, t2, sizeof(t2));
			printf("  compromised %s", t2);
		}
		if (k->testing && s < DK_KS_REVOKED)
			printf("  t=y");
		printf("\n");
	}
	if (p->action != DK_ACT_NONE) {
		printf("  next: %s %s now\n", dk_action_name(p->action),
		    p->key >= 0 ? st->keys[p->key].selector : "");
	} else if (p->when != 0 && p->when != INT64_MAX) {
		dk_duration_format(p->when > now ? p->when - now : 0, t2,
		    sizeof(t2));
		iso(p->when, t1, sizeof(t1));
		printf("  next: %s at %s (in %s)\n", p->why ? p->why : "step",
		    t1, t2);
	} else {
		printf("  next: nothing scheduled\n");
	}
}

int
cmd_status(const struct dk_conf *conf, const char *domain, int json)
{
	struct dk_domain_state *st;
	struct dk_error err = { 0, "" };
	struct dk_policy pol;
	struct dk_plan p;
	struct dk_store_holder hb;
	const struct dk_store_holder *h;
	int64_t now = dk_now();
	size_t i;
	int rc, status = 0, first = 1;

	if (domain != NULL && dk_conf_domain_find(conf, domain) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	if (json)
		printf("{\"domains\":[");
	for (i = 0; i < conf->ndomains; i++) {
		const struct dk_conf_domain *dom = &conf->domains[i];

		if (domain != NULL && dk_conf_domain_find(conf, domain) != dom)
			continue;
		if ((rc = dk_domain_load_state(conf, dom, &st, &err)) !=
		    DK_OK) {
			complain("%s", err.msg);
			status = dk_exit_code(rc);
			continue;
		}
		dk_policy_from_conf(dom, &pol);
		dk_plan_next(st, &pol, 0, now, &p);
		h = holder_of(conf, dom->name, &hb);
		if (json)
			json_domain(st, &p, &pol, now, first, h);
		else
			text_domain(st, &p, &pol, now, h);
		first = 0;
		dk_state_free(st);
	}
	if (json)
		printf("]}\n");
	return status;
}
