/*
 * lib/observe.h — what one authoritative server answered about a
 * selector name, judged once for every caller.
 *
 * The propagation gate (may a key be activated?), `check` (what does
 * monitoring report?) and the CNAME checks all turn a struct dk_answer
 * into a struct dk_observation here, so that they cannot disagree about
 * whether a server serves the expected record.  Pure: no I/O.
 *
 * The one comparison rule: a served record is the expected one when k=,
 * the decoded p= bytes, h=, s= and t= all match (dk_record_equal).  A
 * record with the same key but other h=, s= or t= tags is DK_OBS_OTHER
 * with DK_DIFF_TAGS: not the record that was published, so never a reason
 * to activate; `check` reports it as a WARNING when the key itself is the
 * expected one (signatures still verify; its lint judges the tags).
 */
#ifndef DK_OBSERVE_H
#define DK_OBSERVE_H

#include <stdint.h>

#include "dk.h"
#include "dns.h"
#include "record.h"

enum dk_obs_kind {
	DK_OBS_NOANSWER = 0,	/* no reply in time, or SERVFAIL */
	DK_OBS_LAME,		/* REFUSED, NOTAUTH, another error rcode,
				   or AA=0: not authoritative */
	DK_OBS_ABSENT,		/* NXDOMAIN or NODATA; ttl: negative TTL */
	DK_OBS_CNAME,		/* a CNAME at the name; cname: target */
	DK_OBS_SEVERAL,		/* more than one TXT RR; nrr: how many */
	DK_OBS_INVALID,		/* one TXT RR that is no key record */
	DK_OBS_SERVED,		/* one TXT RR, equal to the expected one */
	DK_OBS_OTHER,		/* one TXT RR, another record (see differs) */
};

/* What differs between a served record and the expected one. */
enum {
	DK_DIFF_KEY	= 1,	/* k= or p= */
	DK_DIFF_TAGS	= 2,	/* h=, s= or t= only */
};

struct dk_observation {
	enum dk_obs_kind  kind;
	int		  rcode;	/* the reply's rcode, -1 without one */
	uint32_t	  ttl;		/* TTL of what is held: the RRset's, or
					   the negative TTL when absent */
	size_t		  nrr;		/* TXT RRs at the name */
	char		 *text;		/* the one TXT RR joined, or NULL */
	struct dk_record *rec;		/* text parsed, or NULL */
	char		 *cname;	/* CNAME target (DK_OBS_CNAME) */
	int		  differs;	/* DK_DIFF_* (DK_OBS_OTHER) */
	char		  why[256];	/* one phrase, names the server */
};

/*
 * Judge an answer (NULL: none came; detail then says why, naming the
 * server) from server about owner's TXT against expected (NULL: nothing
 * is expected, and then no record is DK_OBS_SERVED: the caller compares
 * kind with DK_OBS_ABSENT).  Fills *o; DK_ENOMEM only when out of memory.
 */
int		 dk_observe_txt(const struct dk_answer *a, const char *detail,
		    const char *server, const char *owner,
		    const struct dk_record *expected,
		    struct dk_observation *o);

/*
 * Judge a CNAME answer against target: DK_OBS_SERVED when the name is a
 * CNAME to target (case-insensitive), DK_OBS_OTHER when to another name
 * (in cname), DK_OBS_ABSENT when there is none.
 */
int		 dk_observe_cname(const struct dk_answer *a,
		    const char *detail, const char *server, const char *owner,
		    const char *target, struct dk_observation *o);

/*
 * The usable-answer rule alone: 1 when a is an authoritative answer
 * (NOERROR or NXDOMAIN with AA=1), else 0 with *kind DK_OBS_NOANSWER or
 * DK_OBS_LAME and a phrase in why.  dk_observe_* start with it.
 */
int		 dk_answer_usable(const struct dk_answer *a, const char *detail,
		    const char *server, enum dk_obs_kind *kind, char *why,
		    size_t len);

/* Does what was served count as "the expected record is there"? */
int		 dk_obs_ok(const struct dk_observation *o, int expect_absent);

/* Short name of a kind ("served", "absent", ...). */
const char	*dk_obs_kind_name(enum dk_obs_kind);

/* DNS rcode name ("REFUSED"); "rcode" for unknown values. */
const char	*dk_rcode_name(int rcode);

void		 dk_observation_clear(struct dk_observation *);

#endif
