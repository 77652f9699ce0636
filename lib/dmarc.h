/*
 * lib/dmarc.h — DMARC policy records (RFC 7489) and DKIM identifier
 * alignment: does a signature with d= SIGNING align with a From domain?
 * No I/O: the caller fetches the _dmarc TXT records.
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
 * Organizational domain of domain (RFC 7489 §3.2), lower case, no
 * trailing dot, into buf.  Without the Public Suffix List this uses the
 * last two labels, or three under a short built-in list of common
 * two-label public suffixes (co.uk, com.au, ...).  DK_EINVAL when buf is
 * too small or domain empty.
 */
int		 dk_dmarc_org_domain(const char *domain, char *buf,
		    size_t len);

/*
 * Does a DKIM signature with d=signing align with the RFC5322.From domain
 * from under mode (RFC 7489 §3.1.1)?  Strict: the same name; relaxed:
 * the same organizational domain.  Case-insensitive.  1 yes, 0 no.
 */
int		 dk_dmarc_aligned(const char *signing, const char *from,
		    enum dk_align mode);

#endif
