/*
 * lib/conf.h — the configuration file (dkimkeyd.conf(5)), read with inih.
 *
 * [dkimkeyd] and [domain NAME] sections have a fixed set of keys checked
 * here.  [provider NAME] and [signer NAME] sections are kept as key/value
 * lists with the line of each key: the provider or signer named by their
 * type= validates them (see dk_conf_section_check), so that lib/ knows no
 * integration.
 */
#ifndef DK_CONF_H
#define DK_CONF_H

#include <stdint.h>

#include "dk.h"
#include "key.h"

#define DK_CONF_DEFAULT	"/etc/dkimkeyd/dkimkeyd.conf"
#define DK_MAX_SELECTORS 2

struct dk_conf_kv {
	char	*key;
	char	*value;
	char	*file;		/* file the key was read from */
	int	 line;
	int	 used;		/* set by dk_conf_section_get */
};

/* A [provider NAME] or [signer NAME] section. */
struct dk_conf_section {
	char			*kind;	/* "provider" or "signer" */
	char			*name;
	char			*type;	/* value of type= (required) */
	char			*file;
	int			 line;	/* line of the [header] */
	struct dk_conf_kv	*kv;	/* every key but type= */
	size_t			 nkv;
};

enum dk_conf_mode {
	DK_MODE_TXT = 0,	/* TXT at SELECTOR._domainkey.DOMAIN */
	DK_MODE_CNAME,		/* TXT at the cname_target; the customer's
				   selector name is a CNAME to it */
};

/* Which From domains a domain's key signs for (match =). */
enum dk_match {
	DK_MATCH_DOMAIN = 0,	/* the domain itself (default) */
	DK_MATCH_SUBDOMAINS,	/* every name below it, not itself */
	DK_MATCH_BOTH,		/* domain-and-subdomains */
};

/* With hosts =: one key pair for every host, or one per host. */
enum dk_key_scope {
	DK_SCOPE_SHARED = 0,	/* sealed in the database for the agents */
	DK_SCOPE_PER_HOST,	/* made by each host's agent; only the
				   public key leaves the host */
};

#define DK_MAX_HOSTS	64
#define DK_SELECTOR_TEMPLATE_MAX 128

#define DK_KEEP_REMOVED_DEFAULT	20
#define DK_KEEP_REMOVED_MAX	1000

struct dk_conf_domain {
	char			*name;		/* lower case, no trailing dot */
	char			*provider;	/* section name */
	char			*signer;	/* section name */
	char			*selectors[DK_MAX_SELECTORS];
	struct dk_keyspec	 keyspec;	/* algorithm = (rsa-2048) */
	int			 allow_weak_keys; /* permit RSA-1024 */
	int64_t			 ttl;		/* 3600 */
	int64_t			 retire_after;	/* 7d */
	int64_t			 propagation_timeout; /* 1h */
	int64_t			 safety_margin;	/* 5m */
	int64_t			 rotate_every;	/* 0: only by hand */
	int64_t			 keep_removed;	/* removed keys kept in the
						   state for status (20) */
	enum dk_conf_mode	 mode;		/* txt (default) or cname */
	char			*cname_target;	/* template with {selector},
						   {domain}; mode = cname */
	char			*cname_provider; /* section maintaining the
						   customer's CNAMEs, or NULL */
	char			*cname_servers;	/* the customer's authoritative
						   servers (address list as
						   written), or NULL: found */
	char			*ed25519_selectors[DK_MAX_SELECTORS];
	size_t			 ned25519;	/* 0, or 2: a second pair */
	char			**watch_selectors; /* checked, never rotated */
	size_t			 nwatch;
	char			**senders;	/* From domains signed for */
	size_t			 nsenders;
	enum dk_match		 match;		/* match = (domain) */
	int64_t			 testing;	/* t=y until this long after
						   the first activation (0) */
	char			**hosts;	/* hosts =: the MTA hosts whose
						   agents sign the domain's
						   mail (lib/fleet.h); NULL:
						   this host's signer */
	size_t			 nhosts;
	enum dk_key_scope	 key_scope;	/* shared (default) */
	int			 selector_template; /* selectors has {host} */
	char			**host_selectors; /* per-host: 2 * nhosts,
						   host i's pair at 2i, 2i+1
						   (selectors[] = host 0's);
						   else NULL */
	char			*file;
	int			 line;
};

/* Where the lifecycle state lives (lib/store.h). */
enum dk_backend {
	DK_BACKEND_DIR = 0,	/* state_dir: one file per domain (default) */
	DK_BACKEND_PG,		/* PostgreSQL through libpq */
};

#define DK_LEASE_TIME_DEFAULT	60
#define DK_AGENT_TIMEOUT_DEFAULT 300

struct dk_conf {
	char			*path;		/* the main file */
	enum dk_backend		 backend;	/* backend = */
	char			*conninfo_file;	/* libpq connection string
						   (secret file), or NULL */
	int64_t			 lease_time;	/* per-domain lease (60s) */
	char			*kek_file;	/* key-encryption key (secret
						   file): shared keys sealed
						   in the database; or NULL */
	int64_t			 agent_timeout;	/* a host not reporting for
						   this long holds a rotation
						   up, CRITICAL (5m) */
	char			*state_dir;	/* /var/lib/dkimkeyd */
	char			*key_dir;	/* /var/lib/dkimkeyd/keys */
	char			*key_group;	/* NULL: keys 0600, else 0640 */
	char			*metrics_file;	/* Prometheus text file, or NULL */
	int			 no_pregenerate; /* pregenerate = no: the
						   daemon makes no key ahead */
	struct dk_conf_section	*providers;
	size_t			 nproviders;
	struct dk_conf_section	*signers;
	size_t			 nsigners;
	struct dk_conf_domain	*domains;
	size_t			 ndomains;
	/* dk_conf_domain_find's index, kept from loading: open addressing
	 * over the lower-case names, domain index + 1; dcap a power of two */
	size_t			*dset;
	size_t			 dcap;
};

/*
 * Load path and its includes (`include = GLOB`, relative to the including
 * file's directory, files in sorted order, nesting limited).  Any unknown
 * section or key, a duplicate section or key, a missing required key, a
 * bad value, a domain naming an undefined provider or signer: DK_ECONFIG
 * with "file:line: what is wrong".  A missing or unreadable main file:
 * DK_ECONFIG naming it.  DK_EUNSAFE for a file (main or include) that
 * someone other than root or the running user could write (see
 * dk_conf_load's file rule in conf.c), and for a state_dir or key_dir
 * that is world-writable (dk_conf_dir_safe).
 */
int		 dk_conf_load(const char *path, struct dk_conf **out,
		    struct dk_error *err);

/*
 * A directory dkimkeyd keeps state or keys in must not be world-writable
 * (/tmp): DK_EUNSAFE naming it.  An absent one is DK_OK (created later).
 */
int		 dk_conf_dir_safe(const char *path, struct dk_error *err);

void		 dk_conf_free(struct dk_conf *);

/* Lookups; NULL when absent.  Domain names compare case-insensitively. */
const struct dk_conf_domain  *dk_conf_domain_find(const struct dk_conf *,
		    const char *name);
const struct dk_conf_section *dk_conf_provider_find(const struct dk_conf *,
		    const char *name);
const struct dk_conf_section *dk_conf_signer_find(const struct dk_conf *,
		    const char *name);

/* "domain", "subdomains" or "domain-and-subdomains". */
const char	*dk_match_name(enum dk_match);

/* Does a domain named name with match m sign mail From from? */
int		 dk_match_covers(const char *name, enum dk_match m,
		    const char *from);

/*
 * The domain section whose key signs mail From from (case-insensitive,
 * one trailing dot ignored), or NULL: of the sections whose match covers
 * from, the one with the longest name (section names are unique, so no
 * two are equally specific).  Linear in the number of labels of from.
 */
const struct dk_conf_domain *dk_conf_match_find(const struct dk_conf *,
		    const char *from);

/*
 * Value of key in a provider/signer section, or NULL; marks it used.  The
 * kv (for its file and line, in messages) is returned through kvp when
 * kvp is not NULL.
 */
const char	*dk_conf_section_get(const struct dk_conf_section *,
		    const char *key, const struct dk_conf_kv **kvp);

/*
 * Check a section against the keys its type allows (a NULL-terminated
 * list): the first other key is DK_ECONFIG "file:line: unknown key K in
 * [provider NAME] (type T)".
 */
int		 dk_conf_section_check(const struct dk_conf_section *,
		    const char *const *allowed, struct dk_error *err);

/*
 * The TXT owner of selector in a cname-mode domain: cname_target with
 * {selector} and {domain} substituted, lower case, no trailing dot.
 * *out malloc'd.  DK_EINVAL when the result is not a valid DNS name.
 */
int		 dk_conf_cname_target(const struct dk_conf_domain *,
		    const char *selector, char **out);

/* key_scope = per-host: the host whose pair selector is in, or NULL. */
const char	*dk_conf_host_of_selector(const struct dk_conf_domain *,
		    const char *selector);

/*
 * Split a whitespace-separated value into words, honouring double quotes
 * (for argv-style values such as reload =).  *argv is NULL-terminated;
 * free with dk_conf_argv_free.
 */
int		 dk_conf_split_words(const char *value, char ***argv,
		    size_t *argc);
void		 dk_conf_argv_free(char **argv);

#endif
