/*
 * daemon/check.h — the parts of `check` and what they share.  A run:
 *	check_collect.c	what to ask (selectors, servers, senders, the
 *			signer's live keys), every DNS question queued
 *	check_judge.c	what the answers mean: pure (no I/O), linked by
 *			the unit tests; replies judged by lib/observe.h
 *	check_canary.c	everything --canary does, in one place
 *	check_report.c	plugin text with perfdata, JSON, metrics
 *	cmd_check.c	drives a run
 */
#ifndef DK_CHECK_H
#define DK_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "../lib/dmarc.h"
#include "../lib/fleet.h"
#include "../lib/observe.h"
#include "../lib/probe.h"
#include "../lib/record.h"
#include "daemon.h"
#include "publish.h"

enum { ST_OK = 0, ST_UNKNOWN, ST_WARNING, ST_CRITICAL };	/* rank */

/* Name and plugin exit code of each rank. */
extern const char *const check_st_name[];
extern const int check_st_exit[];

#define MAX_SERVERS	64	/* addresses judged per name */

/*
 * Output being built: a growable string, or (f set) text written straight
 * to f, so that a run over many domains holds none of it.
 */
struct str {
	char	*p;
	size_t	 len, cap;
	FILE	*f;
};

/* One problem found, kept for the text and JSON output. */
struct problem {
	int	 sev;
	char	*msg;
};

struct plist {
	struct problem	*p;
	size_t		 n;
	int		 worst;
};

/* A set of server addresses (borrowed from a domain's cache). */
struct servers {
	struct dk_addr	*a;
	size_t		 n;
	int		 rc;		/* DK_OK or why they are unknown */
	const char	*why;		/* when rc != DK_OK (run's strings) */
};

enum item_kind { K_MANAGED, K_WATCH };

/* One selector name to judge. */
struct item {
	enum item_kind		 kind;
	char			 selector[DK_SELECTOR_MAX + 1];
	const struct dk_key_state *ks;	/* managed: newest key */
	enum dk_kstate		 kstate;
	struct dk_record	*expect;	/* managed: NULL = absent */
	/* Strings of the run (check_sdup): never NULL once named. */
	const char		*owner;		/* where the TXT lives */
	const char		*cname_owner;	/* cname mode, or "" */
	const struct servers	*srv;		/* for owner */
	const struct servers	*csrv;		/* for cname_owner */
	size_t			 q0, cq0;	/* first queries */
	signed char		 srv_sev[MAX_SERVERS];	/* ST_* */
	signed char		 csrv_sev[MAX_SERVERS];
	struct plist		 probs;
	unsigned		 bits;		/* RSA bits seen, 0 unknown */
};

/* DMARC of one sender. */
struct sender {
	const char	*name;
	char		 org[256];
	struct servers	 srv;
	size_t		 q0;		/* _dmarc.name, then _dmarc.org */
	size_t		 nq;
	char		 qname[2][300];
	/* result */
	int		 found;		/* 0 none, 1 at name, 2 at org */
	char		 adkim;		/* 'r', 's' or 0 */
	char		 policy[16];
	int		 aligned;	/* -1 unknown */
	int		 none;		/* answered: no DMARC record */
	const char	*signing;	/* the d= its mail gets: the most
					   specific [domain] whose match
					   covers it, else this domain */
	int		 matched;	/* a section's match covers it */
	char		 note[512];
};

/* The live signer's keys, for the signer check and the canary. */
struct live {
	char		*selector, *keyfile;
	const char	*owner;		/* a string of the run */
	unsigned char	*sig;		/* the canary signed with the key */
	size_t		 siglen;
	enum dk_alg	 alg;
	int		 usable;	/* loaded and signed */
	size_t		 q0;
	const struct servers *srv;
	char		 key_id[32];	/* of the key in keyfile, once read */
	const char	*why;		/* why keyfile could not be read
					   (a string of the run), or NULL */
};

struct dom {
	const struct dk_conf_domain *cd;
	struct dk_domain_ctx	 c;
	int			 open;
	struct plist		 probs;		/* domain-level problems */
	struct servers		 zsrv;		/* SELECTOR._domainkey.D */
	struct servers		 tsrv;		/* cname targets */
	uint64_t		 pre_hash;	/* zsrv looked up ahead, */
	int			 have_pre;	/* for the owner of this hash */
	struct item		*items;
	size_t			 nitems;
	struct sender		*senders;
	size_t			 nsenders;
	struct live		*live;
	size_t			 nlive;
	/* The signer's answer (current_many), when have_cur. */
	int			 have_cur;
	int			 cur_rc;
	const char		*cur_why;	/* rc != DK_OK (run's string) */
	struct dk_signer_key	*cur_keys;
	size_t			 cur_nkeys;
	size_t			 soa_q0, nsoa;	/* per zsrv, then tsrv */
	const char		*soa_name[2];	/* NULL: none */
	/* hosts =: what each host's agent reports (cmd_check.c). */
	struct dk_fleet_host	*fleet;
	size_t			 nfleet;
	/* key_scope = per-host: the keys asked of hosts, not yet made. */
	struct dk_fleet_keyreq	*keyreq;
	size_t			 nkeyreq;
	int64_t			 active_age;	/* -1: no active key */
	const char		*active_sel;
	int64_t			 next_at;	/* 0: none */
	size_t			 ok, total;
	int			 worst;
};

/*
 * What the plugin line says of the whole run, added up as its parts are
 * judged: domains, selectors, problems (not OK), and the first message
 * of each severity (malloc'd).
 */
struct tally {
	size_t	 nd, nsel, nprob;
	char	*first[4];
};

/* The signer's answer for one domain, asked for all at once (cmd_check). */
struct cur {
	int			 asked;
	int			 rc;
	const char		*why;	/* rc != DK_OK (the run's kept strings) */
	struct dk_signer_key	*keys;
	size_t			 nkeys;
};

/* Strings that live as long as a run, in large blocks. */
struct strblock {
	struct strblock	*next;
	size_t		 used, size;
	char		 buf[];
};

struct run {
	const struct dk_conf		*conf;
	const struct dk_check_opts	*o;
	int64_t				 now;
	struct dom			*d;
	size_t				 nd;
	struct dk_query			*q;
	size_t				 nq, qcap;
	int				 oom;
	struct dk_psl			*psl;	/* loaded for the first sender */
	int				 psl_tried;
	struct dk_error			 psl_err;
	struct strblock			*strs;	/* this part's */
	struct cur			*cur;	/* by index in conf->domains */
	struct silent			*silent; /* servers that answered
						    nothing in an earlier
						    part */
	size_t				 nsilent;
};

/* A server none of whose questions of a part had a usable reply. */
struct silent {
	char	addr[64];	/* dk_addr text */
	char	detail[200];	/* why its last question failed */
};


/* check_judge.c: problems, and what the answers mean (pure, no I/O). */
void	check_note(char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	check_padd(struct plist *l, int sev, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	check_pfree(struct plist *l);
int	check_usable(const struct dk_query *q, int *sev, char *why,
	    size_t len);
void	check_judge_domain(struct run *r, struct dom *d);

/* check_collect.c: what to ask, queued on r. */
struct dk_signer_ops;
void	check_collect_signers(struct run *r, const struct dk_signer_ops *sops,
	    void *sctx, const size_t *idx, size_t n);
void	check_collect_servers(struct run *r);
void	check_collect_items(struct run *r, struct dom *d);
const char *check_sdup(struct run *r, const char *s);
void	check_sfree(struct run *r);
void	check_collect_senders(struct run *r, struct dom *d);
void	check_collect_live(struct run *r, struct dom *d);
void	check_plan_queries(struct run *r, struct dom *d);

/*
 * check_canary.c: everything --canary does.  The message signed with the
 * live key (by check_collect_live), then verified against every server.
 */
extern const char check_canary_msg[];
extern const size_t check_canary_msglen;
void	check_judge_canary(struct run *r, struct dom *d);

/* check_report.c: plugin text and perfdata, JSON, metrics. */
void	check_sappend(struct str *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	check_sputs(struct str *s, const char *v, size_t n);
void	check_sjson(struct str *s, const char *v);
void	check_json_domain(struct run *r, struct dom *d, struct str *o);
struct dk_metrics;
struct dk_metrics *check_metrics_begin(struct run *r);
void	check_metrics_add(struct run *r, struct dk_metrics *m);
void	check_metrics_end(struct run *r, struct dk_metrics *m, int write);
void	check_text_add(struct run *r, struct tally *t, struct str *perf,
	    struct str *det);
int	check_print_text(const struct run *r, const struct tally *t,
	    int worst, struct str *perf, struct str *det);
void	check_spool_open(struct str *s);
int	check_spool_copy(struct str *s, FILE *out);
void	check_spool_close(struct str *s);

#endif
