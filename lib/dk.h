/*
 * lib/dk.h — errors shared by every dkimkeyd module.
 *
 * Every fallible function returns 0 or a negative DK_E* code and, when the
 * caller passes a struct dk_error, leaves a one-line human message there
 * naming the file, line, server or record concerned.  Out-parameters are
 * written only on success.
 */
#ifndef DK_DK_H
#define DK_DK_H

#include <stddef.h>
#include <stdint.h>

enum {
	DK_OK		= 0,
	DK_ETEMP	= -1,	/* temporary: unreachable, timeout, not yet
				   propagated; safe to retry (exit 75) */
	DK_EPERM	= -2,	/* remote refused permanently: REFUSED,
				   NOTAUTH, BADKEY, HTTP 401/403 (exit 69) */
	DK_ENOTFOUND	= -3,	/* answered: absent */
	DK_EMISMATCH	= -4,	/* answered: something else */
	DK_ECORRUPT	= -5,	/* state or key data corrupt (exit 65) */
	DK_EIO		= -6,	/* local I/O error (exit 74) */
	DK_EUNSAFE	= -7,	/* permission or unsafe file mode (exit 77) */
	DK_ECONFIG	= -8,	/* configuration error (exit 78) */
	DK_EINVAL	= -9,	/* malformed input (record, argument) */
	DK_ENOMEM	= -10,	/* out of memory */
	DK_EEXIST	= -11,	/* already exists */
	DK_EBUSY	= -12,	/* locked by another process (exit 75) */
	DK_EUSAGE	= -13,	/* bad command line (exit 64) */
};

#define DK_ERRMSG_MAX	1024

/* Message slot filled by failing functions; zero-initialise before use. */
struct dk_error {
	int	code;
	char	msg[DK_ERRMSG_MAX];
};

/*
 * Record code and a printf-style message in err (err may be NULL) and
 * return code, so that callers can write `return dk_err(err, DK_EIO, ...)`.
 */
int		 dk_err(struct dk_error *err, int code, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with "prefix: " (keeps the code). */
int		 dk_err_prefix(struct dk_error *err, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/* Short static name of a DK_E* code ("temporary failure", ...). */
const char	*dk_strerror(int code);

/* The sysexits code (DESIGN.md) for a DK_E* code; 0 for DK_OK. */
int		 dk_exit_code(int code);

/*
 * Of two exit statuses (sysexits, DESIGN.md), the one to report for a run
 * that had both: the one a human must act on first.  Worst first: 78
 * configuration, 65 corrupt data, 77 permissions, 69 refused permanently,
 * 74 I/O, 73 cannot create, 71 system error, 70 internal (and any status
 * not listed), 64 usage, then 75 temporary (a rerun resumes), then 0.
 */
int		 dk_exit_worst(int a, int b);

/* Duplicate a string; NULL on allocation failure. */
char		*dk_strdup(const char *s);

/* The directory part of path, malloc'd: "." when none, "/" for "/x". */
char		*dk_dirname(const char *path);

/*
 * FNV-1a, 64 bits, for hash tables: dk_hash_bytes continues h over n
 * octets (start from DK_HASH_INIT); dk_hash_str hashes a C string.
 */
#define DK_HASH_INIT	0xcbf29ce484222325ULL
uint64_t	 dk_hash_bytes(uint64_t h, const void *p, size_t n);
uint64_t	 dk_hash_str(const char *s);

/*
 * Read fd to its end or until buf (cap octets) is full; *len gets the
 * octets read.  Callers that enforce a size limit pass limit + 1 and
 * treat a full buffer as a file that is too large or grew.  DK_EIO
 * naming path on a read error.
 */
int		 dk_read_fd(int fd, char *buf, size_t cap, size_t *len,
		    const char *path, struct dk_error *err);

/*
 * Parse a duration with an optional unit suffix s, m, h, d or w
 * ("90d", "5m", "3600").  Returns 0 and *out in seconds, or DK_EINVAL.
 */
int		 dk_duration_parse(const char *s, int64_t *out);

/* Milliseconds of CLOCK_MONOTONIC, for timeouts the wall clock must not
 * move. */
int64_t		 dk_monotonic_ms(void);

/* Format seconds as the largest exact unit ("7d", "90s"). */
void		 dk_duration_format(int64_t secs, char *buf, size_t len);

#endif
