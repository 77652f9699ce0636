/*
 * lib/observe.c — one judgement of what a server answered (observe.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "observe.h"

const char *
dk_rcode_name(int rc)
{
	static const char *const n[] = { "NOERROR", "FORMERR", "SERVFAIL",
	    "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
	    "NXRRSET", "NOTAUTH", "NOTZONE" };

	return rc >= 0 && rc < (int)(sizeof(n) / sizeof(n[0])) ? n[rc] :
	    "rcode";
}

const char *
dk_obs_kind_name(enum dk_obs_kind k)
{
	switch (k) {
	case DK_OBS_NOANSWER:	return "no answer";
	case DK_OBS_LAME:	return "not authoritative";
	case DK_OBS_ABSENT:	return "absent";
	case DK_OBS_CNAME:	return "cname";
	case DK_OBS_SEVERAL:	return "several records";
	case DK_OBS_INVALID:	return "invalid record";
	case DK_OBS_SERVED:	return "served";
	case DK_OBS_OTHER:	return "other record";
	}
	return "unknown";
}

int
dk_answer_usable(const struct dk_answer *a, const char *detail,
    const char *server, enum dk_obs_kind *kind, char *why, size_t len)
{
	if (a == NULL) {
		*kind = DK_OBS_NOANSWER;
		snprintf(why, len, "no answer from %s", detail != NULL &&
		    *detail != '\0' ? detail : server);
		return 0;
	}
	if (a->rcode == 2) {
		*kind = DK_OBS_NOANSWER;
		snprintf(why, len, "%s answered SERVFAIL", server);
		return 0;
	}
	if (a->rcode != 0 && a->rcode != 3) {
		*kind = DK_OBS_LAME;
		snprintf(why, len, "%s answered %s (not authoritative for the "
		    "zone)", server, dk_rcode_name(a->rcode));
		return 0;
	}
	if (!a->aa) {
		*kind = DK_OBS_LAME;
		snprintf(why, len, "%s: answer is not authoritative (AA=0): "
		    "lame delegation or a resolver", server);
		return 0;
	}
	return 1;
}

static void
start(struct dk_observation *o, const struct dk_answer *a)
{
	memset(o, 0, sizeof(*o));
	o->rcode = a != NULL ? a->rcode : -1;
}

/* NXDOMAIN or NODATA, as a phrase. */
static const char *
absence(const struct dk_answer *a)
{
	return a->rcode == 3 ? "NXDOMAIN" : "NODATA";
}

int
dk_observe_txt(const struct dk_answer *a, const char *detail,
    const char *server, const char *owner, const struct dk_record *expected,
    struct dk_observation *o)
{
	struct dk_error e = { 0, "" };

	start(o, a);
	if (!dk_answer_usable(a, detail, server, &o->kind, o->why,
	    sizeof(o->why)))
		return DK_OK;
	o->nrr = a->ntxt;
	if (a->ntxt == 0 && a->cname != NULL) {
		o->kind = DK_OBS_CNAME;
		o->ttl = a->ttl;
		if ((o->cname = dk_strdup(a->cname)) == NULL)
			return DK_ENOMEM;
		snprintf(o->why, sizeof(o->why), "%s: %s is a CNAME to %s",
		    server, owner, a->cname);
		return DK_OK;
	}
	/* NXDOMAIN: nothing at the name, whatever else the reply holds. */
	if (a->ntxt == 0 || a->rcode == 3) {
		o->nrr = 0;
		o->kind = DK_OBS_ABSENT;
		o->ttl = a->neg_ttl;
		snprintf(o->why, sizeof(o->why), "%s: no TXT record (%s)",
		    server, absence(a));
		return DK_OK;
	}
	o->ttl = a->ttl;
	if (a->ntxt > 1) {
		o->kind = DK_OBS_SEVERAL;
		snprintf(o->why, sizeof(o->why), "%s: %zu TXT records, "
		    "exactly one is allowed at a selector", server, a->ntxt);
		return DK_OK;
	}
	if (dk_txt_join(&a->txt[0], &o->text) != DK_OK)
		return DK_ENOMEM;
	/* The expected key was checked when it was parsed. */
	if (dk_record_parse_known(o->text, strlen(o->text), expected,
	    &o->rec, &e) != DK_OK) {
		if (e.code == DK_ENOMEM)
			return DK_ENOMEM;
		o->kind = DK_OBS_INVALID;
		snprintf(o->why, sizeof(o->why), "%s: served record does not "
		    "parse: %.200s", server, e.msg);
		return DK_OK;
	}
	if (expected != NULL && dk_record_equal(expected, o->rec)) {
		o->kind = DK_OBS_SERVED;
		snprintf(o->why, sizeof(o->why), "%s serves the record",
		    server);
		return DK_OK;
	}
	o->kind = DK_OBS_OTHER;
	if (expected == NULL) {
		o->differs = DK_DIFF_KEY;
		snprintf(o->why, sizeof(o->why), "%s: a TXT record where none "
		    "should be", server);
		return DK_OK;
	}
	o->differs = expected->k != o->rec->k ||
	    expected->plen != o->rec->plen || (expected->plen > 0 &&
	    memcmp(expected->p, o->rec->p, expected->plen) != 0) ?
	    DK_DIFF_KEY : DK_DIFF_TAGS;
	snprintf(o->why, sizeof(o->why), "%s serves a different record%s",
	    server, o->differs == DK_DIFF_TAGS ? " (same key, other h=, s= "
	    "or t= tags)" : "");
	return DK_OK;
}

int
dk_observe_cname(const struct dk_answer *a, const char *detail,
    const char *server, const char *owner, const char *target,
    struct dk_observation *o)
{
	start(o, a);
	if (!dk_answer_usable(a, detail, server, &o->kind, o->why,
	    sizeof(o->why)))
		return DK_OK;
	if (a->nnames == 0 && a->cname == NULL) {
		o->kind = DK_OBS_ABSENT;
		o->ttl = a->neg_ttl;
		snprintf(o->why, sizeof(o->why), "%s has none", server);
		return DK_OK;
	}
	o->ttl = a->ttl;
	if ((o->cname = dk_strdup(a->nnames > 0 ? a->names[0] : a->cname)) ==
	    NULL)
		return DK_ENOMEM;
	if (strcasecmp(o->cname, target) == 0) {
		o->kind = DK_OBS_SERVED;
		snprintf(o->why, sizeof(o->why), "%s has the CNAME", server);
		return DK_OK;
	}
	o->kind = DK_OBS_OTHER;
	snprintf(o->why, sizeof(o->why), "%s has one to %s", server, o->cname);
	(void)owner;
	return DK_OK;
}

int
dk_obs_ok(const struct dk_observation *o, int expect_absent)
{
	return o->kind == (expect_absent ? DK_OBS_ABSENT : DK_OBS_SERVED);
}

void
dk_observation_clear(struct dk_observation *o)
{
	if (o == NULL)
		return;
	free(o->text);
	free(o->cname);
	dk_record_free(o->rec);
	memset(o, 0, sizeof(*o));
}
