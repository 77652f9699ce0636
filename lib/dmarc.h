/*
 * lib/dmarc.h — DMARC policy records (RFC 7489) and DKIM identifier
 * alignment: does a signature with d= SIGNING align with a From domain?
 * No network I/O: the caller fetches the _dmarc TXT records.  The one
 * local read is the Public Suffix List, loaded once by the caller with
 * dk_psl_load.
 */
#ifndef DK_DMARC_H
#define DK_DMARC_H

#include <stddef.h>

#include "dk.h"

enum dk_align {
	DK_ALIGN_RELAXED = 0,	/* adkim=r (the default) */
	DK_ALIGN_STRICT,	/* adkim=s */
};

/* A parsed DMARC record. */
struct dk_dmarc {
	char		p[16];		/* none, quarantine, reject */
	char		sp[16];		/* subdomain policy, or "" */
	enum dk_align	adkim;
	enum dk_align	aspf;
	int		pct;		/* 0..100, 100 when absent */
};

/*
 * Parse a record's text (TXT strings joined).  v=DMARC1 must come first
 * (RFC 7489 §6.3); p= is required; duplicate tags, and bad values of p=,
 * sp=, adkim=, aspf=, pct= are DK_EINVAL with a message.  Unknown tags
 * are ignored.  Tag names and the values checked here compare without
 * regard to case.
 */
int		 dk_dmarc_parse(const char *text, size_t len,
		    struct dk_dmarc *out, struct dk_error *err);

/* Is text meant as a DMARC record (begins with v=DMARC1)?  RFC 7489
 * §6.6.3: other TXT records at _dmarc are ignored. */
int		 dk_dmarc_is_record(const char *text, size_t len);

/*
 * The Public Suffix List (https://publicsuffix.org), read-only once
 * loaded: load it once per run and pass it to every call below.  Both
 * sections of the list are used, ICANN and private (github.io,
 * blogspot.com, ...), as DMARC receivers do: RFC 7489 §3.2 names the
 * list, not a section of it.
 */
struct dk_psl;

/*
 * Load the list.  path NULL: the system's current copy (Debian package
 * publicsuffix, /usr/share/publicsuffix), or libpsl's built-in copy when
 * that file is missing or older.  Otherwise exactly the file at path, in
 * the list's text format or libpsl's DAFSA form.  DK_EIO with a message
 * naming the file when nothing can be loaded.
 */
int		 dk_psl_load(const char *path, struct dk_psl **out,
		    struct dk_error *err);

/* Free a list from dk_psl_load; NULL is a no-op. */
void		 dk_psl_free(struct dk_psl *psl);

/*
 * Organizational domain of domain under psl (RFC 7489 §3.2: the longest
 * public suffix that matches, with wildcard and exception rules, plus one
 * more label), lower case, no trailing dot, into buf.  A name the list
 * does not know falls under its implicit "*" rule: its last label is the
 * suffix (mail.example.test -> example.test).  A name that is itself a
 * public suffix (co.uk, github.io) is its own organizational domain: it
 * has no label to add.  Names are compared in A-label (xn--) form, as DNS
 * carries them; only ASCII letters are folded to lower case.  DK_EINVAL
 * when psl is NULL, domain empty or over 255 characters, a label is
 * empty, or buf too small.
 */
int		 dk_dmarc_org_domain(const struct dk_psl *psl,
		    const char *domain, char *buf, size_t len);

/*
 * Does a DKIM signature with d=signing align with the RFC5322.From domain
 * from under mode (RFC 7489 §3.1.1)?  Strict: the same name; relaxed:
 * the same organizational domain under psl.  Case-insensitive, a trailing
 * dot ignored.  1 yes, 0 no (also when a name is invalid, or psl is NULL
 * and the names differ).
 */
int		 dk_dmarc_aligned(const struct dk_psl *psl, const char *signing,
		    const char *from, enum dk_align mode);

#endif
