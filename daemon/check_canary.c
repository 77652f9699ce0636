/*
 * daemon/check_canary.c — `check --canary`, in one place: a message signed with the
 * very key file the signer reads must verify, as a receiver checks it,
 * with the record every authoritative server serves.  With canary =
 * COMMAND in the signer's section, the live signer itself signs a
 * message (COMMAND ... DOMAIN, the message on stdin, the signed message
 * on stdout), and every DKIM-Signature of the domain in its output must
 * verify with the record of each authoritative server.
 */
#include <sys/wait.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../lib/dkim.h"
#include "../lib/key.h"
#include "../lib/metrics.h"
#include "../lib/proc.h"
#include "check.h"

/* How long a canary command may take, and how much it may print. */
#define CANARY_TIMEOUT_MS	30000
#define CANARY_OUT_MAX		(1024 * 1024)

/* What --canary signs with the live key and verifies against DNS. */
const char check_canary_msg[] = "From: dkimkeyd canary\r\n\r\n"
    "This message proves the signer key works.\r\n";
const size_t check_canary_msglen = sizeof(check_canary_msg) - 1;

/*
 * The record q's server returned for l, parsed (free with
 * dk_record_free), or NULL with why it is unusable: not one TXT RR,
 * invalid, or revoked.
 */
static struct dk_record *
served_record(const struct dk_query *q, const struct live *l, char *why,
    size_t len)
{
	struct dk_error err = { 0, "" };
	struct dk_record *rec = NULL;
	char *text = NULL;

	if (q->answer.ntxt != 1)
		check_note(why, len, "%s does not serve its public key at %s (%zu "
		    "TXT records)", q->server.text, l->owner, q->answer.ntxt);
	else if (dk_txt_join(&q->answer.txt[0], &text) != DK_OK)
		check_note(why, len, "out of memory");
	else if (dk_record_parse(text, strlen(text), &rec, &err) != DK_OK)
		check_note(why, len, "%s serves an invalid record at %s: %s",
		    q->server.text, l->owner, err.msg);
	else if (rec->plen == 0) {
		check_note(why, len, "%s serves a revoked record (p=) at %s",
		    q->server.text, l->owner);
		dk_record_free(rec);
		rec = NULL;
	}
	free(text);
	return rec;
}

/*
 * Would the canary signature of l verify with the record q's server
 * returned, as a receiver's verifier checks it?  If not, why says so.
 */
static int
canary_verifies(const struct dk_query *q, const struct live *l, char *why,
    size_t len)
{
	struct dk_error err = { 0, "" };
	struct dk_record *rec;
	int ok = 0, rc;

	if ((rec = served_record(q, l, why, len)) == NULL)
		return 0;
	if (rec->k != l->alg)
		check_note(why, len, "%s serves a k=%s key at %s, the signer's key "
		    "is %s", q->server.text, rec->k == DK_ALG_ED25519 ?
		    "ed25519" : "rsa", l->owner, l->alg == DK_ALG_ED25519 ?
		    "ed25519" : "rsa");
	else if ((rc = dk_key_verify_sha256(rec->k, rec->p, rec->plen,
	    (const unsigned char *)check_canary_msg, check_canary_msglen,
	    l->sig, l->siglen, &err)) == DK_EMISMATCH)
		check_note(why, len, "%s serves another key at %s", q->server.text,
		    l->owner);
	else if (rc != DK_OK)
		check_note(why, len, "the key %s serves at %s: %s", q->server.text,
		    l->owner, err.msg);
	else
		ok = 1;
	dk_record_free(rec);
	return ok;
}

/* The message a canary command is given to sign, for domain. */
static char *
canary_message(const char *domain, int64_t now)
{
	char date[64], *m;
	time_t t = (time_t)now;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (asprintf(&m, "From: dkimkeyd canary <canary@%s>\r\n"
	    "To: <canary@%s>\r\n"
	    "Subject: dkimkeyd canary\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <canary.%" PRId64 "@%s>\r\n"
	    "\r\n"
	    "This message proves that the signer signs with a key every\r\n"
	    "authoritative server publishes.\r\n", domain, domain, date, now,
	    domain) == -1)
		return NULL;
	return m;
}

/*
 * Run the signer's canary command for d: its output, or NULL after
 * adding why not to d's problems.
 */
static struct dk_dkim_msg *
canary_run(struct run *r, struct dom *d, const char *cmd, const char *where)
{
	struct dk_error err = { 0, "" };
	struct dk_proc_opts po;
	struct dk_proc_result res;
	struct dk_dkim_msg *m = NULL;
	char **argv = NULL, **av = NULL, *msg = NULL, st[64];
	size_t argc = 0, i;

	memset(&res, 0, sizeof(res));
	if (dk_conf_split_words(cmd, &argv, &argc) != DK_OK || argc == 0 ||
	    argv[0][0] != '/') {
		check_padd(&d->probs, ST_UNKNOWN, "%s: canary: %s: canary = %s: "
		    "not an absolute command", d->cd->name, where, cmd);
		goto out;
	}
	if ((av = calloc(argc + 2, sizeof(*av))) == NULL ||
	    (msg = canary_message(d->cd->name, r->now)) == NULL) {
		r->oom = 1;
		goto out;
	}
	for (i = 0; i < argc; i++)
		av[i] = argv[i];
	av[argc] = (char *)d->cd->name;
	memset(&po, 0, sizeof(po));
	po.input = msg;
	po.inlen = strlen(msg);
	po.out_max = CANARY_OUT_MAX;
	po.err_max = 1024;
	po.timeout_ms = CANARY_TIMEOUT_MS;
	if (dk_proc_run(av, &po, &res, &err) != DK_OK) {
		check_padd(&d->probs, ST_CRITICAL, "%s: canary: command %s: %s",
		    d->cd->name, argv[0], err.msg);
		goto out;
	}
	if (dk_proc_describe(res.status, st, sizeof(st)) != 0) {
		if (res.err != NULL)
			res.err[strcspn(res.err, "\n")] = '\0';
		check_padd(&d->probs, ST_CRITICAL, "%s: canary: command %s %s%s%s",
		    d->cd->name, argv[0], st, res.err != NULL &&
		    res.err[0] != '\0' ? ": " : "", res.err != NULL ?
		    res.err : "");
		goto out;
	}
	if (res.out_truncated || res.out == NULL ||
	    dk_dkim_parse(res.out, res.outlen, &m, &err) != DK_OK) {
		check_padd(&d->probs, ST_CRITICAL, "%s: canary: command %s did "
		    "not print a message: %s", d->cd->name, argv[0],
		    res.out_truncated ? "over 1 MiB" : res.out == NULL ?
		    "no output" : err.msg);
		m = NULL;
	}
out:
	dk_proc_result_free(&res);
	free(av);
	free(msg);
	if (argv != NULL)
		dk_conf_argv_free(argv);
	return m;
}

/* Signature i of m (by live key l) against each server of l. */
static void
canary_judge_sig(struct run *r, struct dom *d, const struct dk_dkim_msg *m,
    size_t i, const struct live *l)
{
	struct dk_error err = { 0, "" };
	const struct dk_query *q;
	struct dk_record *rec;
	char why[600];
	size_t j;
	int sev;

	if (l->srv == NULL || l->srv->rc != DK_OK) {
		check_padd(&d->probs, ST_UNKNOWN, "%s: canary: cannot find the "
		    "servers of %s", d->cd->name, l->owner);
		return;
	}
	for (j = 0; j < l->srv->n; j++) {
		q = &r->q[l->q0 + j];
		if (!check_usable(q, &sev, why, sizeof(why))) {
			check_padd(&d->probs, sev, "%s: canary: %s", d->cd->name,
			    why);
			continue;
		}
		if ((rec = served_record(q, l, why, sizeof(why))) == NULL) {
			check_padd(&d->probs, ST_CRITICAL, "%s: canary: the "
			    "signer's signature (s=%s) cannot verify: %s",
			    d->cd->name, l->selector, why);
			continue;
		}
		if (dk_dkim_verify(m, i, rec, &err) != DK_OK)
			check_padd(&d->probs, ST_CRITICAL, "%s: canary: the "
			    "signer's signature (s=%s) does not verify with the "
			    "record %s serves at %s: %s", d->cd->name,
			    l->selector, q->server.text, l->owner, err.msg);
		dk_record_free(rec);
	}
}

/*
 * canary = COMMAND: the live signer signs; each of its signatures for
 * the domain must be by a key its configuration names, and verify with
 * every server's record; each key named must have signed.
 */
static void
canary_command(struct run *r, struct dom *d)
{
	const struct dk_conf_kv *kv = NULL;
	struct dk_dkim_msg *m;
	const char *cmd;
	char where[300];
	unsigned char signed_by[8] = { 0 };
	size_t i, k, n = 0;

	if (d->c.ssec == NULL ||
	    (cmd = dk_conf_section_get(d->c.ssec, "canary", &kv)) == NULL)
		return;
	snprintf(where, sizeof(where), "%s:%d", kv != NULL ? kv->file :
	    d->c.ssec->file, kv != NULL ? kv->line : d->c.ssec->line);
	if ((m = canary_run(r, d, cmd, where)) == NULL)
		return;
	for (i = 0; i < dk_dkim_nsigs(m); i++) {
		if (strcasecmp(dk_dkim_sig_domain(m, i), d->cd->name) != 0)
			continue;
		n++;
		for (k = 0; k < d->nlive; k++)
			if (strcasecmp(d->live[k].selector,
			    dk_dkim_sig_selector(m, i)) == 0)
				break;
		if (k == d->nlive) {
			check_padd(&d->probs, ST_CRITICAL, "%s: canary: the signer "
			    "signs with selector %s, which its configuration "
			    "does not name (was it reloaded?)", d->cd->name,
			    dk_dkim_sig_selector(m, i));
			continue;
		}
		if (k < sizeof(signed_by))
			signed_by[k] = 1;
		canary_judge_sig(r, d, m, i, &d->live[k]);
	}
	if (n == 0)
		check_padd(&d->probs, ST_CRITICAL, "%s: canary: the signer's "
		    "message has no DKIM-Signature with d=%s", d->cd->name,
		    d->cd->name);
	else
		for (k = 0; k < d->nlive && k < sizeof(signed_by); k++)
			if (!signed_by[k])
				check_padd(&d->probs, ST_CRITICAL, "%s: canary: "
				    "the signer did not sign with selector %s, "
				    "which its configuration names",
				    d->cd->name, d->live[k].selector);
	dk_dkim_free(m);
}

/*
 * --canary: a signature made with the live key verifies with the record
 * every authoritative server serves.
 */
void
check_judge_canary(struct run *r, struct dom *d)
{
	const struct dk_query *q;
	char why[600];
	size_t i, j;
	int sev;

	if (!r->o->canary)
		return;
	if (d->nlive == 0) {
		check_padd(&d->probs, ST_CRITICAL, "%s: canary: the signer "
		    "configuration has no key for the domain", d->cd->name);
		return;
	}
	canary_command(r, d);
	for (i = 0; i < d->nlive; i++) {
		struct live *l = &d->live[i];

		if (!l->usable)
			continue;	/* already reported */
		if (l->srv == NULL || l->srv->rc != DK_OK) {
			check_padd(&d->probs, ST_UNKNOWN, "%s: canary: cannot find "
			    "the servers of %s", d->cd->name, l->owner);
			continue;
		}
		for (j = 0; j < l->srv->n; j++) {
			q = &r->q[l->q0 + j];
			if (!check_usable(q, &sev, why, sizeof(why))) {
				check_padd(&d->probs, sev, "%s: canary: %s",
				    d->cd->name, why);
				continue;
			}
			if (!canary_verifies(q, l, why, sizeof(why)))
				check_padd(&d->probs, ST_CRITICAL, "%s: canary: a "
				    "signature by the signer's key %s (selector "
				    "%s) would not verify: %s", d->cd->name,
				    l->keyfile, l->selector, why);
		}
	}
}
