/*
 * providers/dns/prov_common.h — what the API and exec publishers share:
 * the probe keys (zone, probe_servers, probe_port, resolver, timeout),
 * secret files, request pacing per section, TXT presentation format and
 * the read-compare-write decision.
 */
#ifndef DK_PROV_COMMON_H
#define DK_PROV_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dns_provider.h"

/* The probe side of a section: whom to probe, with what timeout. */
struct dk_prov_probe {
	char		*zone;		/* configured, or NULL */
	struct dk_addr	*probe;		/* configured, or NULL: the NS set */
	size_t		 nprobe;
	uint16_t	 probe_port;
	struct dk_addr	 resolver;
	int		 have_resolver;
	int		 resolver_set;
	int		 timeout_ms;
};

/* What an HTTP provider's handle is made of (dk_prov_http_open). */
struct dk_prov_http_kind {
	const char	*service;	/* "powerdns": named in messages */
	int		 timeout_ms;	/* default of timeout = */
	double		 rate;		/* default of max_requests_per_second */
	size_t		 max_body;	/* largest answer */
	/* As lib/http.h's dk_http_opts (either may be NULL). */
	int		(*errtext)(const char *body, size_t len, char *buf,
			    size_t buflen);
	int		(*temporary)(long status, const char *body, size_t len);
};

/*
 * The first member of every API and exec provider context, so that the
 * dk_prov_op_* functions below serve as its ops directly.
 */
struct dk_http;
struct dk_http_response;
struct dk_prov_base {
	struct dk_prov_probe probe;
	struct dk_http	*http;		/* made at the first request; exec: NULL */
	/* HTTP providers only (dk_prov_http_open): */
	const struct dk_conf_section *sec;
	const struct dk_prov_http_kind *kind;
	char		*ca_file;	/* ca_file =, or NULL */
	double		 rate;		/* max_requests_per_second = */
	char		*auth;		/* the secret header, or NULL: wiped */
	/* Where auth comes from (dk_prov_http_auth): read when first
	 * needed.  auth_key NULL: no secret. */
	const char	*auth_key;	/* "token_file" */
	const char	*auth_why;
	const char	*auth_prefix;	/* "X-API-Key: " */
};

/*
 * The keys every HTTP provider reads first, in this order: the probe
 * keys (kind's default timeout), max_requests_per_second (kind's
 * default rate) and ca_file.  On failure b is cleared.
 */
int	dk_prov_http_open(struct dk_prov_base *b,
	    const struct dk_conf_section *sec,
	    const struct dk_prov_http_kind *kind, struct dk_error *err);

/*
 * b's requests carry the secret header prefix + the one-line secret of
 * the file named by key (dk_prov_secret_header; why: what the file holds,
 * for a missing key).  The key and the file's type and mode are checked
 * now, which needs no read permission; the file is read at the first
 * request, not here: "whom to probe" (check) needs no secret and may run
 * as a user who cannot read it.  A bad mode still stops a command at
 * once (DK_EUNSAFE, exit 77), before it generates anything.
 */
int	dk_prov_http_auth(struct dk_prov_base *b, const char *key,
	    const char *why, const char *prefix, struct dk_error *err);

/*
 * b->auth, read now if not yet (DK_OK without a secret): what every
 * request of an HTTP provider calls first.
 */
int	dk_prov_need_auth(struct dk_prov_base *b, struct dk_error *err);

/*
 * The check_secrets op (configtest) of a provider whose context starts
 * with a dk_prov_base: the secret file must load; nothing of it is kept.
 */
int	dk_prov_op_check_secrets(void *ctx, struct dk_error *err);

/* Free what b holds (the HTTP handle, the probe keys; auth wiped). */
void	dk_prov_base_clear(struct dk_prov_base *b);

/*
 * b->http, made at the first call: kind's service, body cap and readers,
 * ca_file, the probe timeout as the whole call's, and the section's pace.
 */
int	dk_prov_http(struct dk_prov_base *b, struct dk_error *err);

/*
 * dk_http_do through dk_prov_http.  A request that is not a GET (a
 * write) passes the crash points "before-api-write" and, once answered,
 * "after-api-write": the crash-safety tests kill there, between the
 * provider's read and its write, and between the write and the state
 * commit.
 */
struct dk_http_request;
int	dk_prov_http_do(struct dk_prov_base *b,
	    const struct dk_http_request *q, struct dk_http_response *resp,
	    struct dk_error *err);

/*
 * One JSON API request through dk_prov_http_do: headers b->auth, Accept
 * and (with a body) Content-Type application/json.  idempotent: may be
 * resent after a 5xx.  On failure *resp is cleared.
 */
int	dk_prov_json_request(struct dk_prov_base *b, const char *method,
	    const char *url, const char *body, int idempotent,
	    struct dk_http_response *resp, struct dk_error *err);

/*
 * replace_many by zone: zone_of names each change's zone (*zone malloc'd;
 * a failure is that change's status and error), then one_zone gets the
 * changes of each zone (idx[0..n), compared without case), in the order
 * the zones first appear, and sets their status and errs.  Returns the
 * first failure, as replace_many.
 */
int	dk_prov_replace_by_zone(void *ctx, const struct dk_dns_change *changes,
	    size_t n, int *status, struct dk_error *errs,
	    int (*zone_of)(void *ctx, const char *owner, char **zone,
	    struct dk_error *err),
	    void (*one_zone)(void *ctx, const char *zone,
	    const struct dk_dns_change *changes, const size_t *idx, size_t n,
	    int *status, struct dk_error *errs));

/*
 * Ops for a context whose first member is a struct dk_prov_base: servers,
 * servers_many and zone_servers as dk_prov_servers and its kin; messages
 * the HTTP requests sent; timeout_ms the probe timeout.
 */
int	dk_prov_op_servers(void *ctx, const char *owner, struct dk_addr **out,
	    size_t *n, struct dk_error *err);
int	dk_prov_op_servers_many(void *ctx, const char *const *owners,
	    size_t n, struct dk_servers_result *out, struct dk_error *err);
int	dk_prov_op_zone_servers(void *ctx, const char *owner,
	    struct dk_addr **out, size_t *n, struct dk_error *err);
unsigned dk_prov_op_messages(void *ctx);
int	dk_prov_op_timeout_ms(void *ctx);

/* The section keys read by dk_prov_probe_open. */
#define DK_PROV_PROBE_KEYS \
	"zone", "probe_servers", "probe_port", "resolver", "timeout"

/* Read the probe keys of sec (DK_ECONFIG "file:line: key: why"). */
int	dk_prov_probe_open(const struct dk_conf_section *sec,
	    int default_timeout_ms, struct dk_prov_probe *p,
	    struct dk_error *err);
void	dk_prov_probe_clear(struct dk_prov_probe *p);

/* As the rfc2136 ops of the same name, for any provider. */
int	dk_prov_servers(struct dk_prov_probe *p, const char *owner,
	    struct dk_addr **out, size_t *n, struct dk_error *err);
int	dk_prov_servers_many(struct dk_prov_probe *p,
	    const char *const *owners, size_t n,
	    struct dk_servers_result *out, struct dk_error *err);
int	dk_prov_zone_servers(struct dk_prov_probe *p, const char *owner,
	    struct dk_addr **out, size_t *n, struct dk_error *err);

/*
 * replace as a replace_many of one change (status and error as its).
 */
int	dk_prov_replace_one(void *ctx, int (*replace_many)(void *ctx,
	    const struct dk_dns_change *changes, size_t n, int *status,
	    struct dk_error *errs), const char *owner,
	    const struct dk_txt *old, const struct dk_txt *new, uint32_t ttl,
	    struct dk_error *err);

/*
 * The zone holding owner: zone = when configured, else found through the
 * resolver (SOA).  *zone malloc'd.
 */
int	dk_prov_find_zone(struct dk_prov_probe *p, const char *owner,
	    char **zone, struct dk_error *err);

/* A bad value: "file:line: key: <message>", DK_ECONFIG. */
int	dk_prov_kv_err(const struct dk_conf_kv *kv, struct dk_error *err);

/* A required key is missing: "file:line: [provider N] needs KEY = (why)". */
int	dk_prov_need(const struct dk_conf_section *sec, const char *key,
	    const char *why, struct dk_error *err);

/*
 * The pace of requests of one provider section in this process, shared
 * by every context opened on it: the first call sets its rate.
 */
struct dk_http_pace *dk_prov_pace(const struct dk_conf_section *sec,
	    double rate);

/* Read max_requests_per_second (> 0, <= 10000) or default. */
int	dk_prov_rate(const struct dk_conf_section *sec, double def,
	    double *out, struct dk_error *err);

/*
 * TXT RDATA in presentation format: each string quoted, '"' and '\'
 * escaped, separated by one space ("\"v=DKIM1; k=rsa; p=...\" \"...\"").
 * *out malloc'd.
 */
int	dk_prov_txt_format(const struct dk_txt *txt, char **out);

/*
 * Parse presentation-format TXT RDATA: quoted strings (with \" \\ \DDD
 * escapes) or bare words, separated by white space.  DK_EINVAL on an
 * unterminated quote or a string over 255 octets.
 */
int	dk_prov_txt_parse(const char *s, struct dk_txt *out);

/* Do a and b hold the same key record (decoded key bytes and tags)? */
int	dk_prov_txt_same(const struct dk_txt *a, const struct dk_txt *b);

/* What a read-compare-write does with the RRset found at an owner. */
enum dk_prov_cas {
	DK_CAS_DONE,		/* already new: nothing to write */
	DK_CAS_WRITE,		/* holds old (or nothing, old NULL) */
	DK_CAS_FOREIGN,		/* someone else's record */
};

/* Decide from the n TXT RRs found at the owner (cur). */
enum dk_prov_cas dk_prov_cas(const struct dk_txt *cur, size_t n,
	    const struct dk_txt *old, const struct dk_txt *new);

/*
 * Read the one-line secret in the file named by key (token_file) and
 * make the request header prefix + secret ("Authorization: Bearer ",
 * "X-API-Key: "), *hdr malloc'd (wipe it with dk_secret_cleanse before
 * free).  Surrounding white space is not part of the secret.  The file's
 * mode rule is lib/secret's (DK_EUNSAFE, exit 77); a missing key, an
 * empty file or several lines are DK_ECONFIG with file:line.
 */
int	dk_prov_secret_header(const struct dk_conf_section *sec,
	    const char *key, const char *why, const char *prefix, char **hdr,
	    struct dk_error *err);

/* Read ca_file (an absolute path) into *out (malloc'd; NULL when unset). */
int	dk_prov_ca_file(const struct dk_conf_section *sec, char **out,
	    struct dk_error *err);

/* Do two domain names match (no case, the final dot optional)? */
int	dk_prov_name_eq(const char *a, const char *b);

/*
 * A small process-wide memo per provider section (told apart by file and
 * line, as dk_prov_pace): what an API said once that stays true while
 * the process runs (a zone's id by its name).  get: the value, or NULL
 * when never put; put copies both strings (a failed put forgets).
 */
const char *dk_prov_memo_get(const struct dk_conf_section *sec,
	    const char *key);
void	dk_prov_memo_put(const struct dk_conf_section *sec, const char *key,
	    const char *value);

/*
 * Crash points for the crash-safety tests, compiled only with
 * CRASHPOINTS=1 (dk_crashpoint is the daemon's, daemon/log.c).
 */
#ifdef DK_CRASHPOINTS
void	dk_crashpoint(const char *name);
#define DK_PROV_CRASHPOINT(name)	dk_crashpoint(name)
#else
#define DK_PROV_CRASHPOINT(name)	do { } while (0)
#endif

#endif
