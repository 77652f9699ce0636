/*
 * providers/signer/rspamd.h — what the rspamd signer's files share
 * (private to providers/signer/): the parsed domain-section file
 * (rspamd_file.c) and the raw Ed25519 copies (rspamd_ed25519.c), used by
 * the activator in rspamd.c.
 */
#ifndef DK_SIGNER_RSPAMD_H
#define DK_SIGNER_RSPAMD_H

#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

#include "../../lib/dk.h"
#include "../../lib/strbuf.h"
#include "signer.h"

struct rsp {
	char	 *file;
	char	 *key_dir;
	char	 *lock;			/* FILE.lock */
	char	**reload;		/* NULL: no reload command */
	int64_t	  reload_timeout;	/* seconds */
};

/* One selector of a domain entry. */
struct rsel {
	char	*selector;
	char	*path;		/* what rspamd reads */
	char	*source;	/* the key it was made from; NULL: path */
	size_t	 lineno;
};

struct rdom {
	char		*domain;
	struct rsel	*sel;
	size_t		 nsel;
	size_t		 lineno;
};

/* The whole file, parsed. */
struct rfile {
	struct rdom	*dom;
	size_t		 n;
};

void	rsp_sel_clear(struct rsel *s);
void	rsp_dom_clear(struct rdom *d);
void	rsp_file_free(struct rfile *f);

/*
 * A path safe inside a UCL double-quoted string: absolute, no quote,
 * backslash or '$' (UCL expands variables in strings), no space or
 * control character.
 */
int	rsp_path_ok(const char *p);

/*
 * Read and parse r->file: a missing file has no domains.  Anything but
 * what rsp_file_format writes is DK_ECORRUPT naming file:line.
 */
int	rsp_file_load(const struct rsp *r, struct rfile *f,
	    struct dk_error *err);

/* Append the file's text, for every domain of f, to b. */
int	rsp_file_format(const struct rsp *r, const struct rfile *f,
	    struct dk_strbuf *b, struct dk_error *err);

/* Index of domain in f (no case), or f->n. */
size_t	rsp_file_find(const struct rfile *f, const char *domain);

/* explicit_bzero len octets of p, then free it (p may be NULL). */
void	rsp_wipe_free(void *p, size_t len);

/*
 * Read a key file: *seed (malloc'd, 32 bytes) when it is an Ed25519
 * PKCS#8 PEM key, NULL for anything else.  *st gets its fstat.
 */
int	rsp_key_seed(const char *path, unsigned char **seed, struct stat *st,
	    struct dk_error *err);

/*
 * Does the raw file at path hold seed?  DK_OK when it does; DK_ENOTFOUND
 * when absent; DK_ECORRUPT otherwise.
 */
int	rsp_raw_matches(const char *path, const unsigned char *seed,
	    struct dk_error *err);

/*
 * The selector entry rspamd reads for key k (an Ed25519 key through its
 * raw copy, written now if absent).
 */
int	rsp_make_sel(const struct rsp *r, const char *domain,
	    const struct dk_signer_key *k, struct rsel *out,
	    struct dk_error *err);

/*
 * Destroy the domain's raw copies that neither prev nor cur names (best
 * effort).
 */
void	rsp_raw_prune(const struct rsp *r, const char *domain,
	    const struct rdom *prev, const struct rdom *cur);

#endif
