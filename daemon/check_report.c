/*
 * daemon/check_report.c — what `check` says: the monitoring-plugin line with
 * perfdata and the details (worst first), the JSON document, the
 * Prometheus metrics.  Judges nothing.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../lib/key.h"
#include "../lib/metrics.h"
#include "check.h"


/* Room for n more bytes and a NUL in s (a string, not a file). */
static int
sgrow(struct str *s, size_t n)
{
	size_t cap;
	char *p;

	if (s->cap - s->len > n)
		return 1;
	for (cap = s->cap ? s->cap : 256; cap - s->len <= n; cap *= 2)
		;
	if ((p = realloc(s->p, cap)) == NULL)
		return 0;
	s->p = p;
	s->cap = cap;
	return 1;
}

void
check_sputs(struct str *s, const char *v, size_t n)
{
	if (s->f != NULL) {
		fwrite(v, 1, n, s->f);
		return;
	}
	if (!sgrow(s, n))
		return;
	memcpy(s->p + s->len, v, n);
	s->len += n;
	s->p[s->len] = '\0';
}

void
check_sappend(struct str *s, const char *fmt, ...)
{
	va_list ap;
	int l;

	va_start(ap, fmt);
	if (s->f != NULL) {
		vfprintf(s->f, fmt, ap);
		va_end(ap);
		return;
	}
	l = vsnprintf(s->p != NULL ? s->p + s->len : NULL, s->p != NULL ?
	    s->cap - s->len : 0, fmt, ap);
	va_end(ap);
	if (l < 0)
		return;
	if (s->p == NULL || (size_t)l >= s->cap - s->len) {
		if (!sgrow(s, (size_t)l))
			return;
		va_start(ap, fmt);
		vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
		va_end(ap);
	}
	s->len += (size_t)l;
}

/* JSON string literal of s (control characters escaped). */
void
check_sjson(struct str *s, const char *v)
{
	const char *p, *run;
	char esc[8];

	if (v == NULL) {
		check_sputs(s, "null", 4);
		return;
	}
	check_sputs(s, "\"", 1);
	for (p = run = v; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c != '"' && c != '\\' && c >= 0x20 && c != 0x7f)
			continue;
		check_sputs(s, run, (size_t)(p - run));
		if (c == '"' || c == '\\')
			snprintf(esc, sizeof(esc), "\\%c", c);
		else
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		check_sputs(s, esc, strlen(esc));
		run = p + 1;
	}
	check_sputs(s, run, (size_t)(p - run));
	check_sputs(s, "\"", 1);
}

static const char *
item_state(const struct item *it)
{
	return it->kind == K_WATCH ? "watch" : dk_kstate_name(it->kstate);
}

static void
json_problems(struct str *o, const struct plist *l)
{
	size_t i;

	check_sappend(o, "[");
	for (i = 0; i < l->n; i++) {
		check_sappend(o, "%s{\"severity\":\"%s\",\"message\":", i ? "," : "",
		    check_st_name[l->p[i].sev]);
		check_sjson(o, l->p[i].msg);
		check_sappend(o, "}");
	}
	check_sappend(o, "]");
}

void
check_json_domain(struct run *r, struct dom *d, struct str *o)
{
	const char *first;
	size_t i, j, na;
	int act[8];

	check_sappend(o, "{\"domain\":");
	check_sjson(o, d->cd->name);
	check_sappend(o, ",\"status\":\"%s\",\"mode\":\"%s\",\"active_selector\":",
	    check_st_name[d->worst], d->cd->mode == DK_MODE_CNAME ? "cname" :
	    "txt");
	/*
	 * active_selector: the first track's (RSA of a dual domain);
	 * active_keys: every active key, both of a dual-algorithm domain.
	 */
	na = d->c.st != NULL ? dk_plan_active_keys(d->c.st, r->now, act, 8) :
	    0;
	if (na > 8)
		na = 8;
	for (i = 0, first = NULL; i < na && first == NULL; i++)
		if (strncmp(d->c.st->keys[act[i]].algorithm, "ed25519", 7) != 0)
			first = d->c.st->keys[act[i]].selector;
	check_sjson(o, first != NULL ? first : d->active_sel);
	check_sappend(o, ",\"active_keys\":[");
	for (i = 0; i < na; i++) {
		const struct dk_key_state *ks = &d->c.st->keys[act[i]];

		check_sappend(o, "%s{\"selector\":", i ? "," : "");
		check_sjson(o, ks->selector);
		check_sappend(o, ",\"key_id\":");
		check_sjson(o, ks->key_id);
		check_sappend(o, ",\"algorithm\":");
		check_sjson(o, ks->algorithm);
		check_sappend(o, "}");
	}
	check_sappend(o, "]");
	if (d->active_age >= 0)
		check_sappend(o, ",\"active_age\":%" PRId64, d->active_age);
	else
		check_sappend(o, ",\"active_age\":null");
	if (d->next_at > 0)
		check_sappend(o, ",\"next_action_at\":%" PRId64 ",\"next_action_in\""
		    ":%" PRId64, d->next_at, d->next_at - r->now);
	else
		check_sappend(o, ",\"next_action_at\":null,\"next_action_in\":null");
	check_sappend(o, ",\"servers_ok\":%zu,\"servers_total\":%zu", d->ok,
	    d->total);
	check_sappend(o, ",\"selectors\":[");
	for (i = 0; i < d->nitems; i++) {
		struct item *it = &d->items[i];

		check_sappend(o, "%s{\"selector\":", i ? "," : "");
		check_sjson(o, it->selector);
		check_sappend(o, ",\"kind\":\"%s\",\"state\":\"%s\",\"owner\":",
		    it->kind == K_WATCH ? "watch" : "managed", item_state(it));
		check_sjson(o, it->owner);
		check_sappend(o, ",\"cname_owner\":");
		check_sjson(o, it->cname_owner[0] ? it->cname_owner : NULL);
		check_sappend(o, ",\"key_id\":");
		check_sjson(o, it->ks != NULL ? it->ks->key_id : NULL);
		if (it->bits > 0)
			check_sappend(o, ",\"rsa_bits\":%u", it->bits);
		check_sappend(o, ",\"status\":\"%s\",\"servers\":[",
		    check_st_name[it->probs.worst]);
		for (j = 0; it->srv != NULL && j < it->srv->n; j++) {
			check_sappend(o, "%s{\"server\":", j ? "," : "");
			check_sjson(o, it->srv->a[j].text);
			check_sappend(o, ",\"status\":\"%s\"}",
			    check_st_name[it->srv_sev[j]]);
		}
		check_sappend(o, "],\"problems\":");
		json_problems(o, &it->probs);
		check_sappend(o, "}");
	}
	check_sappend(o, "],\"dmarc\":[");
	for (i = 0; i < d->nsenders; i++) {
		struct sender *s = &d->senders[i];

		check_sappend(o, "%s{\"sender\":", i ? "," : "");
		check_sjson(o, s->name);
		check_sappend(o, ",\"record\":");
		check_sjson(o, s->found ? s->qname[s->found - 1] : NULL);
		check_sappend(o, ",\"adkim\":");
		check_sjson(o, s->adkim == 's' ? "s" : s->adkim == 'r' ? "r" : NULL);
		check_sappend(o, ",\"policy\":");
		check_sjson(o, s->policy[0] ? s->policy : NULL);
		check_sappend(o, ",\"signing_domain\":");
		check_sjson(o, s->signing);
		check_sappend(o, ",\"matched\":%s", s->matched ? "true" :
		    "false");
		check_sappend(o, ",\"aligned\":%s,\"note\":", s->aligned < 0 ?
		    "null" : s->aligned ? "true" : "false");
		check_sjson(o, s->note);
		check_sappend(o, "}");
	}
	check_sappend(o, "],\"signer\":[");
	for (i = 0; i < d->nlive; i++) {
		check_sappend(o, "%s{\"selector\":", i ? "," : "");
		check_sjson(o, d->live[i].selector);
		check_sappend(o, ",\"keyfile\":");
		check_sjson(o, d->live[i].keyfile);
		check_sappend(o, "}");
	}
	check_sappend(o, "],\"problems\":");
	json_problems(o, &d->probs);
	check_sappend(o, "}");
}

/*
 * The metrics of a run, made as its domains are judged (check_metrics_add
 * for each part of the run), written at its end: NULL when the
 * configuration names no metrics file.
 */
struct dk_metrics *
check_metrics_begin(struct run *r)
{
	struct dk_metrics *m;

	if (r->conf->metrics_file == NULL)
		return NULL;
	if ((m = dk_metrics_new()) == NULL)
		return NULL;
	dk_metrics_declare(m, "dkimkeyd_key_age_seconds", DK_METRIC_GAUGE,
	    "Seconds since the key now at the selector was created.");
	dk_metrics_declare(m, "dkimkeyd_active_key_age_seconds",
	    DK_METRIC_GAUGE, "Seconds since the domain's active key was "
	    "activated.");
	dk_metrics_declare(m, "dkimkeyd_next_action_timestamp_seconds",
	    DK_METRIC_GAUGE, "When the next lifecycle step of the domain is "
	    "due (Unix time).");
	dk_metrics_declare(m, "dkimkeyd_server_ok", DK_METRIC_GAUGE,
	    "1 when the server serves the selector as expected, else 0.");
	dk_metrics_declare(m, "dkimkeyd_check_status", DK_METRIC_GAUGE,
	    "Result of the last check of the domain: 0 OK, 1 WARNING, "
	    "2 CRITICAL, 3 UNKNOWN.");
	dk_metrics_declare(m, "dkimkeyd_check_timestamp_seconds",
	    DK_METRIC_GAUGE, "When check last ran (Unix time).");
	return m;
}

/* The series of the domains judged now (r->d). */
void
check_metrics_add(struct run *r, struct dk_metrics *m)
{
	size_t i, j, k;

	for (i = 0; m != NULL && i < r->nd; i++) {
		struct dom *d = &r->d[i];
		const char *dl[] = { "domain", d->cd->name, NULL };

		for (j = 0; j < d->nitems; j++) {
			struct item *it = &d->items[j];
			const char *sl[] = { "domain", d->cd->name,
			    "selector", it->selector, NULL };

			if (it->ks != NULL && it->kstate != DK_KS_REMOVED)
				dk_metrics_set(m, "dkimkeyd_key_age_seconds",
				    (double)(r->now - it->ks->created_at), sl);
			for (k = 0; it->srv != NULL && k < it->srv->n; k++) {
				const char *vl[] = { "domain", d->cd->name,
				    "selector", it->selector, "server",
				    it->srv->a[k].text, NULL };

				dk_metrics_set(m, "dkimkeyd_server_ok",
				    it->srv_sev[k] == ST_OK ? 1 : 0, vl);
			}
		}
		if (d->active_age >= 0)
			dk_metrics_set(m, "dkimkeyd_active_key_age_seconds",
			    (double)d->active_age, dl);
		if (d->next_at > 0)
			dk_metrics_set(m,
			    "dkimkeyd_next_action_timestamp_seconds",
			    (double)d->next_at, dl);
		dk_metrics_set(m, "dkimkeyd_check_status",
		    check_st_exit[d->worst], dl);
	}
}

/* Write the metrics (when write) and free them. */
void
check_metrics_end(struct run *r, struct dk_metrics *m, int write)
{
	struct dk_error err = { 0, "" }, warn = { 0, "" };

	if (m == NULL)
		return;
	if (!write) {
		dk_metrics_free(m);
		return;
	}
	dk_metrics_set(m, "dkimkeyd_check_timestamp_seconds", (double)r->now,
	    NULL);
	/*
	 * The daemon writes its own families to the same file: replace
	 * only ours.  A damaged file is reported, then rewritten clean.
	 */
	if (dk_metrics_merge(m, r->conf->metrics_file, &warn, &err) != DK_OK)
		complain("%s", err.msg);
	else if (warn.code != 0)
		complain("%s", warn.msg);
	dk_metrics_free(m);
}

/* Each problem of severity k in d, worst first, as a plugin detail. */
static void
text_details(struct dom *d, int k, struct str *det, size_t *nprob,
    const char **first, int worst)
{
	size_t j, m;

	for (j = 0; j < d->nitems; j++) {
		struct plist *l = &d->items[j].probs;

		for (m = 0; m < l->n; m++)
			if (l->p[m].sev == k) {
				if (det != NULL)
					check_sappend(det, "%s: %s\n",
					    check_st_name[k], l->p[m].msg);
				(*nprob)++;
				if (*first == NULL && k == worst)
					*first = l->p[m].msg;
			}
	}
	for (j = 0; j < d->probs.n; j++)
		if (d->probs.p[j].sev == k) {
			if (det != NULL)
				check_sappend(det, "%s: %s\n", check_st_name[k],
				    d->probs.p[j].msg);
			(*nprob)++;
			if (*first == NULL && k == worst)
				*first = d->probs.p[j].msg;
		}
}

/* What was found but changes no state (severity OK), as notes. */
static void
text_notes(struct dom *d, struct str *det)
{
	size_t j, m;

	for (j = 0; j < d->nitems; j++) {
		struct plist *l = &d->items[j].probs;

		for (m = 0; m < l->n; m++)
			if (l->p[m].sev == ST_OK)
				check_sappend(det, "note: %s\n", l->p[m].msg);
	}
	for (j = 0; j < d->probs.n; j++)
		if (d->probs.p[j].sev == ST_OK)
			check_sappend(det, "note: %s\n", d->probs.p[j].msg);
}

/*
 * The plugin output of the domains judged now (r->d): the counts and
 * first problems the line needs into t, their perfdata into perf, their
 * details into det.  check_print_text then writes the line and both.
 */
void
check_text_add(struct run *r, struct tally *t, struct str *perf,
    struct str *det)
{
	const char *first;
	size_t i, j, nprob;
	char w[32], c[32];
	int k;

	w[0] = c[0] = '\0';
	if (r->o->warn_age > 0)
		snprintf(w, sizeof(w), "%" PRId64, r->o->warn_age);
	if (r->o->crit_age > 0)
		snprintf(c, sizeof(c), "%" PRId64, r->o->crit_age);
	for (i = 0; i < r->nd; i++) {
		t->nd++;
		t->nsel += r->d[i].nitems;
		for (k = ST_CRITICAL; k >= ST_UNKNOWN; k--) {
			first = NULL;
			nprob = 0;
			text_details(&r->d[i], k, NULL, &nprob, &first, k);
			t->nprob += nprob;
			if (t->first[k] == NULL && first != NULL &&
			    (t->first[k] = dk_strdup(first)) == NULL)
				r->oom = 1;
		}
	}
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		if (d->active_age >= 0)
			check_sappend(perf, " '%s_active_age'=%" PRId64 "s;%s;%s",
			    d->cd->name, d->active_age, w, c);
		if (d->next_at > 0)
			check_sappend(perf, " '%s_next_action'=%" PRId64 "s",
			    d->cd->name, d->next_at - r->now);
		check_sappend(perf, " '%s_servers_ok'=%zu;;;0;%zu", d->cd->name,
		    d->ok, d->total);
	}
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		first = NULL;
		nprob = 0;
		for (k = ST_CRITICAL; k >= ST_UNKNOWN; k--)
			text_details(d, k, det, &nprob, &first, k);
		text_notes(d, det);
		for (j = 0; j < d->nsenders; j++)
			if (d->senders[j].none)
				check_sappend(det, "note: %s: sender %s: %s\n",
				    d->cd->name, d->senders[j].name,
				    d->senders[j].note);
	}
}

/*
 * The plugin output: the line (the worst problem first, and how many
 * there are), then the perfdata of every domain, then the details.
 * Returns -1 when the buffered parts could not be read back.
 */
int
check_print_text(const struct run *r, const struct tally *t, int worst,
    struct str *perf, struct str *det)
{
	const char *first = worst > ST_OK ? t->first[worst] : NULL;

	if (worst == ST_OK)
		printf("DKIM OK - %zu domain%s, %zu selector%s as expected on "
		    "every server |", t->nd, t->nd == 1 ? "" : "s", t->nsel,
		    t->nsel == 1 ? "" : "s");
	else
		printf("DKIM %s - %s%s |", check_st_name[worst],
		    first ? first : "?", t->nprob > 1 ? " (and more below)" :
		    "");
	if (check_spool_copy(perf, stdout) != 0)
		return -1;
	fputs("\n", stdout);
	return check_spool_copy(det, stdout);
}

/*
 * A spool: output made part by part but written only at the end (after
 * a line that needs the whole run), kept in an unlinked temporary file
 * so that a run over many domains does not hold it in memory; in memory
 * when no temporary file can be made.
 */
void
check_spool_open(struct str *s)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd, n;

	memset(s, 0, sizeof(*s));
	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	n = snprintf(path, sizeof(path), "%s/dkimkeyd-check.XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(path) || (fd = mkstemp(path)) == -1)
		return;
	unlink(path);
	if ((s->f = fdopen(fd, "w+")) == NULL)
		close(fd);
}

/* Write what s holds to out; -1 when it could not be read back whole. */
int
check_spool_copy(struct str *s, FILE *out)
{
	char buf[65536];
	size_t n;

	if (s->f == NULL) {
		if (s->len > 0)
			fwrite(s->p, 1, s->len, out);
		return 0;
	}
	if (fflush(s->f) != 0 || ferror(s->f) || fseek(s->f, 0, SEEK_SET) != 0)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), s->f)) > 0)
		fwrite(buf, 1, n, out);
	return ferror(s->f) ? -1 : 0;
}

void
check_spool_close(struct str *s)
{
	if (s->f != NULL)
		fclose(s->f);
	free(s->p);
	memset(s, 0, sizeof(*s));
}
