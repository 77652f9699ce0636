/*
 * daemon/check_judge.c — what `check`'s answers mean.  Pure: reads the collected
 * domains and the probe round's answers (judged by lib/observe.h, as the
 * propagation gate judges them), writes problems and per-server
 * severities, and does no I/O.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../lib/key.h"
#include "../lib/metrics.h"
#include "check.h"

const char *const check_st_name[] = { "OK", "UNKNOWN", "WARNING",
    "CRITICAL" };
const int check_st_exit[] = { 0, 3, 1, 2 };


/* snprintf whose truncation is intended (messages are cut, not lost). */
void
check_note(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

void
check_padd(struct plist *l, int sev, const char *fmt, ...)
{
	struct problem *np;
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	if ((np = reallocarray(l->p, l->n + 1, sizeof(*np))) == NULL) {
		free(msg);
		return;
	}
	l->p = np;
	l->p[l->n].sev = sev;
	l->p[l->n].msg = msg;
	l->n++;
	if (sev > l->worst)
		l->worst = sev;
}

void
check_pfree(struct plist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->p[i].msg);
	free(l->p);
	memset(l, 0, sizeof(*l));
}

/*
 * Is a query's answer usable?  Sets *sev and writes why not.  An answer
 * that is not authoritative (REFUSED, NOTAUTH, AA=0) proves the server
 * lame: CRITICAL.  No answer, SERVFAIL: UNKNOWN.
 */
int
check_usable(const struct dk_query *q, int *sev, char *why, size_t len)
{
	enum dk_obs_kind kind;

	if (dk_answer_usable(q->status == DK_OK ? &q->answer : NULL,
	    q->detail, q->server.text, &kind, why, len))
		return 1;
	*sev = kind == DK_OBS_LAME ? ST_CRITICAL : ST_UNKNOWN;
	return 0;
}

/* The servers of an item (indices in mask) as "a, b". */
static void
server_names(const struct servers *s, const int *mask, int want, char *buf,
    size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < s->n && off < len; i++) {
		if (mask[i] != want)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    off ? ", " : "", s->a[i].text);
	}
}

/* Does h= (colon-separated) list sha256?  s= email or *? */
static int
list_has(const char *list, const char *a, const char *b)
{
	char *dup, *tok, *save = NULL, *p;
	int found = 0;

	if ((dup = dk_strdup(list)) == NULL)
		return 1;
	for (tok = strtok_r(dup, ":", &save); tok != NULL;
	    tok = strtok_r(NULL, ":", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (p = tok + strlen(tok); p > tok && (p[-1] == ' ' ||
		    p[-1] == '\t'); p--)
			p[-1] = '\0';
		if (strcasecmp(tok, a) == 0 || (b != NULL &&
		    strcasecmp(tok, b) == 0))
			found = 1;
	}
	free(dup);
	return found;
}

/* Problems with a record's content whoever publishes it (RFC 6376, 8301). */
static int
lint(struct item *it, const struct dk_record *rec, const char *where)
{
	struct dk_error err = { 0, "" };
	unsigned bits = 0;
	int worst = ST_OK;

#define LINT(sev, ...) do { check_padd(&it->probs, sev, __VA_ARGS__); \
	if (sev > worst) worst = sev; } while (0)
	if (rec->h != NULL && !list_has(rec->h, "sha256", NULL))
		LINT(ST_CRITICAL, "%s: h=%s does not allow sha256: verifiers "
		    "reject every rsa-sha256/ed25519-sha256 signature (RFC "
		    "8301) on %s; remove h= or add sha256", it->owner, rec->h,
		    where);
	if (rec->s != NULL && !list_has(rec->s, "email", "*"))
		LINT(ST_CRITICAL, "%s: s=%s does not include email or *: the "
		    "key may not sign mail (RFC 6376 §3.6.1) on %s", it->owner,
		    rec->s, where);
	/* t=y is intended while the state says so (testing =). */
	if (rec->t != NULL && list_has(rec->t, "y", NULL) && it->ks != NULL &&
	    it->ks->testing && it->kind != K_WATCH)
		check_padd(&it->probs, ST_OK, "%s: t=y (testing period, "
		    "testing =) on %s: removed when it ends", it->owner,
		    where);
	else if (rec->t != NULL && list_has(rec->t, "y", NULL))
		LINT(ST_WARNING, "%s: t=y (testing mode): verifiers may treat "
		    "failures as unsigned mail, on %s; remove t=y", it->owner,
		    where);
	if (rec->plen == 0) {
		if (it->kind == K_WATCH)
			LINT(ST_WARNING, "%s: key revoked (empty p=) on %s",
			    it->owner, where);
		return worst;
	}
	/* A parsed record's key was checked by the parse: its size is kept. */
	if ((bits = rec->bits) == 0 && dk_key_public_check(rec->k, rec->p,
	    rec->plen, &bits, &err) != DK_OK) {
		LINT(ST_CRITICAL, "%s: p= is not a valid %s public key on %s: "
		    "%s", it->owner, rec->k == DK_ALG_ED25519 ? "ed25519" :
		    "rsa", where, err.msg);
		return worst;
	}
	if (rec->k == DK_ALG_RSA) {
		it->bits = bits;
		if (bits < 1024)
			LINT(ST_CRITICAL, "%s: RSA key of %u bits on %s: "
			    "verifiers must reject keys under 1024 bits (RFC "
			    "8301); publish a 2048-bit key", it->owner, bits,
			    where);
		else if (bits < 2048)
			LINT(ST_WARNING, "%s: RSA key of %u bits on %s: under "
			    "2048 bits (RFC 8301 recommends at least 2048)",
			    it->owner, bits, where);
	}
#undef LINT
	return worst;
}

/* One distinct answer among the servers of an item. */
struct variant {
	char	*text;		/* joined record, or NULL: absent */
	size_t	 multi;		/* several TXT RRs: how many, else 0 */
	struct dk_observation obs; /* the first server's, judged */
	int	 mask[MAX_SERVERS];
	size_t	 count;
};

/*
 * The servers' answers for an item, grouped into distinct variants
 * (v[], *nvp of them); *answered counts the servers that answered.
 * Servers that did not answer, or are lame, are judged here.
 */
static void
collect_variants(struct run *r, struct item *it, struct variant *v,
    size_t *nvp, int *answered)
{
	const struct dk_query *q;
	char *text;
	size_t i, k, nv = 0, n = it->srv->n;
	int sev;

	for (i = 0; i < n; i++) {
		struct dk_observation o;

		q = &r->q[it->q0 + i];
		if (dk_observe_txt(q->status == DK_OK ? &q->answer : NULL,
		    q->detail, q->server.text, it->owner, it->expect, &o) !=
		    DK_OK) {
			dk_observation_clear(&o);
			continue;
		}
		if (o.kind == DK_OBS_NOANSWER || o.kind == DK_OBS_LAME) {
			sev = o.kind == DK_OBS_LAME ? ST_CRITICAL : ST_UNKNOWN;
			it->srv_sev[i] = sev;
			check_padd(&it->probs, sev, "%s: %s", it->owner, o.why);
			dk_observation_clear(&o);
			continue;
		}
		(*answered)++;
		/* A CNAME where a key record belongs is judged as absent. */
		text = o.text;
		if (o.kind == DK_OBS_SEVERAL && asprintf(&text, "(%zu records)",
		    o.nrr) == -1) {
			dk_observation_clear(&o);
			continue;
		}
		/* Same text, same count: one variant. */
		for (k = 0; k < nv; k++)
			if (v[k].multi == (o.kind == DK_OBS_SEVERAL ? o.nrr :
			    0) && ((v[k].text == NULL && text == NULL) ||
			    (v[k].text != NULL && text != NULL &&
			    strcmp(v[k].text, text) == 0)))
				break;
		if (k == nv) {
			/* Cleared as taken: the whole array is large. */
			memset(&v[nv], 0, sizeof(v[nv]));
			v[nv].text = text;
			v[nv].multi = o.kind == DK_OBS_SEVERAL ? o.nrr : 0;
			v[nv].obs = o;
			v[nv].obs.text = NULL;	/* owned by the variant */
			nv++;
		} else {
			if (text != o.text)
				free(text);
			dk_observation_clear(&o);
		}
		v[k].mask[i] = 1;
		v[k].count++;
	}
	*nvp = nv;
}

/* The severity of one variant, served by the servers names. */
static int
judge_variant(struct item *it, const struct variant *vk, const char *names)
{
	const struct dk_observation *ob = &vk->obs;
	int sev, vs = ST_OK;

	if (vk->text == NULL) {
		if (it->kind == K_WATCH) {
			vs = ST_CRITICAL;
			check_padd(&it->probs, vs, "%s: watched selector %s "
			    "has no key record on %s", it->owner,
			    it->selector, names);
		} else if (it->expect != NULL) {
			vs = it->kstate == DK_KS_PUBLISHED ?
			    ST_WARNING : ST_CRITICAL;
			check_padd(&it->probs, vs, "%s: no record on %s, but "
			    "key %s is %s%s", it->owner, names,
			    it->ks->key_id, dk_kstate_name(it->kstate),
			    vs == ST_WARNING ? " (still propagating)" :
			    "");
		}
	} else if (vk->multi) {
		vs = ST_CRITICAL;
		check_padd(&it->probs, vs, "%s: %zu TXT RRs on %s: exactly "
		    "one is allowed at a selector (verifiers may pick "
		    "any)", it->owner, vk->multi, names);
	} else if (it->kind == K_MANAGED && it->expect == NULL) {
		vs = ST_CRITICAL;
		check_padd(&it->probs, vs, "%s: still published on %s after "
		    "key %s was removed", it->owner, names,
		    it->ks->key_id);
	} else if (ob->kind == DK_OBS_INVALID || ob->rec == NULL) {
		vs = ST_CRITICAL;
		check_padd(&it->probs, vs, "%s: invalid record on %s: %s",
		    it->owner, names, ob->why);
	} else {
		if (it->kind == K_MANAGED && ob->kind == DK_OBS_OTHER &&
		    ob->differs == DK_DIFF_KEY) {
			vs = ST_CRITICAL;
			check_padd(&it->probs, vs, "%s: %s serves %s than key "
			    "%s (%s) that dkimkeyd holds", it->owner,
			    names, ob->rec->plen == 0 ? "a revoked "
			    "record rather" : "another key",
			    it->ks->key_id, dk_kstate_name(it->kstate));
		} else if (it->kind == K_MANAGED &&
		    ob->kind == DK_OBS_OTHER) {
			vs = ST_WARNING;
			check_padd(&it->probs, vs, "%s: %s serves key %s (%s) "
			    "with h=, s= or t= tags other than "
			    "dkimkeyd published: the record was changed "
			    "outside dkimkeyd, and a record like it "
			    "would not pass the activation gate",
			    it->owner, names, it->ks->key_id,
			    dk_kstate_name(it->kstate));
		}
		sev = lint(it, ob->rec, names);
		if (sev > vs)
			vs = sev;
	}
	return vs;
}

/* cname mode: the customer's name must point at our record. */
static void
judge_cname(struct run *r, struct item *it)
{
	struct dk_observation co;
	const struct dk_query *q;
	size_t i;
	int sev;

	for (i = 0; it->csrv != NULL && it->cname_owner[0] != '\0'; i++) {
		if (it->csrv->rc != DK_OK) {
			check_padd(&it->probs, ST_UNKNOWN, "%s: cannot find the "
			    "customer's servers: %s", it->cname_owner,
			    it->csrv->why);
			break;
		}
		if (i >= it->csrv->n)
			break;
		q = &r->q[it->cq0 + i];
		if (dk_observe_cname(q->status == DK_OK ? &q->answer : NULL,
		    q->detail, q->server.text, it->cname_owner, it->owner,
		    &co) != DK_OK) {
			dk_observation_clear(&co);
			continue;
		}
		if (co.kind == DK_OBS_NOANSWER || co.kind == DK_OBS_LAME) {
			sev = co.kind == DK_OBS_LAME ? ST_CRITICAL : ST_UNKNOWN;
			it->csrv_sev[i] = sev;
			check_padd(&it->probs, sev, "%s: %s", it->cname_owner, co.why);
		} else if (co.kind == DK_OBS_ABSENT) {
			it->csrv_sev[i] = ST_CRITICAL;
			check_padd(&it->probs, ST_CRITICAL, "%s: no CNAME on %s; the "
			    "customer must publish %s CNAME %s.",
			    it->cname_owner, q->server.text, it->cname_owner,
			    it->owner);
		} else if (co.kind != DK_OBS_SERVED) {
			it->csrv_sev[i] = ST_CRITICAL;
			check_padd(&it->probs, ST_CRITICAL, "%s: CNAME on %s points "
			    "to %s, expected %s", it->cname_owner,
			    q->server.text, co.cname, it->owner);
		}
		dk_observation_clear(&co);
	}
}

static void
judge_item(struct run *r, struct dom *d, struct item *it)
{
	struct variant v[MAX_SERVERS];
	char names[1024];
	size_t i, k, nv = 0, n;
	int vs, answered = 0;

	if (it->srv == NULL)
		return;
	if (it->srv->rc != DK_OK) {
		check_padd(&it->probs, ST_UNKNOWN, "%s: cannot find its servers: %s",
		    it->owner, it->srv->why);
		return;
	}
	n = it->srv->n;
	collect_variants(r, it, v, &nv, &answered);
	for (k = 0; k < nv; k++) {
		server_names(it->srv, v[k].mask, 1, names, sizeof(names));
		vs = judge_variant(it, &v[k], names);
		for (i = 0; i < n; i++)
			if (v[k].mask[i] && vs > it->srv_sev[i])
				it->srv_sev[i] = vs;
	}
	/* Only worth saying when nothing worse already explains it. */
	if (nv > 1 && it->probs.worst < ST_CRITICAL) {
		char a[512], b[512];

		server_names(it->srv, v[0].mask, 1, a, sizeof(a));
		server_names(it->srv, v[1].mask, 1, b, sizeof(b));
		check_padd(&it->probs, ST_WARNING, "%s: nameservers disagree: %s "
		    "serve%s %s, %s serve%s %s", it->owner, a, v[0].count > 1 ?
		    "" : "s", v[0].text ? "a record" : "nothing", b,
		    v[1].count > 1 ? "" : "s", v[1].text ? "another record" :
		    "nothing");
		for (i = 0; i < n; i++)
			if (it->srv_sev[i] < ST_WARNING && answered > 0)
				it->srv_sev[i] = ST_WARNING;
	}
	for (k = 0; k < nv; k++) {
		free(v[k].text);
		dk_observation_clear(&v[k].obs);
	}
	judge_cname(r, it);
}

/* RFC 1982 serial arithmetic: is a behind b? */
static int
serial_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}

static void
judge_serials(struct run *r, struct dom *d)
{
	const struct dk_query *q, *best;
	size_t i, j, base, n;
	int part;

	for (part = 0, base = d->soa_q0; part < 2; part++) {
		n = part == 0 ? d->zsrv.n : (d->soa_name[1] != NULL ? d->tsrv.n : 0);
		if (base + n > d->soa_q0 + d->nsoa)
			break;
		best = NULL;
		for (i = 0; i < n; i++) {
			q = &r->q[base + i];
			if (q->status != DK_OK || q->answer.soa_owner == NULL)
				continue;
			if (best == NULL || serial_lt(best->answer.soa_serial,
			    q->answer.soa_serial))
				best = q;
		}
		for (j = 0; best != NULL && j < n; j++) {
			q = &r->q[base + j];
			if (q->status != DK_OK || q->answer.soa_owner == NULL)
				continue;
			if (serial_lt(q->answer.soa_serial,
			    best->answer.soa_serial))
				check_padd(&d->probs, ST_WARNING, "%s: zone %s on %s "
				    "has serial %u, behind serial %u on %s "
				    "(lagging secondary: check zone transfers "
				    "and NOTIFY)", d->cd->name,
				    q->answer.soa_owner, q->server.text,
				    q->answer.soa_serial,
				    best->answer.soa_serial, best->server.text);
		}
		base += n;
	}
}

static void
judge_senders(struct run *r, struct dom *d)
{
	struct dk_error err = { 0, "" };
	struct dk_dmarc dm;
	const struct dk_query *q;
	char *text = NULL;
	size_t i, j, k, nrec;
	int sev;

	for (i = 0; i < d->nsenders; i++) {
		struct sender *s = &d->senders[i];

		/* Which key signs it, as match = says. */
		if (s->matched && strcmp(s->signing, d->cd->name) != 0)
			check_padd(&d->probs, ST_OK, "%s: sender %s is signed "
			    "with d=%s: [domain %s] is the most specific "
			    "section whose match covers it", d->cd->name,
			    s->name, s->signing, s->signing);
		else if (!s->matched)
			check_padd(&d->probs, ST_OK, "%s: sender %s: no "
			    "[domain] section's match covers it (match = %s "
			    "here): its mail is signed with d=%s only if the "
			    "signer is set up for it by hand", d->cd->name,
			    s->name, dk_match_name(d->cd->match), d->cd->name);
		if (s->srv.rc != DK_OK) {
			check_note(s->note, sizeof(s->note), "cannot find the "
			    "servers of %s: %s", s->qname[0], s->srv.why);
			check_padd(&d->probs, ST_UNKNOWN, "%s: DMARC of sender %s: %s",
			    d->cd->name, s->name, s->note);
			continue;
		}
		for (j = 0; j < s->nq && s->found == 0; j++) {
			q = &r->q[s->q0 + j];
			if (!check_usable(q, &sev, s->note, sizeof(s->note))) {
				check_padd(&d->probs, ST_UNKNOWN, "%s: DMARC of sender "
				    "%s: %s", d->cd->name, s->name, s->note);
				break;
			}
			/* RFC 7489 §6.6.3: only v=DMARC1 records count. */
			for (k = 0, nrec = 0; k < q->answer.ntxt; k++) {
				if (dk_txt_join(&q->answer.txt[k], &text) !=
				    DK_OK)
					continue;
				if (dk_dmarc_is_record(text, strlen(text))) {
					if (nrec == 0 && dk_dmarc_parse(text,
					    strlen(text), &dm, &err) != DK_OK)
						nrec = 100;
					else
						nrec++;
				}
				free(text);
				text = NULL;
			}
			if (nrec == 0)
				continue;
			s->found = (int)j + 1;
			if (nrec == 100) {
				check_note(s->note, sizeof(s->note), "%s: %s",
				    s->qname[j], err.msg);
				check_padd(&d->probs, ST_WARNING, "%s: sender %s: %s; "
				    "DMARC does not apply until it is fixed",
				    d->cd->name, s->name, s->note);
				break;
			}
			if (nrec > 1) {
				check_note(s->note, sizeof(s->note), "%s has %zu "
				    "DMARC records: receivers apply none",
				    s->qname[j], nrec);
				check_padd(&d->probs, ST_WARNING, "%s: sender %s: %s",
				    d->cd->name, s->name, s->note);
				break;
			}
			s->adkim = dm.adkim == DK_ALIGN_STRICT ? 's' : 'r';
			snprintf(s->policy, sizeof(s->policy), "%s",
			    j == 1 && dm.sp[0] ? dm.sp : dm.p);
			s->aligned = dk_dmarc_aligned(r->psl, s->signing,
			    s->name, dm.adkim);
			if (s->aligned)
				check_note(s->note, sizeof(s->note), "d=%s aligns "
				    "with %s (adkim=%c, %s)", s->signing,
				    s->name, s->adkim, s->qname[j]);
			else if (dm.adkim == DK_ALIGN_STRICT)
				check_note(s->note, sizeof(s->note), "d=%s does "
				    "not align with From %s: adkim=s in %s "
				    "requires d=%s; fix: sign %s mail with "
				    "d=%s (add [domain %s]) or set adkim=r",
				    s->signing, s->name, s->qname[j],
				    s->name, s->name, s->name, s->name);
			else
				check_note(s->note, sizeof(s->note), "d=%s does "
				    "not align with From %s: organizational "
				    "domains differ (relaxed, %s); fix: sign %s "
				    "mail with a d= under %s (add [domain %s])",
				    s->signing, s->name, s->qname[j], s->name,
				    s->org, s->name);
			if (!s->aligned)
				check_padd(&d->probs, ST_WARNING, "%s: sender %s (p=%s)"
				    ": %s", d->cd->name, s->name, s->policy,
				    s->note);
		}
		if (s->found == 0 && s->note[0] == '\0') {
			s->none = 1;
			check_note(s->note, sizeof(s->note), "no DMARC record at "
			    "%s%s%s: DMARC does not apply", s->qname[0],
			    s->nq > 1 ? " or " : "", s->nq > 1 ? s->qname[1] :
			    "");
		}
	}
}

/* The signer must point at exactly the active keys. */
/*
 * Is the key the signer reads from l->keyfile the key ks?  Judged by what
 * the key is (its key id, a digest of the public key), never by path: a
 * signer may hold its own copy (the files signer, other hosts).  The
 * same path is the same key without reading it.
 */
static int
live_is_key(struct run *r, struct live *l, const struct dk_key_state *ks)
{
	struct dk_error err = { 0, "" };
	struct dk_key *key = NULL;

	if (ks->file != NULL && strcmp(l->keyfile, ks->file) == 0)
		return 1;
	if (l->key_id[0] == '\0' && l->why == NULL) {
		if (dk_key_load(l->keyfile, &key, &err) != DK_OK) {
			/* Cut to fit: the reason is for a one-line report. */
			err.msg[255] = '\0';
			l->why = check_sdup(r, err.msg);
		} else
			snprintf(l->key_id, sizeof(l->key_id), "%s",
			    dk_key_id(key));
		dk_key_free(key);
	}
	return l->key_id[0] != '\0' && strcmp(l->key_id, ks->key_id) == 0;
}

static void
judge_signer(struct run *r, struct dom *d)
{
	struct dk_domain_state *st = d->c.st;
	int act[8];
	size_t na, i, j;

	na = dk_plan_active_keys(st, r->now, act, 8);
	if (na > 8)
		na = 8;
	if (na == 0) {
		if (d->nlive > 0)
			check_padd(&d->probs, ST_CRITICAL, "%s: signer %s uses "
			    "selector %s but dkimkeyd has no active key",
			    d->cd->name, d->c.ssec->name, d->live[0].selector);
		else if (d->cd->selectors[0] != NULL)
			check_padd(&d->probs, ST_WARNING, "%s: no active key yet "
			    "(run dkimkeyd rotate --domain %s)", d->cd->name,
			    d->cd->name);
		return;
	}
	for (i = 0; i < na; i++) {
		const struct dk_key_state *ks = &st->keys[act[i]];

		for (j = 0; j < d->nlive; j++)
			if (strcmp(d->live[j].selector, ks->selector) == 0 &&
			    live_is_key(r, &d->live[j], ks))
				break;
		if (j < d->nlive)
			continue;
		for (j = 0; j < d->nlive; j++)
			if (d->live[j].why != NULL &&
			    strcmp(d->live[j].selector, ks->selector) == 0)
				break;
		if (j < d->nlive) {
			check_padd(&d->probs, ST_UNKNOWN, "%s: signer %s uses %s "
			    "(%s), which cannot be compared with the active "
			    "key %s: %s", d->cd->name, d->c.ssec->name,
			    d->live[j].selector, d->live[j].keyfile,
			    ks->key_id, d->live[j].why);
			continue;
		}
		if (d->nlive == 0)
			check_padd(&d->probs, ST_CRITICAL, "%s: signer %s has no key "
			    "for the domain; expected %s (%s)", d->cd->name,
			    d->c.ssec->name, ks->selector, ks->file);
		else
			check_padd(&d->probs, ST_CRITICAL, "%s: signer %s uses %s "
			    "(%s), the active key is %s (%s)", d->cd->name,
			    d->c.ssec->name, d->live[0].selector,
			    d->live[0].keyfile, ks->selector, ks->file);
	}
	for (j = 0; j < d->nlive; j++) {
		for (i = 0; i < na; i++)
			if (strcmp(d->live[j].selector,
			    st->keys[act[i]].selector) == 0)
				break;
		if (i == na)
			check_padd(&d->probs, ST_CRITICAL, "%s: signer %s also uses "
			    "%s (%s), which is not an active key", d->cd->name,
			    d->c.ssec->name, d->live[j].selector,
			    d->live[j].keyfile);
	}
}

/*
 * hosts =: every host's agent must be alive (a heartbeat within
 * agent_timeout), and serve what it was assigned within agent_timeout
 * of the assignment; a host that cannot is CRITICAL, by name.
 */
/*
 * key_scope = per-host: a key asked of a host for the rotation in
 * progress (a generation not older than the state's newest) and not made
 * within agent_timeout, or refused, holds the rotation: CRITICAL, by
 * name.  Requests of an older generation were left behind by one that
 * was abandoned.
 */
static void
judge_keyreqs(struct run *r, struct dom *d)
{
	const struct dk_fleet_keyreq *q;
	int64_t limit = r->conf->agent_timeout, gen = 0;
	char to[32], age[32];
	size_t i;

	if (d->c.st == NULL)
		return;
	for (i = 0; i < d->c.st->nkeys; i++)
		if (d->c.st->keys[i].generation > gen)
			gen = d->c.st->keys[i].generation;
	dk_duration_format(limit, to, sizeof(to));
	for (i = 0; i < d->nkeyreq; i++) {
		q = &d->keyreq[i];
		if (q->generation < gen)
			continue;
		dk_duration_format(q->age, age, sizeof(age));
		if (q->code != 0 && q->error != NULL)
			check_padd(&d->probs, q->age > limit || q->code ==
			    DK_ECORRUPT ? ST_CRITICAL : ST_WARNING, "%s: host %s "
			    "cannot make its key for "
			    "%s: %s", d->cd->name, q->host, q->selector,
			    q->error);
		else if (q->age > limit)
			check_padd(&d->probs, ST_CRITICAL, "%s: host %s has not "
			    "made its key for %s in %s (agent_timeout %s); the "
			    "rotation waits", d->cd->name, q->host, q->selector,
			    age, to);
	}
}

static void
judge_fleet(struct run *r, struct dom *d)
{
	int64_t limit = r->conf->agent_timeout;
	char to[32], age[32];
	size_t i;

	dk_duration_format(limit, to, sizeof(to));
	for (i = 0; i < d->nfleet; i++) {
		const struct dk_fleet_host *h = &d->fleet[i];

		if (h->heartbeat_age < 0)
			check_padd(&d->probs, ST_CRITICAL, "%s: host %s: its "
			    "agent never reported (dkimkeyd agent --host %s)",
			    d->cd->name, h->host, h->host);
		else if (h->heartbeat_age > limit) {
			dk_duration_format(h->heartbeat_age, age, sizeof(age));
			check_padd(&d->probs, ST_CRITICAL, "%s: host %s: no "
			    "heartbeat from its agent for %s (agent_timeout "
			    "%s)", d->cd->name, h->host, age, to);
		}
		if (!h->assigned || h->acked)
			continue;
		if (h->code != 0 && h->error[0] != '\0')
			check_padd(&d->probs, h->assigned_age > limit ||
			    h->code == DK_ECORRUPT ? ST_CRITICAL : ST_WARNING,
			    "%s: host %s: %s", d->cd->name, h->host, h->error);
		else if (dk_fleet_host_late(h, limit)) {
			dk_duration_format(h->assigned_age, age, sizeof(age));
			check_padd(&d->probs, ST_CRITICAL, "%s: host %s has not "
			    "switched its signer for %s (agent_timeout %s); the "
			    "rotation waits", d->cd->name, h->host, age, to);
		}
	}
	judge_keyreqs(r, d);
}

/*
 * "active key mail1 is 3s old (critical at 2s)": the age in the unit the
 * threshold was given in (its largest exact unit), so that a threshold of
 * seconds does not print "0d".
 */
static void
age_problem(struct dom *d, int sev, const char *what, int64_t limit)
{
	static const struct { int64_t n; char u; } units[] = {
		{ 7 * 86400, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' },
		{ 1, 's' },
	};
	size_t i;

	for (i = 0; i + 1 < sizeof(units) / sizeof(units[0]); i++)
		if (limit % units[i].n == 0)
			break;
	check_padd(&d->probs, sev, "%s: active key %s is %" PRId64 "%c old (%s at "
	    "%" PRId64 "%c); rotate: dkimkeyd rotate --domain %s", d->cd->name,
	    d->active_sel, d->active_age / units[i].n, units[i].u, what,
	    limit / units[i].n, units[i].u, d->cd->name);
}

void
check_judge_domain(struct run *r, struct dom *d)
{
	struct dk_domain_state *st = d->c.st;
	struct dk_plan p;
	int act;
	size_t i, j;

	for (i = 0; i < d->nitems; i++) {
		struct item *it = &d->items[i];

		judge_item(r, d, it);
		if (it->srv != NULL && it->srv->rc == DK_OK)
			for (j = 0; j < it->srv->n; j++) {
				d->total++;
				d->ok += it->srv_sev[j] == ST_OK;
			}
		if (it->probs.worst > d->worst)
			d->worst = it->probs.worst;
	}
	judge_serials(r, d);
	judge_senders(r, d);
	if (d->cd->nhosts > 0)
		judge_fleet(r, d);
	else {
		judge_signer(r, d);
		check_judge_canary(r, d);
	}

	d->active_age = -1;
	if ((act = dk_plan_active_key(st, r->now)) >= 0) {
		d->active_age = r->now - st->keys[act].active_at;
		d->active_sel = st->keys[act].selector;
		if (r->o->crit_age > 0 && d->active_age >= r->o->crit_age)
			age_problem(d, ST_CRITICAL, "critical", r->o->crit_age);
		else if (r->o->warn_age > 0 && d->active_age >=
		    r->o->warn_age)
			age_problem(d, ST_WARNING, "warning", r->o->warn_age);
	}
	dk_plan_next(st, &d->c.pol, 0, r->now, &p);
	if (p.action != DK_ACT_NONE)
		d->next_at = r->now;
	else if (p.when != 0 && p.when != INT64_MAX)
		d->next_at = p.when;
	if (d->probs.worst > d->worst)
		d->worst = d->probs.worst;
}
