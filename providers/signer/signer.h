/*
 * providers/signer/signer.h — what a signer activator does.
 */
#ifndef DK_SIGNER_H
#define DK_SIGNER_H

#include "../../lib/conf.h"

/* One key a signer signs with: its selector and private key file. */
struct dk_signer_key {
	char	*selector;
	char	*keyfile;
};

/* What current returns for one domain, in a current_many call. */
struct dk_signer_current {
	int			 rc;	/* DK_OK, DK_ENOTFOUND or an error */
	struct dk_error		 err;	/* rc != DK_OK: current's message */
	struct dk_signer_key	*keys;	/* rc == DK_OK: malloc'd */
	size_t			 nkeys;
};

struct dk_signer_ops {
	const char		 *name;		/* type = value: "opendkim" */
	const char *const	 *keys;		/* allowed section keys */

	int	(*open)(const struct dk_conf_section *, void **ctx,
		    struct dk_error *);

	/*
	 * Make the signer use exactly keys[0..nkeys-1] for domain, for the
	 * From domains match names (the domain, its subdomains or both;
	 * conf_check has refused what the signer cannot express) (one
	 * key, or two for a dual-algorithm domain: the domain's algorithm
	 * first, then the Ed25519 key of ed25519_selectors, RFC 8463), and
	 * no other of the domain's managed selectors (the nsel names in
	 * managed); lines or files it does not manage are preserved.
	 * Atomic (temp file + rename), then the reload command is run and
	 * its exit status checked.  Idempotent.
	 */
	int	(*activate)(void *ctx, const char *domain,
		    enum dk_match match, const char *const *managed,
		    size_t nsel,
		    const struct dk_signer_key *keys, size_t nkeys,
		    struct dk_error *);

	/*
	 * Read back which selectors and key files the signer configuration
	 * points to for domain, in the order activate was given them:
	 * DK_ENOTFOUND when none.  *keys is malloc'd; free it with
	 * dk_signer_keys_free.
	 */
	int	(*current)(void *ctx, const char *domain,
		    struct dk_signer_key **keys, size_t *nkeys,
		    struct dk_error *);

	/*
	 * Optional (NULL: call current per domain).  current for each of
	 * domains[0..n-1] at once, reading the configuration once: out[i]
	 * gets exactly what current returns for domains[i] (the same
	 * code, message and keys in the same order), and the cost is
	 * linear in the configuration's size plus n.  DK_OK when every
	 * out[i] is filled (free each out[i].keys with dk_signer_keys_free);
	 * an error (out of memory) concerns the whole call, and out is left
	 * untouched.
	 */
	int	(*current_many)(void *ctx, const char *const *domains,
		    size_t n, struct dk_signer_current *out,
		    struct dk_error *);

	/*
	 * Optional (NULL: nothing to check).  Read what activate will
	 * rewrite and fail as activate would on what it cannot read or
	 * parse, changing nothing: called before a key is published, so
	 * that no record goes out that the signer cannot be switched to.
	 */
	int	(*check)(void *ctx, struct dk_error *);

	/*
	 * Optional (NULL: everything can be expressed).  Refuse, with
	 * DK_ECONFIG "file:line: why", a configuration of the domains
	 * signed by section sec that the signer cannot express exactly
	 * (their match = settings, sections that overlap).  Reads no file.
	 */
	int	(*conf_check)(const struct dk_conf_section *sec,
		    const struct dk_conf *conf, struct dk_error *);
	void	(*close)(void *ctx);
};

const struct dk_signer_ops *dk_signer_find(const char *type);

/* Free what current returned (each string, then the array). */
void	dk_signer_keys_free(struct dk_signer_key *keys, size_t nkeys);

extern const struct dk_signer_ops dk_signer_opendkim_ops;
extern const struct dk_signer_ops dk_signer_files_ops;
extern const struct dk_signer_ops dk_signer_rspamd_ops;
extern const struct dk_signer_ops dk_signer_exim_ops;

/* How long a reload command may run unless reload_timeout = says. */
#define DK_SIGNER_RELOAD_TIMEOUT	30

/*
 * Run argv (fork + execve, no shell, stdin /dev/null, in a process group
 * of its own) and wait at most timeout seconds (> 0); DK_OK on exit
 * status 0, DK_ETEMP otherwise with a message naming the command and its
 * status.  On expiry the process group gets SIGTERM, then SIGKILL 2
 * seconds later, and the result is DK_ETEMP "reload command '...' timed
 * out after 30s".
 */
int	dk_signer_run_timeout(char *const *argv, int64_t timeout,
	    struct dk_error *);

/* dk_signer_run_timeout with DK_SIGNER_RELOAD_TIMEOUT. */
int	dk_signer_run(char *const *argv, struct dk_error *);

#endif
