/*
 * lib/dns_tsig_key.c — the TSIG key file (BIND's tsig-keygen format),
 * Part of the DNS module (lib/dns.h).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"

#define KEYFILE_MAX	(64 * 1024)

enum tok_type { T_EOF, T_WORD, T_STRING, T_LBRACE, T_RBRACE, T_SEMI, T_ERR };

struct lexer {
	const char	*path;
	const char	*p, *end;
	int		 line;
	char		 tok[512];
	int		 tokline;
};

static enum tok_type
lex(struct lexer *lx, struct dk_error *err)
{
	size_t n = 0;
	int c;

	for (;;) {
		while (lx->p < lx->end && isspace((unsigned char)*lx->p)) {
			if (*lx->p == '\n')
				lx->line++;
			lx->p++;
		}
		if (lx->p >= lx->end)
			return T_EOF;
		if (*lx->p == '#' || (*lx->p == '/' && lx->p + 1 < lx->end &&
		    lx->p[1] == '/')) {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
			continue;
		}
		if (*lx->p == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
			int start = lx->line;

			lx->p += 2;
			while (lx->p + 1 < lx->end &&
			    !(lx->p[0] == '*' && lx->p[1] == '/')) {
				if (*lx->p == '\n')
					lx->line++;
				lx->p++;
			}
			if (lx->p + 1 >= lx->end) {
				dk_err(err, DK_ECONFIG,
				    "%s:%d: unterminated /* comment", lx->path,
				    start);
				return T_ERR;
			}
			lx->p += 2;
			continue;
		}
		break;
	}
	lx->tokline = lx->line;
	c = (unsigned char)*lx->p;
	if (c == '{' || c == '}' || c == ';') {
		lx->p++;
		lx->tok[0] = (char)c;
		lx->tok[1] = '\0';
		return c == '{' ? T_LBRACE : c == '}' ? T_RBRACE : T_SEMI;
	}
	if (c == '"') {
		lx->p++;
		while (lx->p < lx->end && *lx->p != '"' && *lx->p != '\n') {
			if (n + 1 >= sizeof(lx->tok)) {
				dk_err(err, DK_ECONFIG, "%s:%d: string too long",
				    lx->path, lx->tokline);
				return T_ERR;
			}
			lx->tok[n++] = *lx->p++;
		}
		if (lx->p >= lx->end || *lx->p != '"') {
			dk_err(err, DK_ECONFIG, "%s:%d: unterminated string",
			    lx->path, lx->tokline);
			return T_ERR;
		}
		lx->p++;
		lx->tok[n] = '\0';
		return T_STRING;
	}
	while (lx->p < lx->end && !isspace((unsigned char)*lx->p) &&
	    strchr("{};\"#", *lx->p) == NULL) {
		if (n + 1 >= sizeof(lx->tok)) {
			dk_err(err, DK_ECONFIG, "%s:%d: word too long",
			    lx->path, lx->tokline);
			return T_ERR;
		}
		lx->tok[n++] = *lx->p++;
	}
	lx->tok[n] = '\0';
	return T_WORD;
}

/* Expect one token type; fill err with "file:line: expected WHAT". */
static int
expect(struct lexer *lx, enum tok_type want, const char *what,
    struct dk_error *err)
{
	enum tok_type t;

	if ((t = lex(lx, err)) == T_ERR)
		return DK_ECONFIG;
	if (t == want || (want == T_WORD && t == T_STRING))
		return DK_OK;
	return dk_err(err, DK_ECONFIG, "%s:%d: expected %s, found %s",
	    lx->path, lx->line, what, t == T_EOF ? "end of file" : lx->tok);
}

static int
b64_valid(const char *s)
{
	size_t n = strlen(s), i, pad = 0;

	if (n == 0 || n % 4 != 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad != 0)
			return 0;	/* data after padding */
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' &&
		    s[i] != '/')
			return 0;
	}
	return pad <= 2 && n > pad;
}

/* What we sign with (RFC 8945 §6); hmac-md5 is handled apart. */
static const char *const tsig_algs[] = {
	"hmac-sha256", "hmac-sha1", "hmac-sha224", "hmac-sha384",
	"hmac-sha512", NULL
};

int
dk_tsig_load(const char *path, int allow_md5, struct dk_tsig *out,
    struct dk_error *err)
{
	struct lexer lx;
	struct stat st;
	struct dk_tsig k;
	char *buf = NULL;
	size_t len = 0, i;
	int fd = -1, rc, have_alg = 0, alg_line = 0, nkeys = 0;
	enum tok_type t;

	memset(&k, 0, sizeof(k));
	memset(&lx, 0, sizeof(lx));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		rc = dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_ECONFIG,
		    "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = dk_err(err, DK_ECONFIG, "%s: not a regular file", path);
		goto out;
	}
	/* Group read is allowed (0640 to the daemon's group), no more. */
	if ((st.st_mode & 027) != 0) {
		rc = dk_err(err, DK_EUNSAFE,
		    "%s: TSIG key file has mode %04o, readable or writable by "
		    "others; run chmod 600 %s (or 640 for a group)", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > KEYFILE_MAX) {
		rc = dk_err(err, DK_ECONFIG, "%s: too large for a key file",
		    path);
		goto out;
	}
	if ((buf = malloc(KEYFILE_MAX + 1)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dk_read_fd(fd, buf, KEYFILE_MAX, &len, path, err)) != DK_OK)
		goto out;
	buf[len] = '\0';

	lx.path = path;
	lx.p = buf;
	lx.end = buf + len;
	lx.line = 1;
	snprintf(k.algorithm, sizeof(k.algorithm), "hmac-sha256");

	while ((t = lex(&lx, err)) != T_EOF) {
		if (t == T_ERR) {
			rc = DK_ECONFIG;
			goto out;
		}
		if (t != T_WORD || strcmp(lx.tok, "key") != 0) {
			rc = dk_err(err, DK_ECONFIG,
			    "%s:%d: expected key statement, found %s", path,
			    lx.tokline, lx.tok);
			goto out;
		}
		if (++nkeys > 1) {
			rc = dk_err(err, DK_ECONFIG,
			    "%s:%d: more than one key in the file", path,
			    lx.tokline);
			goto out;
		}
		if ((rc = expect(&lx, T_WORD, "key name", err)) != DK_OK)
			goto out;
		if (lx.tok[0] == '\0' || strlen(lx.tok) + 2 > sizeof(k.name)) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: bad key name",
			    path, lx.tokline);
			goto out;
		}
		snprintf(k.name, sizeof(k.name), "%s%s", lx.tok,
		    lx.tok[strlen(lx.tok) - 1] == '.' ? "" : ".");
		{
			ldns_rdf *kn = ldns_dname_new_frm_str(k.name);

			if (kn == NULL) {
				rc = dk_err(err, DK_ECONFIG,
				    "%s:%d: key name \"%s\" is not a domain "
				    "name", path, lx.tokline, lx.tok);
				goto out;
			}
			ldns_rdf_deep_free(kn);
		}
		if ((rc = expect(&lx, T_LBRACE, "'{'", err)) != DK_OK)
			goto out;
		for (;;) {
			if ((t = lex(&lx, err)) == T_ERR) {
				rc = DK_ECONFIG;
				goto out;
			}
			if (t == T_RBRACE)
				break;
			if (t != T_WORD) {
				rc = dk_err(err, DK_ECONFIG,
				    "%s:%d: expected algorithm, secret or "
				    "'}', found %s", path, lx.tokline,
				    t == T_EOF ? "end of file" : lx.tok);
				goto out;
			}
			if (strcmp(lx.tok, "algorithm") == 0) {
				if (have_alg) {
					rc = dk_err(err, DK_ECONFIG,
					    "%s:%d: duplicate algorithm", path,
					    lx.tokline);
					goto out;
				}
				if ((rc = expect(&lx, T_WORD, "algorithm name",
				    err)) != DK_OK)
					goto out;
				have_alg = 1;
				alg_line = lx.tokline;
				if (strlen(lx.tok) >= sizeof(k.algorithm)) {
					rc = dk_err(err, DK_ECONFIG,
					    "%s:%d: unknown TSIG algorithm %s",
					    path, lx.tokline, lx.tok);
					goto out;
				}
				for (i = 0; lx.tok[i] != '\0'; i++)
					k.algorithm[i] = (char)tolower(
					    (unsigned char)lx.tok[i]);
				k.algorithm[i] = '\0';
			} else if (strcmp(lx.tok, "secret") == 0) {
				if (k.secret_b64 != NULL) {
					rc = dk_err(err, DK_ECONFIG,
					    "%s:%d: duplicate secret", path,
					    lx.tokline);
					goto out;
				}
				if ((rc = expect(&lx, T_WORD, "secret", err))
				    != DK_OK)
					goto out;
				if (!b64_valid(lx.tok)) {
					rc = dk_err(err, DK_ECONFIG,
					    "%s:%d: secret is not valid base64",
					    path, lx.tokline);
					goto out;
				}
				if ((k.secret_b64 = dk_strdup(lx.tok)) ==
				    NULL) {
					rc = dk_err(err, DK_ENOMEM,
					    "out of memory");
					goto out;
				}
			} else {
				rc = dk_err(err, DK_ECONFIG,
				    "%s:%d: unknown key option \"%s\"", path,
				    lx.tokline, lx.tok);
				goto out;
			}
			if ((rc = expect(&lx, T_SEMI, "';'", err)) != DK_OK)
				goto out;
		}
		if ((rc = expect(&lx, T_SEMI, "';' after '}'", err)) !=
		    DK_OK)
			goto out;
	}
	if (nkeys == 0) {
		rc = dk_err(err, DK_ECONFIG, "%s: no key statement", path);
		goto out;
	}
	if (k.secret_b64 == NULL) {
		rc = dk_err(err, DK_ECONFIG, "%s: key \"%s\" has no secret",
		    path, k.name);
		goto out;
	}
	if (strcmp(k.algorithm, "hmac-md5") == 0 ||
	    strcmp(k.algorithm, "hmac-md5.sig-alg.reg.int") == 0 ||
	    strcmp(k.algorithm, "hmac-md5.sig-alg.reg.int.") == 0) {
		if (!allow_md5) {
			rc = dk_err(err, DK_ECONFIG,
			    "%s:%d: hmac-md5 is weak; generate a new key with "
			    "tsig-keygen -a hmac-sha256 (or set allow_md5 = "
			    "yes)", path, alg_line);
			goto out;
		}
		snprintf(k.algorithm, sizeof(k.algorithm), "hmac-md5");
	} else {
		for (i = 0; tsig_algs[i] != NULL; i++)
			if (strcmp(k.algorithm, tsig_algs[i]) == 0)
				break;
		if (tsig_algs[i] == NULL) {
			rc = dk_err(err, DK_ECONFIG,
			    "%s:%d: unknown TSIG algorithm %s; use "
			    "hmac-sha256, hmac-sha1, hmac-sha224, hmac-sha384 "
			    "or hmac-sha512", path, alg_line, k.algorithm);
			goto out;
		}
	}
	*out = k;
	memset(&k, 0, sizeof(k));
	rc = DK_OK;
 out:
	if (buf != NULL) {
		explicit_bzero(buf, KEYFILE_MAX + 1);
		free(buf);
	}
	explicit_bzero(lx.tok, sizeof(lx.tok));
	dk_tsig_clear(&k);
	if (fd != -1)
		close(fd);
	return rc;
}

void
dk_tsig_clear(struct dk_tsig *k)
{
	if (k == NULL)
		return;
	if (k->secret_b64 != NULL) {
		explicit_bzero(k->secret_b64, strlen(k->secret_b64));
		free(k->secret_b64);
	}
	explicit_bzero(k, sizeof(*k));
}
