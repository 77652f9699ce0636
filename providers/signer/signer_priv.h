/*
 * providers/signer/signer_priv.h — what the signer activators share
 * (private to providers/signer/, implemented in registry.c): the
 * lib/fileio.c helpers with the signers' codes, and section parsing.
 */
#ifndef DK_SIGNER_PRIV_H
#define DK_SIGNER_PRIV_H

#include <sys/types.h>
#include <sys/stat.h>

#include "../../lib/conf.h"
#include "../../lib/dk.h"

/* Longest line read from a signer table, newline excluded. */
#define DK_SIGNER_LINE_MAX	16384

/* Largest file a signer activator reads (tables, selector, key). */
#define DK_SIGNER_FILE_MAX	(16 * 1024 * 1024)

/*
 * Read the regular file path whole, without following a final symbolic
 * link (DK_EUNSAFE).  *buf is malloc'd with len bytes plus a terminating
 * NUL; st (may be NULL) receives its fstat.  Missing: DK_ENOTFOUND; larger
 * than max or not a regular file: DK_ECORRUPT; anything else: DK_EIO.
 * Every error message names the file.
 */
int	dk_signer_file_read(const char *path, size_t max, char **buf,
	    size_t *len, struct stat *st, struct dk_error *err);

/*
 * Write data to a new temporary file next to path (a dot file in the same
 * directory), created O_EXCL|O_NOFOLLOW with mode 0600, then given owner
 * uid and group gid ((uid_t)-1 / (gid_t)-1: leave as created) and only
 * then its final mode, written and fsynced.  *tmp is the malloc'd name to
 * pass to dk_signer_file_commit or dk_signer_file_discard.
 */
int	dk_signer_file_stage(const char *path, const void *data, size_t len,
	    mode_t mode, uid_t uid, gid_t gid, char **tmp,
	    struct dk_error *err);

/*
 * Rename tmp over path and fsync the directory (the rename is not durable
 * until the directory entry is on disk).  tmp is freed in every case and
 * unlinked when the rename fails.
 */
int	dk_signer_file_commit(char *tmp, const char *path,
	    struct dk_error *err);

/* Unlink and free a staged file; NULL is a no-op. */
void	dk_signer_file_discard(char *tmp);

/* stage + commit. */
int	dk_signer_file_write(const char *path, const void *data, size_t len,
	    mode_t mode, uid_t uid, gid_t gid, struct dk_error *err);

/*
 * Remove temporary files that dk_signer_file_stage left behind for the
 * given paths (a process killed between stage and commit): exactly the
 * regular files DIR/.BASE.<16 lowercase hex digits> of each path, nothing
 * else.  The caller must hold whatever lock keeps other writers of these
 * paths out, or it would take their staged files away.  A missing
 * directory has nothing to sweep.
 */
int	dk_signer_file_sweep(const char *const *paths, size_t npaths,
	    struct dk_error *err);

/* How long dk_signer_lock waits for a shared table's lock. */
#define DK_SIGNER_LOCK_WAIT	10

/*
 * Take an exclusive flock(2) on the lock file path (dk_file_lock: created
 * 0600 when missing, never removed, holding the holder's pid and host),
 * waiting at most wait seconds: still held then is DK_ETEMP naming the
 * file and the process holding it.  *fdp is the descriptor to pass to
 * dk_signer_unlock.
 */
int	dk_signer_lock(const char *path, int wait, int *fdp,
	    struct dk_error *err);

/* Release and close what dk_signer_lock took; -1 is a no-op. */
void	dk_signer_unlock(int fd);

/*
 * The optional reload_timeout = duration (dk_duration_parse) into *out,
 * DK_SIGNER_RELOAD_TIMEOUT when absent.  Unparsable or zero:
 * DK_ECONFIG "file:line: ...".
 */
int	dk_signer_conf_timeout(const struct dk_conf_section *sec,
	    int64_t *out, struct dk_error *err);

/*
 * The value of key in sec as a malloc'd absolute path into *out: NULL when
 * absent and not required.  Missing-but-required or relative: DK_ECONFIG
 * "file:line: ...".
 */
int	dk_signer_conf_path(const struct dk_conf_section *sec, const char *key,
	    int required, char **out, struct dk_error *err);

/*
 * The optional reload = command split into words (*argv NULL when absent;
 * free with dk_conf_argv_free).  Empty or not an absolute path:
 * DK_ECONFIG "file:line: ...".
 */
int	dk_signer_conf_reload(const struct dk_conf_section *sec, char ***argv,
	    struct dk_error *err);

/*
 * A domain or selector safe to put in a file name or a table line:
 * letters, digits, '-', '_' and non-leading, non-doubled dots; at most
 * 253 characters.
 */
int	dk_signer_name_valid(const char *s);

/*
 * conf_check for a signer that can express match = domain only: the
 * first domain of conf signed by sec with another match is DK_ECONFIG
 * naming it, the signer and why (a sentence of the signer's).
 */
int	dk_signer_conf_match_domain_only(const struct dk_conf_section *sec,
	    const struct dk_conf *conf, const char *why,
	    struct dk_error *err);

struct dk_signer_current;
struct dk_signer_key;

/*
 * What every activate checks first: at least one key, and the domain,
 * the managed selectors and the keys' selectors dk_signer_name_valid.
 * DK_EINVAL "WHO: ..." naming what is wrong.
 */
int	dk_signer_activate_names(const char *who, const char *domain,
	    const char *const *managed, size_t nsel,
	    const struct dk_signer_key *keys, size_t nkeys,
	    struct dk_error *err);

/* A current_many result failed: no keys, rc and e (may be &c->err). */
void	dk_signer_current_fail(struct dk_signer_current *c, int rc,
	    const struct dk_error *e);

/*
 * current through current_many with one domain: for signers whose
 * current_many is the only reader of their configuration.
 */
int	dk_signer_current_one(int (*many)(void *, const char *const *,
	    size_t, struct dk_signer_current *, struct dk_error *),
	    void *ctx, const char *domain, struct dk_signer_key **keysp,
	    size_t *nkeysp, struct dk_error *err);

#endif
