/*
 * lib/conf_int.h — private to the configuration reader (lib/conf*.c).
 *
 * The reader's state while loading dkimkeyd.conf(5) and its includes,
 * and the calls the files of the module make into each other:
 *
 *   conf.c          loading as a whole: dk_conf_load, cross-references
 *                   and defaults, dk_conf_free, the error helpers
 *   conf_read.c     files: the line reader fed to inih, its handler,
 *                   include, the ownership and mode rule
 *   conf_section.c  section headers, [dkimkeyd], [provider]/[signer]
 *   conf_domain.c   [domain NAME]: its keys, defaults and checks
 *   conf_query.c    lookups on a loaded configuration
 */
#ifndef DK_CONF_INT_H
#define DK_CONF_INT_H

#include <stdio.h>
#include <sys/types.h>

#include "conf.h"

enum seckind {
	SEC_NONE = 0,		/* before the first header of a file */
	SEC_MAIN,		/* [dkimkeyd] */
	SEC_PROVIDER,
	SEC_SIGNER,
	SEC_DOMAIN,
};

/* Keys of [dkimkeyd]; include may repeat and is not tracked. */
enum { MK_STATE_DIR, MK_KEY_DIR, MK_KEY_GROUP, MK_METRICS, MK_BACKEND,
	MK_CONNINFO, MK_LEASE, MK_PREGEN, MK_KEK, MK_AGENT_TIMEOUT, MK_N };

/* Keys of [domain NAME]. */
enum {
	DK_PROVIDER, DK_SIGNER, DK_SELECTORS, DK_ALGORITHM, DK_WEAK, DK_TTL,
	DK_RETIRE, DK_PROPAGATION, DK_SAFETY, DK_ROTATE_EVERY, DK_MODE,
	DK_CNAME_TARGET, DK_CNAME_PROVIDER, DK_ED25519, DK_WATCH, DK_SENDERS,
	DK_CNAME_SERVERS, DK_KEEP_REMOVED, DK_HOSTS, DK_KEY_SCOPE, DK_MATCH,
	DK_TESTING, DK_N
};

/* What the parser remembers about a domain beyond struct dk_conf_domain. */
struct domx {
	int	 line[DK_N];	/* line of each key, 0 when not set */
	char	*algorithm;	/* parsed at the end of the section, once
				   allow_weak_keys is known */
};

struct kvslot;

struct parse {
	struct dk_conf	*conf;
	struct dk_error	 err;
	int		 failed;
	int		 depth;
	char		*main_file;	/* where [dkimkeyd] was, for duplicates */
	int		 main_line;
	int		 main_seen[MK_N];
	struct domx	*domx;		/* parallel to conf->domains */
	size_t		 ndomx;
	size_t		*dset;		/* open addressing: domain index + 1 */
	size_t		 dsetcap;	/* a power of two, or 0 */
	struct kvslot	*kset;		/* open addressing: keys of every
					   [provider] and [signer] section */
	size_t		 ksetcap;	/* a power of two, or 0 */
	size_t		 ksetn;
};

/* One file being read; inih's user pointer. */
struct file {
	struct parse	*p;
	const char	*path;
	char		*dir;		/* includes are relative to this */
	FILE		*fp;
	char		*buf;
	size_t		 bufsz;
	int		 line;		/* line the reader returned last */
	int		 err_line;	/* line at which we stopped, 0: none */
	enum seckind	 kind;
	size_t		 idx;		/* into the array of kind */
};

/* conf.c */

/* Record the first error as "FILE:LINE: message" and stop the parse;
 * DK_ECONFIG. */
int	conf_fail(struct file *f, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Record "out of memory" unless an error is already recorded;
 * DK_ENOMEM. */
int	conf_nomem(struct parse *p);
/* Room for element n of *arrp (n elements of size now), zeroed. */
int	conf_grow(void *arrp, size_t n, size_t size);
/* conf_domain.c: yes/true/1 or no/false/0 into *out; DK_EINVAL else. */
int	conf_parse_bool(const char *v, int *out);

/* conf_read.c */

/* Read one file; parent is the including file, NULL for the main one. */
int	conf_parse_file(struct parse *p, const char *path,
	    struct file *parent);
/* include = PATTERN: read the files it names, in byte order. */
int	conf_include(struct file *f, const char *pattern);

/* conf_section.c */

/* A "[kind name]" header; hdr is what lies between the brackets (cut
 * in place).  Closes the section before it. */
int	conf_open_section(struct file *f, char *hdr);
/* End of a section: at the next header or at the end of its file. */
int	conf_close_section(struct file *f);
/* A key of [dkimkeyd]. */
int	conf_main_key(struct file *f, const char *name, const char *value);
/* A key of [provider NAME] or [signer NAME]. */
int	conf_section_key(struct file *f, const char *name,
	    const char *value);
void	conf_section_free(struct dk_conf_section *s);

/* conf_domain.c */

/* A host name or DKIM selector (RFC 1123 labels, 253 octets). */
int	conf_valid_name(const char *s);
/* [domain rawname]: a new domain with its defaults. */
int	conf_open_domain(struct file *f, const char *rawname);
/* A key of the current [domain NAME]. */
int	conf_domain_key(struct file *f, const char *name, const char *value);
/* The checks that need the whole [domain NAME] section. */
int	conf_finish_domain(struct file *f);
void	conf_domain_free(struct dk_conf_domain *d);

#endif
