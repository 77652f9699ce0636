/*
 * daemon/check_canary.c — `check --canary`, in one place: a message signed with the
 * very key file the signer reads must verify, as a receiver checks it,
 * with the record every authoritative server serves.
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

/* What --canary signs with the live key and verifies against DNS. */
const char check_canary_msg[] = "From: dkimkeyd canary\r\n\r\n"
    "This message proves the signer key works.\r\n";
const size_t check_canary_msglen = sizeof(check_canary_msg) - 1;

/*
 * Would the canary signature of l verify with the record q's server
 * returned, as a receiver's verifier checks it?  If not, why says so.
 */
static int
canary_verifies(const struct dk_query *q, const struct live *l, char *why,
    size_t len)
{
	struct dk_error err = { 0, "" };
	struct dk_record *rec = NULL;
	char *text = NULL;
	int ok = 0, rc;

	if (q->answer.ntxt != 1)
		check_note(why, len, "%s does not serve its public key at %s (%zu "
		    "TXT records)", q->server.text, l->owner, q->answer.ntxt);
	else if (dk_txt_join(&q->answer.txt[0], &text) != DK_OK)
		check_note(why, len, "out of memory");
	else if (dk_record_parse(text, strlen(text), &rec, &err) != DK_OK)
		check_note(why, len, "%s serves an invalid record at %s: %s",
		    q->server.text, l->owner, err.msg);
	else if (rec->plen == 0)
		check_note(why, len, "%s serves a revoked record (p=) at %s",
		    q->server.text, l->owner);
	else if (rec->k != l->alg)
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
	free(text);
	dk_record_free(rec);
	return ok;
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
