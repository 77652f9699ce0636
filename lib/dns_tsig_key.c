/*
 * lib/dns_tsig_key.c — the TSIG key file (BIND's tsig-keygen format),
 * read through the secret-file loader (lib/secret.h).  Part of the DNS
 * module (lib/dns.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"
#include "secret.h"

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

/* The "algorithm NAME;" option: the name kept lower case. */
static int
parse_algorithm(struct lexer *lx, struct dk_tsig *k, int *alg_line,
    struct dk_error *err)
{
	size_t i;
	int rc;

	if (*alg_line != 0)
		return dk_err(err, DK_ECONFIG, "%s:%d: duplicate algorithm",
		    lx->path, lx->tokline);
	if ((rc = expect(lx, T_WORD, "algorithm name", err)) != DK_OK)
		return rc;
	*alg_line = lx->tokline;
	if (strlen(lx->tok) >= sizeof(k->algorithm))
		return dk_err(err, DK_ECONFIG, "%s:%d: unknown TSIG algorithm "
		    "%s", lx->path, lx->tokline, lx->tok);
	for (i = 0; lx->tok[i] != '\0'; i++)
		k->algorithm[i] = (char)tolower((unsigned char)lx->tok[i]);
	k->algorithm[i] = '\0';
	return DK_OK;
}

/* The "secret "BASE64";" option. */
static int
parse_secret(struct lexer *lx, struct dk_tsig *k, struct dk_error *err)
{
	int rc;

	if (k->secret_b64 != NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: duplicate secret",
		    lx->path, lx->tokline);
	if ((rc = expect(lx, T_WORD, "secret", err)) != DK_OK)
		return rc;
	if (!b64_valid(lx->tok))
		return dk_err(err, DK_ECONFIG, "%s:%d: secret is not valid "
		    "base64", lx->path, lx->tokline);
	if ((k->secret_b64 = dk_strdup(lx->tok)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/* key "NAME" { OPTIONS }; after the word key. */
static int
parse_key(struct lexer *lx, struct dk_tsig *k, int *alg_line,
    struct dk_error *err)
{
	enum tok_type t;
	ldns_rdf *kn;
	int rc;

	if ((rc = expect(lx, T_WORD, "key name", err)) != DK_OK)
		return rc;
	if (lx->tok[0] == '\0' || strlen(lx->tok) + 2 > sizeof(k->name))
		return dk_err(err, DK_ECONFIG, "%s:%d: bad key name",
		    lx->path, lx->tokline);
	snprintf(k->name, sizeof(k->name), "%s%s", lx->tok,
	    lx->tok[strlen(lx->tok) - 1] == '.' ? "" : ".");
	if ((kn = ldns_dname_new_frm_str(k->name)) == NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: key name \"%s\" is not "
		    "a domain name", lx->path, lx->tokline, lx->tok);
	ldns_rdf_deep_free(kn);
	if ((rc = expect(lx, T_LBRACE, "'{'", err)) != DK_OK)
		return rc;
	for (;;) {
		if ((t = lex(lx, err)) == T_ERR)
			return DK_ECONFIG;
		if (t == T_RBRACE)
			break;
		if (t != T_WORD)
			return dk_err(err, DK_ECONFIG, "%s:%d: expected "
			    "algorithm, secret or '}', found %s", lx->path,
			    lx->tokline, t == T_EOF ? "end of file" : lx->tok);
		if (strcmp(lx->tok, "algorithm") == 0)
			rc = parse_algorithm(lx, k, alg_line, err);
		else if (strcmp(lx->tok, "secret") == 0)
			rc = parse_secret(lx, k, err);
		else
			rc = dk_err(err, DK_ECONFIG, "%s:%d: unknown key "
			    "option \"%s\"", lx->path, lx->tokline, lx->tok);
		if (rc != DK_OK ||
		    (rc = expect(lx, T_SEMI, "';'", err)) != DK_OK)
			return rc;
	}
	return expect(lx, T_SEMI, "';' after '}'", err);
}

/* Is the algorithm one we sign with?  md5 only when allowed. */
static int
check_algorithm(const char *path, struct dk_tsig *k, int allow_md5,
    int alg_line, struct dk_error *err)
{
	size_t i;

	if (strcmp(k->algorithm, "hmac-md5") == 0 ||
	    strcmp(k->algorithm, "hmac-md5.sig-alg.reg.int") == 0 ||
	    strcmp(k->algorithm, "hmac-md5.sig-alg.reg.int.") == 0) {
		if (!allow_md5)
			return dk_err(err, DK_ECONFIG, "%s:%d: hmac-md5 is "
			    "weak; generate a new key with tsig-keygen -a "
			    "hmac-sha256 (or set allow_md5 = yes)", path,
			    alg_line);
		snprintf(k->algorithm, sizeof(k->algorithm), "hmac-md5");
		return DK_OK;
	}
	for (i = 0; tsig_algs[i] != NULL; i++)
		if (strcmp(k->algorithm, tsig_algs[i]) == 0)
			return DK_OK;
	return dk_err(err, DK_ECONFIG, "%s:%d: unknown TSIG algorithm %s; use "
	    "hmac-sha256, hmac-sha1, hmac-sha224, hmac-sha384 or hmac-sha512",
	    path, alg_line, k->algorithm);
}

/* The key of a key file's contents (buf, len octets). */
int
dk_dns_tsig_parse(const char *path, const char *buf, size_t len, int allow_md5,
    struct dk_tsig *k, struct dk_error *err)
{
	struct lexer lx;
	enum tok_type t;
	int rc, alg_line = 0, nkeys = 0;

	memset(&lx, 0, sizeof(lx));
	lx.path = path;
	lx.p = buf;
	lx.end = buf + len;
	lx.line = 1;
	snprintf(k->algorithm, sizeof(k->algorithm), "hmac-sha256");
	while ((t = lex(&lx, err)) != T_EOF) {
		if (t == T_ERR) {
			rc = DK_ECONFIG;
			goto out;
		}
		if (t != T_WORD || strcmp(lx.tok, "key") != 0) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: expected key "
			    "statement, found %s", path, lx.tokline, lx.tok);
			goto out;
		}
		if (++nkeys > 1) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: more than one key "
			    "in the file", path, lx.tokline);
			goto out;
		}
		if ((rc = parse_key(&lx, k, &alg_line, err)) != DK_OK)
			goto out;
	}
	if (nkeys == 0)
		rc = dk_err(err, DK_ECONFIG, "%s: no key statement", path);
	else if (k->secret_b64 == NULL)
		rc = dk_err(err, DK_ECONFIG, "%s: key \"%s\" has no secret",
		    path, k->name);
	else
		rc = check_algorithm(path, k, allow_md5, alg_line, err);
 out:
	/* The lexer's buffer held the secret last time it read one. */
	dk_secret_cleanse(lx.tok, sizeof(lx.tok));
	return rc;
}

int
dk_tsig_load(const char *path, int allow_md5, struct dk_tsig *out,
    struct dk_error *err)
{
	struct dk_secret *file = NULL;
	struct dk_tsig k;
	int rc;

	memset(&k, 0, sizeof(k));
	if ((rc = dk_secret_load(path, "TSIG key file", KEYFILE_MAX, &file,
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_dns_tsig_parse(path, file->data, file->len, allow_md5,
	    &k, err)) == DK_OK) {
		*out = k;
		memset(&k, 0, sizeof(k));
	}
	dk_secret_free(file);
	dk_tsig_clear(&k);
	return rc;
}

int
dk_tsig_check_file(const char *path, struct dk_error *err)
{
	return dk_secret_check(path, "TSIG key file", err);
}

void
dk_tsig_clear(struct dk_tsig *k)
{
	if (k == NULL)
		return;
	if (k->secret_b64 != NULL) {
		dk_secret_cleanse(k->secret_b64, strlen(k->secret_b64));
		free(k->secret_b64);
	}
	dk_secret_cleanse(k, sizeof(*k));
}
