/*
 * lib/dns.c — DNS queries, RFC 2136 updates and TSIG, built on ldns.
 *
 * ldns is used only to build and parse messages.  Sockets are our own:
 * ldns's resolver neither matches UDP replies to queries nor recovers from
 * a single timeout.  TSIG is our own too (RFC 8945, HMACs from the key
 * module): ldns 1.8 cannot sign with hmac-sha224 or hmac-sha384, and its
 * check reports BADKEY, BADSIG, BADTIME and an unsigned NOTAUTH alike as
 * "bogus".  Everything ldns allocates is freed in this file.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"
#include "key.h"

#define EDNS_UDP_SIZE	1232	/* DNS flag day 2020: no IP fragmentation */
#define MAX_DISCARDS	16	/* stray UDP replies tolerated per query */
#define MAX_CNAME	8
#define MAX_ZONE_WALK	16
#define TSIG_FUDGE	300
#define KEYFILE_MAX	(64 * 1024)

/*
 * Addresses
 */

static int
parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static void
addr_format(struct dk_addr *a)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(a->text, sizeof(a->text), "%s:%u", host,
		    ntohs(sin->sin_port));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(a->text, sizeof(a->text), "[%s]:%u", host,
		    ntohs(sin6->sin6_port));
	}
}

static int
addr_set(struct dk_addr *a, int family, const void *addr, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, sizeof(sin->sin_addr));
		a->len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, sizeof(sin6->sin6_addr));
		a->len = sizeof(*sin6);
	}
	addr_format(a);
	return DK_OK;
}

int
dk_addr_parse(const char *s, uint16_t default_port, struct dk_addr *out,
    struct dk_error *err)
{
	char host[INET6_ADDRSTRLEN];
	const char *h, *end, *portstr = NULL, *colon;
	unsigned char buf[sizeof(struct in6_addr)];
	uint16_t port = default_port;
	size_t hlen;
	int v6only = 0;

	if (s == NULL || *s == '\0')
		return dk_err(err, DK_EINVAL, "empty server address");
	if (s[0] == '[') {
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL)
			return dk_err(err, DK_EINVAL,
			    "%s: missing ']' in address", s);
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0')
			return dk_err(err, DK_EINVAL,
			    "%s: unexpected text after ']'", s);
		v6only = 1;
	} else {
		h = s;
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			/* one colon: IPv4 address with a port */
			end = colon;
			portstr = colon + 1;
		} else
			end = s + strlen(s);	/* IPv4, or IPv6 bare */
	}
	hlen = (size_t)(end - h);
	if (hlen == 0 || hlen >= sizeof(host))
		return dk_err(err, DK_EINVAL, "%s: not a numeric address", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (portstr != NULL && parse_port(portstr, &port) == -1)
		return dk_err(err, DK_EINVAL, "%s: bad port \"%s\"", s,
		    portstr);
	if (port == 0)
		return dk_err(err, DK_EINVAL, "%s: no port", s);
	if (!v6only && inet_pton(AF_INET, host, buf) == 1)
		return addr_set(out, AF_INET, buf, port);
	if (inet_pton(AF_INET6, host, buf) == 1)
		return addr_set(out, AF_INET6, buf, port);
	return dk_err(err, DK_EINVAL,
	    "%s: not a numeric IPv4 or IPv6 address (write IPv6 with a port "
	    "as [addr]:port)", s);
}

int
dk_addr_parse_list(const char *s, uint16_t default_port,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	struct dk_addr *list = NULL, *nl;
	char word[128];
	size_t cnt = 0, len;
	const char *p = s, *w;
	int rc;

	if (s == NULL)
		return dk_err(err, DK_EINVAL, "empty address list");
	for (;;) {
		while (*p != '\0' && (isspace((unsigned char)*p) || *p == ','))
			p++;
		if (*p == '\0')
			break;
		w = p;
		while (*p != '\0' && !isspace((unsigned char)*p) && *p != ',')
			p++;
		len = (size_t)(p - w);
		if (len >= sizeof(word)) {
			rc = dk_err(err, DK_EINVAL, "%.*s...: address too long",
			    20, w);
			goto out;
		}
		memcpy(word, w, len);
		word[len] = '\0';
		if ((nl = reallocarray(list, cnt + 1, sizeof(*list))) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		list = nl;
		if ((rc = dk_addr_parse(word, default_port, &list[cnt],
		    err)) != DK_OK)
			goto out;
		cnt++;
	}
	if (cnt == 0) {
		rc = dk_err(err, DK_EINVAL, "empty address list");
		goto out;
	}
	*out = list;
	*n = cnt;
	list = NULL;
	rc = DK_OK;
 out:
	free(list);
	return rc;
}

int
dk_addr_system_resolver(struct dk_addr *out, struct dk_error *err)
{
	const char *path = "/etc/resolv.conf";
	unsigned char buf[sizeof(struct in6_addr)];
	char line[512], *p, *w, *e;
	FILE *fp;
	int rc = DK_ECONFIG;

	if ((fp = fopen(path, "re")) == NULL)
		return dk_err(err, DK_ECONFIG,
		    "%s: %s (set resolver = in the provider section)", path,
		    strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (strncmp(p, "nameserver", 10) != 0 ||
		    !isspace((unsigned char)p[10]))
			continue;
		w = p + 10;
		while (isspace((unsigned char)*w))
			w++;
		for (e = w; *e != '\0' && !isspace((unsigned char)*e) &&
		    *e != '#' && *e != ';'; e++)
			;
		*e = '\0';
		/* A scoped address (fe80::1%eth0) cannot be used: skip it. */
		if (*w == '\0' || strchr(w, '%') != NULL)
			continue;
		/* resolv.conf carries bare addresses, never a port. */
		if (inet_pton(AF_INET, w, buf) == 1) {
			addr_set(out, AF_INET, buf, 53);
			rc = DK_OK;
			break;
		}
		if (inet_pton(AF_INET6, w, buf) == 1) {
			addr_set(out, AF_INET6, buf, 53);
			rc = DK_OK;
			break;
		}
	}
	fclose(fp);
	if (rc != DK_OK)
		return dk_err(err, DK_ECONFIG,
		    "%s: no usable nameserver line (set resolver = in the "
		    "provider section)", path);
	return DK_OK;
}

int
dk_dns_addr_equal(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr,
		    sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

/*
 * TSIG key files
 */

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

/*
 * Sockets
 */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
remaining(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > 3600000 ? 3600000 : (int)left;
}

/* Wait for fd to become ready; 0 ready, DK_ETEMP on timeout or error. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int n, left;

	for (;;) {
		if ((left = remaining(deadline)) == 0)
			return DK_ETEMP;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return DK_ETEMP;
		if (n == 0)
			return DK_ETEMP;
		return DK_OK;
	}
}

static int
tcp_connect(const struct dk_addr *srv, int64_t deadline, int *fdp,
    struct dk_error *err)
{
	socklen_t sl = sizeof(int);
	int fd, soerr = 0, rc;

	fd = socket(srv->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd == -1)
		return dk_err(err, DK_ETEMP, "%s: socket: %s", srv->text,
		    strerror(errno));
	if (connect(fd, (const struct sockaddr *)&srv->ss, srv->len) == -1) {
		if (errno != EINPROGRESS) {
			rc = dk_err(err, DK_ETEMP, "%s: connect: %s",
			    srv->text, strerror(errno));
			goto fail;
		}
		if (wait_fd(fd, POLLOUT, deadline) != DK_OK) {
			rc = dk_err(err, DK_ETEMP, "%s: TCP connect timed out",
			    srv->text);
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
			soerr = errno;
		if (soerr != 0) {
			rc = dk_err(err, DK_ETEMP, "%s: connect: %s",
			    srv->text, strerror(soerr));
			goto fail;
		}
	}
	*fdp = fd;
	return DK_OK;
 fail:
	close(fd);
	return rc;
}

static int
write_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, deadline) != DK_OK)
				return DK_ETEMP;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return DK_ETEMP;
		p += w;
		n -= (size_t)w;
	}
	return DK_OK;
}

static int
read_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t r;

	while (n > 0) {
		r = recv(fd, p, n, 0);
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLIN, deadline) != DK_OK)
				return DK_ETEMP;
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return DK_ETEMP;	/* closed before the end */
		p += r;
		n -= (size_t)r;
	}
	return DK_OK;
}

/* One message over TCP with 2-byte length framing (RFC 1035 4.2.2). */
static int
tcp_exchange(const struct dk_addr *srv, const uint8_t *q, size_t qlen,
    int timeout_ms, uint8_t **reply, size_t *rlen, struct dk_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t hdr[2], *msg = NULL, *buf = NULL;
	size_t n;
	int fd = -1, rc;

	if (qlen > 65535)
		return dk_err(err, DK_EINVAL, "%s: message too large",
		    srv->text);
	if ((rc = tcp_connect(srv, deadline, &fd, err)) != DK_OK)
		return rc;
	if ((msg = malloc(qlen + 2)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	msg[0] = (uint8_t)(qlen >> 8);
	msg[1] = (uint8_t)qlen;
	memcpy(msg + 2, q, qlen);
	if (write_all(fd, msg, qlen + 2, deadline) != DK_OK) {
		rc = dk_err(err, DK_ETEMP, "%s: TCP send failed or timed out",
		    srv->text);
		goto out;
	}
	if (read_all(fd, hdr, 2, deadline) != DK_OK) {
		rc = dk_err(err, DK_ETEMP, "%s: no TCP reply within %d ms",
		    srv->text, timeout_ms);
		goto out;
	}
	n = (size_t)hdr[0] << 8 | hdr[1];
	if (n < LDNS_HEADER_SIZE) {
		rc = dk_err(err, DK_EINVAL, "%s: short TCP reply", srv->text);
		goto out;
	}
	if ((buf = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (read_all(fd, buf, n, deadline) != DK_OK) {
		rc = dk_err(err, DK_ETEMP, "%s: TCP reply cut short or timed "
		    "out", srv->text);
		goto out;
	}
	*reply = buf;
	*rlen = n;
	buf = NULL;
	rc = DK_OK;
 out:
	free(buf);
	free(msg);
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Queries
 */

static uint16_t
random_id(void)
{
	return (uint16_t)(arc4random() & 0xffff);
}

static int
make_dname(const char *name, ldns_rdf **out, struct dk_error *err)
{
	ldns_rdf *d;

	if (name == NULL || *name == '\0' ||
	    (d = ldns_dname_new_frm_str(name)) == NULL)
		return dk_err(err, DK_EINVAL, "\"%s\": not a domain name",
		    name == NULL ? "" : name);
	*out = d;
	return DK_OK;
}

/* Does pkt answer our question?  NULL when yes, else why not. */
static const char *
question_mismatch(const ldns_pkt *pkt, uint16_t id, const ldns_rdf *qname,
    int type)
{
	const ldns_rr *q;

	if (ldns_pkt_id(pkt) != id)
		return "wrong ID";
	if (!ldns_pkt_qr(pkt))
		return "not a response";
	if (ldns_pkt_qdcount(pkt) != 1 ||
	    ldns_rr_list_rr_count(ldns_pkt_question(pkt)) != 1)
		return "wrong question count";
	q = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
	if (ldns_dname_compare(ldns_rr_owner(q), qname) != 0)
		return "wrong question name";
	if ((int)ldns_rr_get_type(q) != type)
		return "wrong question type";
	if (ldns_rr_get_class(q) != LDNS_RR_CLASS_IN)
		return "wrong question class";
	return NULL;
}

/*
 * Send q over UDP and wait for the reply that matches it.  Stray replies
 * (other source, ID or question) are discarded: a bounded number, so
 * that a flood cannot keep us here past the deadline anyway.  *tc set
 * when the matching reply was truncated (no packet returned then).
 */
static int
udp_exchange(const struct dk_addr *srv, const uint8_t *q, size_t qlen,
    uint16_t id, const ldns_rdf *qname, int type, int timeout_ms,
    ldns_pkt **reply, int *tc, struct dk_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct sockaddr_storage from;
	socklen_t fromlen;
	uint8_t buf[65536];
	const char *why = NULL;
	ldns_pkt *pkt = NULL;
	ssize_t n;
	int fd, rc, discards = 0;

	*tc = 0;
	fd = socket(srv->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd == -1)
		return dk_err(err, DK_ETEMP, "%s: socket: %s", srv->text,
		    strerror(errno));
	/* connect() makes the kernel drop datagrams from other sources. */
	if (connect(fd, (const struct sockaddr *)&srv->ss, srv->len) == -1 ||
	    send(fd, q, qlen, 0) != (ssize_t)qlen) {
		rc = dk_err(err, DK_ETEMP, "%s: %s", srv->text,
		    strerror(errno));
		goto out;
	}
	for (;;) {
		if (wait_fd(fd, POLLIN, deadline) != DK_OK) {
			if (why != NULL)
				rc = dk_err(err, DK_ETEMP,
				    "%s: no matching reply within %d ms "
				    "(%d discarded, last: %s)", srv->text,
				    timeout_ms, discards, why);
			else
				rc = dk_err(err, DK_ETEMP,
				    "%s: no reply within %d ms", srv->text,
				    timeout_ms);
			goto out;
		}
		fromlen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), 0,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			/* ICMP unreachable surfaces here as ECONNREFUSED. */
			rc = dk_err(err, DK_ETEMP, "%s: %s", srv->text,
			    strerror(errno));
			goto out;
		}
		/* The kernel filters on connect(); check all the same. */
		if (!dk_dns_addr_equal(&from, &srv->ss))
			why = "wrong source address";
		else if (n < LDNS_HEADER_SIZE)
			why = "short reply";
		else if (LDNS_ID_WIRE(buf) != id)
			why = "wrong ID";
		else if (LDNS_QR_WIRE(buf) && LDNS_TC_WIRE(buf)) {
			/* Only costs a TCP query if forged. */
			*tc = 1;
			rc = DK_OK;
			goto out;
		} else if (ldns_wire2pkt(&pkt, buf, (size_t)n) !=
		    LDNS_STATUS_OK) {
			pkt = NULL;
			why = "malformed reply";
		} else if ((why = question_mismatch(pkt, id, qname, type)) ==
		    NULL) {
			*reply = pkt;
			pkt = NULL;
			rc = DK_OK;
			goto out;
		}
		ldns_pkt_free(pkt);
		pkt = NULL;
		if (++discards >= MAX_DISCARDS) {
			rc = dk_err(err, DK_EINVAL,
			    "%s: %d replies that do not match the query (last: "
			    "%s)", srv->text, discards, why);
			goto out;
		}
	}
 out:
	ldns_pkt_free(pkt);
	close(fd);
	return rc;
}

char *
dk_dns_name_str(const ldns_rdf *rdf)
{
	char *s, *r;
	size_t n;

	if ((s = ldns_rdf2str(rdf)) == NULL)
		return NULL;
	n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = '\0';
	r = dk_strdup(s);
	LDNS_FREE(s);
	return r;
}

static char *
name_lower(const ldns_rdf *rdf)
{
	char *s, *p;

	if ((s = dk_dns_name_str(rdf)) != NULL)
		for (p = s; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	return s;
}

static void
txt_clear(struct dk_txt *t)
{
	size_t i;

	for (i = 0; i < t->nstr; i++)
		free(t->str[i]);
	free(t->str);
	t->str = NULL;
	t->nstr = 0;
}

/*
 * A TXT RR's character-strings as C strings.  Octets are copied raw, but
 * a NUL octet would silently cut the string short (and could make a
 * different record compare equal), so it is kept visible as "\000".
 */
static int
txt_from_rr(const ldns_rr *rr, struct dk_txt *out)
{
	struct dk_txt t = { NULL, 0 };
	const uint8_t *d;
	size_t i, j, len, nnul;
	char *s, *p;

	if ((t.str = calloc(ldns_rr_rd_count(rr) + 1, sizeof(char *))) ==
	    NULL)
		return DK_ENOMEM;
	for (i = 0; i < ldns_rr_rd_count(rr); i++) {
		const ldns_rdf *rdf = ldns_rr_rdf(rr, i);

		d = ldns_rdf_data(rdf);
		if (ldns_rdf_size(rdf) < 1 ||
		    (size_t)d[0] + 1 != ldns_rdf_size(rdf)) {
			txt_clear(&t);
			return DK_EINVAL;
		}
		len = d[0];
		for (j = 0, nnul = 0; j < len; j++)
			nnul += d[1 + j] == '\0';
		if ((s = malloc(len + 3 * nnul + 1)) == NULL) {
			txt_clear(&t);
			return DK_ENOMEM;
		}
		for (j = 0, p = s; j < len; j++) {
			if (d[1 + j] == '\0') {
				memcpy(p, "\\000", 4);
				p += 4;
			} else
				*p++ = (char)d[1 + j];
		}
		*p = '\0';
		t.str[t.nstr++] = s;
	}
	*out = t;
	return DK_OK;
}

static int
push_name(struct dk_answer *a, char *s)
{
	char **nl;

	if (s == NULL)
		return DK_ENOMEM;
	if ((nl = reallocarray(a->names, a->nnames + 1, sizeof(*nl))) ==
	    NULL) {
		free(s);
		return DK_ENOMEM;
	}
	a->names = nl;
	a->names[a->nnames++] = s;
	return DK_OK;
}

static const ldns_rr *
find_soa(const ldns_rr_list *l, const ldns_rdf *owner)
{
	size_t i;
	const ldns_rr *rr;

	for (i = 0; i < ldns_rr_list_rr_count(l); i++) {
		rr = ldns_rr_list_rr(l, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA &&
		    ldns_rr_rd_count(rr) == 7 && (owner == NULL ||
		    ldns_dname_compare(ldns_rr_owner(rr), owner) == 0))
			return rr;
	}
	return NULL;
}

/*
 * The one reply parser of the DNS module (dns_int.h), shared with the
 * concurrent probes of dns_async.c so that both read answers alike.
 */
int
dk_dns_answer_from_pkt(const ldns_pkt *pkt, const ldns_rdf *qname, int type,
    int mode, struct dk_answer *out)
{
	struct dk_answer a;
	const ldns_rr_list *an = ldns_pkt_answer(pkt);
	const ldns_rr_list *ns = ldns_pkt_authority(pkt);
	const ldns_rdf *target = qname;
	const ldns_rr *rr = NULL, *soa;
	struct dk_txt *nt;
	size_t i, k, nmatch = 0;
	uint32_t cname_ttl = 0, min;
	int rc = DK_OK, at_target;

	memset(&a, 0, sizeof(a));
	a.rcode = ldns_pkt_get_rcode(pkt);
	a.aa = ldns_pkt_aa(pkt);
	/* A TXT record at a CNAME's target is not the one at the name. */
	at_target = type != DK_T_TXT || mode == DK_ANSWER_CHAIN;

	/* Follow a CNAME chain inside the answer (bounded). */
	if (type != DK_T_CNAME) {
		for (k = 0; k < MAX_CNAME; k++) {
			for (i = 0; i < ldns_rr_list_rr_count(an); i++) {
				rr = ldns_rr_list_rr(an, i);
				if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME
				    && ldns_rr_rd_count(rr) == 1 &&
				    ldns_dname_compare(ldns_rr_owner(rr),
				    target) == 0)
					break;
			}
			if (i == ldns_rr_list_rr_count(an))
				break;
			if (a.cname == NULL) {
				a.cname = dk_dns_name_str(ldns_rr_rdf(rr, 0));
				if (a.cname == NULL) {
					rc = DK_ENOMEM;
					goto out;
				}
				cname_ttl = ldns_rr_ttl(rr);
			}
			target = ldns_rr_rdf(rr, 0);
		}
	}

	for (i = 0; i < ldns_rr_list_rr_count(an); i++) {
		rr = ldns_rr_list_rr(an, i);
		if ((int)ldns_rr_get_type(rr) != type ||
		    ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
			continue;
		if (ldns_dname_compare(ldns_rr_owner(rr), qname) != 0 &&
		    (!at_target || ldns_dname_compare(ldns_rr_owner(rr),
		    target) != 0))
			continue;
		if (type == DK_T_TXT) {
			nt = reallocarray(a.txt, a.ntxt + 1, sizeof(*nt));
			if (nt == NULL) {
				rc = DK_ENOMEM;
				goto out;
			}
			a.txt = nt;
			if ((rc = txt_from_rr(rr, &a.txt[a.ntxt])) != DK_OK)
				goto out;
			a.ntxt++;
		} else {
			if (ldns_rr_rd_count(rr) < 1)
				continue;
			if (type == DK_T_SOA)
				;	/* reported through soa_owner */
			else if ((rc = push_name(&a,
			    dk_dns_name_str(ldns_rr_rdf(rr, 0)))) != DK_OK)
				goto out;
		}
		if (nmatch == 0 || ldns_rr_ttl(rr) < a.ttl)
			a.ttl = ldns_rr_ttl(rr);
		nmatch++;
	}
	if (nmatch == 0 && a.cname != NULL)
		a.ttl = cname_ttl;

	soa = NULL;
	if (type == DK_T_SOA)
		soa = find_soa(an, mode == DK_ANSWER_CHAIN ? NULL : qname);
	if (soa == NULL)
		soa = find_soa(ns, NULL);
	if (soa != NULL) {
		if ((a.soa_owner = name_lower(ldns_rr_owner(soa))) == NULL) {
			rc = DK_ENOMEM;
			goto out;
		}
		a.soa_serial = ldns_rdf2native_int32(ldns_rr_rdf(soa, 2));
	}
	/* RFC 2308 §5: a negative answer is cached min(SOA TTL, MINIMUM). */
	if ((a.rcode == LDNS_RCODE_NXDOMAIN ||
	    (a.rcode == LDNS_RCODE_NOERROR && nmatch == 0 && a.cname == NULL))
	    && (soa = find_soa(ns, NULL)) != NULL) {
		min = ldns_rdf2native_int32(ldns_rr_rdf(soa, 6));
		a.neg_ttl = ldns_rr_ttl(soa) < min ? ldns_rr_ttl(soa) : min;
	}
	*out = a;
	return DK_OK;
 out:
	dk_answer_clear(&a);
	return rc;
}

int
dk_dns_query(const struct dk_addr *server, const char *name, int type,
    int rd, int timeout_ms, struct dk_answer *out, struct dk_error *err)
{
	ldns_rdf *qname = NULL;
	ldns_pkt *q = NULL, *reply = NULL;
	uint8_t *wire = NULL, *twire = NULL;
	size_t wlen = 0, tlen = 0;
	const char *why;
	uint16_t id = random_id();
	int rc, tc = 0;

	if ((rc = make_dname(name, &qname, err)) != DK_OK)
		return rc;
	q = ldns_pkt_query_new(ldns_rdf_clone(qname), (ldns_rr_type)type,
	    LDNS_RR_CLASS_IN, rd ? LDNS_RD : 0);
	if (q == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	ldns_pkt_set_id(q, id);
	ldns_pkt_set_rd(q, rd != 0);
	/* RSA-4096 records need more than 512 octets. */
	ldns_pkt_set_edns_udp_size(q, EDNS_UDP_SIZE);
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK) {
		rc = dk_err(err, DK_EINVAL, "%s: cannot build query", name);
		goto out;
	}
	if ((rc = udp_exchange(server, wire, wlen, id, qname, type,
	    timeout_ms, &reply, &tc, err)) != DK_OK)
		goto out;
	if (tc) {
		if ((rc = tcp_exchange(server, wire, wlen, timeout_ms, &twire,
		    &tlen, err)) != DK_OK)
			goto out;
		if (ldns_wire2pkt(&reply, twire, tlen) != LDNS_STATUS_OK) {
			reply = NULL;
			rc = dk_err(err, DK_EINVAL, "%s: malformed TCP reply "
			    "for %s", server->text, name);
			goto out;
		}
		if ((why = question_mismatch(reply, id, qname, type)) !=
		    NULL) {
			rc = dk_err(err, DK_EINVAL, "%s: TCP reply for %s does "
			    "not match the query: %s", server->text, name,
			    why);
			goto out;
		}
	}
	/* A record we publish is ours only at its own name. */
	if ((rc = dk_dns_answer_from_pkt(reply, qname, type,
	    DK_ANSWER_AT_NAME, out)) != DK_OK) {
		if (rc == DK_ENOMEM)
			dk_err(err, rc, "out of memory");
		else
			dk_err(err, rc, "%s: malformed record in reply for %s",
			    server->text, name);
		goto out;
	}
	rc = DK_OK;
 out:
	LDNS_FREE(wire);
	free(twire);
	ldns_pkt_free(q);
	ldns_pkt_free(reply);
	ldns_rdf_deep_free(qname);
	return rc;
}

void
dk_answer_clear(struct dk_answer *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->ntxt; i++)
		txt_clear(&a->txt[i]);
	free(a->txt);
	for (i = 0; i < a->nnames; i++)
		free(a->names[i]);
	free(a->names);
	free(a->soa_owner);
	free(a->cname);
	memset(a, 0, sizeof(*a));
}

const char *
dk_dns_rcode_name(int rcode)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
		"REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
		"NOTZONE",
	};

	if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	return "unknown rcode";
}

int
dk_dns_answer_error(const struct dk_addr *srv, const char *what,
    const struct dk_answer *a, struct dk_error *err)
{
	switch (a->rcode) {
	case LDNS_RCODE_NOERROR:
	case LDNS_RCODE_NXDOMAIN:
		return DK_OK;
	case LDNS_RCODE_REFUSED:
		return dk_err(err, DK_EPERM, "%s: %s: REFUSED", srv->text,
		    what);
	default:
		return dk_err(err, DK_ETEMP, "%s: %s: %s (%d)", srv->text,
		    what, dk_dns_rcode_name(a->rcode), a->rcode);
	}
}

int
dk_dns_find_zone(const struct dk_addr *resolver, const char *name,
    int timeout_ms, char **zone, struct dk_error *err)
{
	struct dk_answer a;
	ldns_rdf *cur = NULL, *parent, *z = NULL;
	char *s = NULL, what[300];
	int rc, i;

	memset(&a, 0, sizeof(a));
	if ((rc = make_dname(name, &cur, err)) != DK_OK)
		return rc;
	for (i = 0; i < MAX_ZONE_WALK; i++) {
		if ((s = dk_dns_name_str(cur)) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = dk_dns_query(resolver, s, DK_T_SOA, 1, timeout_ms,
		    &a, err)) != DK_OK)
			goto out;
		snprintf(what, sizeof(what), "SOA of %s", s);
		if ((rc = dk_dns_answer_error(resolver, what, &a, err)) !=
		    DK_OK)
			goto out;
		/*
		 * The SOA owner (answer at the name, or the authority of a
		 * negative answer) is the zone, provided it encloses name.
		 */
		if (a.soa_owner != NULL &&
		    (z = ldns_dname_new_frm_str(a.soa_owner)) != NULL &&
		    (ldns_dname_compare(z, cur) == 0 ||
		    ldns_dname_is_subdomain(cur, z))) {
			*zone = a.soa_owner;
			a.soa_owner = NULL;
			rc = DK_OK;
			goto out;
		}
		ldns_rdf_deep_free(z);
		z = NULL;
		dk_answer_clear(&a);
		free(s);
		s = NULL;
		if (ldns_dname_label_count(cur) == 0)
			break;
		if ((parent = ldns_dname_left_chop(cur)) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		ldns_rdf_deep_free(cur);
		cur = parent;
	}
	rc = dk_err(err, DK_ETEMP, "%s: no zone found for %s (no SOA in "
	    "answers)", resolver->text, name);
 out:
	ldns_rdf_deep_free(z);
	ldns_rdf_deep_free(cur);
	dk_answer_clear(&a);
	free(s);
	return rc;
}

int
dk_dns_ns_addrs(const struct dk_addr *resolver, const char *zone,
    uint16_t port, int timeout_ms, struct dk_addr **out, size_t *n,
    struct dk_error *err)
{
	static const int types[] = { DK_T_A, DK_T_AAAA };
	struct dk_answer ns, a;
	struct dk_addr *list = NULL, *nl, ad;
	char what[300];
	size_t cnt = 0, i, j, k;
	int rc, t;

	memset(&ns, 0, sizeof(ns));
	memset(&a, 0, sizeof(a));
	if ((rc = dk_dns_query(resolver, zone, DK_T_NS, 1, timeout_ms, &ns,
	    err)) != DK_OK)
		goto out;
	snprintf(what, sizeof(what), "NS of %s", zone);
	if ((rc = dk_dns_answer_error(resolver, what, &ns, err)) != DK_OK)
		goto out;
	if (ns.nnames == 0) {
		rc = dk_err(err, DK_ETEMP, "%s: no NS records for %s",
		    resolver->text, zone);
		goto out;
	}
	for (i = 0; i < ns.nnames; i++) {
		for (t = 0; t < 2; t++) {
			/*
			 * A failed lookup fails the whole list: probing only
			 * some servers could declare a record visible while
			 * another server does not serve it.
			 */
			if ((rc = dk_dns_query(resolver, ns.names[i], types[t],
			    1, timeout_ms, &a, err)) != DK_OK)
				goto out;
			snprintf(what, sizeof(what), "%s of %s",
			    t == 0 ? "A" : "AAAA", ns.names[i]);
			rc = dk_dns_answer_error(resolver, what, &a, err);
			if (rc != DK_OK)
				goto out;
			for (j = 0; j < a.nnames; j++) {
				if (dk_addr_parse(a.names[j], port, &ad,
				    NULL) != DK_OK)
					continue;
				for (k = 0; k < cnt; k++)
					if (dk_dns_addr_equal(&list[k].ss, &ad.ss))
						break;
				if (k < cnt)
					continue;
				nl = reallocarray(list, cnt + 1,
				    sizeof(*list));
				if (nl == NULL) {
					rc = dk_err(err, DK_ENOMEM,
					    "out of memory");
					goto out;
				}
				list = nl;
				list[cnt++] = ad;
			}
			dk_answer_clear(&a);
		}
	}
	if (cnt == 0) {
		rc = dk_err(err, DK_ETEMP, "%s: no addresses for the "
		    "nameservers of %s", resolver->text, zone);
		goto out;
	}
	*out = list;
	*n = cnt;
	list = NULL;
	rc = DK_OK;
 out:
	free(list);
	dk_answer_clear(&ns);
	dk_answer_clear(&a);
	return rc;
}

/*
 * Updates
 */

/* A TXT rdata from our strings: one length-prefixed STR rdf each. */
static int
push_txt_rdfs(ldns_rr *rr, const struct dk_txt *t)
{
	uint8_t buf[256];
	ldns_rdf *rdf;
	size_t i, len;

	if (t->nstr == 0)
		return DK_EINVAL;
	for (i = 0; i < t->nstr; i++) {
		len = strlen(t->str[i]);
		if (len > 255)
			return DK_EINVAL;
		buf[0] = (uint8_t)len;
		memcpy(buf + 1, t->str[i], len);
		if ((rdf = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, len + 1,
		    buf)) == NULL)
			return DK_ENOMEM;
		if (!ldns_rr_push_rdf(rr, rdf)) {
			ldns_rdf_deep_free(rdf);
			return DK_ENOMEM;
		}
	}
	return DK_OK;
}

static ldns_rr *
make_rr(const ldns_rdf *owner, ldns_rr_class cls, uint32_t ttl,
    const struct dk_txt *t, int *rc)
{
	ldns_rr *rr;
	ldns_rdf *o;

	*rc = DK_ENOMEM;
	if ((rr = ldns_rr_new()) == NULL)
		return NULL;
	if ((o = ldns_rdf_clone(owner)) == NULL) {
		ldns_rr_free(rr);
		return NULL;
	}
	ldns_rr_set_owner(rr, o);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	ldns_rr_set_class(rr, cls);
	ldns_rr_set_ttl(rr, ttl);
	if (t != NULL && (*rc = push_txt_rdfs(rr, t)) != DK_OK) {
		ldns_rr_free(rr);
		return NULL;
	}
	*rc = DK_OK;
	return rr;
}

static const char *
tsig_error_name(int e)
{
	switch (e) {
	case 16:	return "BADSIG";
	case 17:	return "BADKEY";
	case 18:	return "BADTIME";
	case 19:	return "BADMODE";
	case 20:	return "BADNAME";
	case 21:	return "BADALG";
	case 22:	return "BADTRUNC";
	}
	return "unknown";
}

static void
key_display(const struct dk_tsig *k, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", k->name);
	n = strlen(buf);
	if (n > 1 && buf[n - 1] == '.')
		buf[n - 1] = '\0';
}

/*
 * TSIG (RFC 8945), built here byte by byte.
 */

#define T_TSIG		250
#define C_ANY		255
#define NAME_MAX_WIRE	255
/* Fixed part of the TSIG variables (§4.3.3) besides the two names. */
#define TSIG_VARS_FIXED	(2 + 4 + 6 + 2 + 2 + 2)
/* A whole TSIG RR without other data: owner, header, RDATA. */
#define TSIG_RR_MAX	(NAME_MAX_WIRE + 10 + NAME_MAX_WIRE + 6 + 2 + 2 + \
			    DK_HMAC_MAX + 2 + 2 + 2)

/* What the MAC covers besides the message (§4.3.3). */
struct tsig_vars {
	uint8_t		 name[NAME_MAX_WIRE];	/* canonical wire form */
	size_t		 namelen;
	uint8_t		 alg[NAME_MAX_WIRE];
	size_t		 alglen;
	uint64_t	 signed_at;		/* 48 bits */
	uint16_t	 fudge;
	uint16_t	 error;
	uint16_t	 otherlen;
	const uint8_t	*other;
};

/* A TSIG RR found in a reply. */
struct tsig_rr {
	size_t		 start;		/* offset of the RR in the message */
	struct tsig_vars v;
	uint16_t	 cls;
	uint32_t	 ttl;
	uint16_t	 maclen;
	const uint8_t	*mac;
	uint16_t	 orig_id;
};

static uint8_t *
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
put32(uint8_t *p, uint32_t v)
{
	p = put16(p, (uint16_t)(v >> 16));
	return put16(p, (uint16_t)v);
}

static uint8_t *
put48(uint8_t *p, uint64_t v)
{
	p = put16(p, (uint16_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The algorithm name as it appears on the wire (RFC 8945 §6). */
static int
tsig_alg_wire(const char *alg, uint8_t *out, size_t *len)
{
	const char *s = strcmp(alg, "hmac-md5") == 0 ?
	    "hmac-md5.sig-alg.reg.int" : alg;
	size_t n = 0, l;
	const char *dot;

	while (*s != '\0') {
		dot = strchr(s, '.');
		l = dot != NULL ? (size_t)(dot - s) : strlen(s);
		if (l == 0 || l > 63 || n + 1 + l + 1 > NAME_MAX_WIRE)
			return -1;
		out[n++] = (uint8_t)l;
		memcpy(out + n, s, l);
		n += l;
		s += l;
		if (*s == '.')
			s++;
	}
	out[n++] = 0;
	*len = n;
	return 0;
}

/* A key name in canonical wire form: uncompressed, lower case (§4.3.3). */
static int
tsig_name_wire(const char *name, uint8_t *out, size_t *len)
{
	ldns_rdf *rdf;

	if ((rdf = ldns_dname_new_frm_str(name)) == NULL)
		return -1;
	ldns_dname2canonical(rdf);
	if (ldns_rdf_size(rdf) > NAME_MAX_WIRE) {
		ldns_rdf_deep_free(rdf);
		return -1;
	}
	memcpy(out, ldns_rdf_data(rdf), ldns_rdf_size(rdf));
	*len = ldns_rdf_size(rdf);
	ldns_rdf_deep_free(rdf);
	return 0;
}

/*
 * The MAC over [prior MAC] || message || TSIG variables (§4.3.3,
 * §5.3.1): the message as it was before the TSIG RR was added, so with
 * id as its ID and arcount as its ARCOUNT.
 */
static int
tsig_mac(const struct dk_tsig *k, const uint8_t *prior, size_t priorlen,
    const uint8_t *msg, size_t msglen, uint16_t id, uint16_t arcount,
    const struct tsig_vars *v, uint8_t *mac, size_t *maclen,
    struct dk_error *err)
{
	unsigned char *key = NULL;
	uint8_t *buf = NULL, *p;
	size_t keylen = 0, n;
	int rc;

	n = (prior != NULL ? 2 + priorlen : 0) + msglen + v->namelen +
	    v->alglen + TSIG_VARS_FIXED + v->otherlen;
	if ((buf = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	p = buf;
	if (prior != NULL) {
		p = put16(p, (uint16_t)priorlen);
		memcpy(p, prior, priorlen);
		p += priorlen;
	}
	memcpy(p, msg, msglen);
	put16(p, id);
	put16(p + 10, arcount);
	p += msglen;
	memcpy(p, v->name, v->namelen);
	p += v->namelen;
	p = put16(p, C_ANY);
	p = put32(p, 0);		/* TTL */
	memcpy(p, v->alg, v->alglen);
	p += v->alglen;
	p = put48(p, v->signed_at);
	p = put16(p, v->fudge);
	p = put16(p, v->error);
	p = put16(p, v->otherlen);
	if (v->otherlen > 0)
		memcpy(p, v->other, v->otherlen);
	if (dk_base64_decode(k->secret_b64, strlen(k->secret_b64), &key,
	    &keylen) != DK_OK) {
		rc = dk_err(err, DK_ECONFIG, "TSIG key \"%s\": secret is not "
		    "valid base64", k->name);
		goto out;
	}
	rc = dk_hmac(k->algorithm, key, keylen, buf, n, mac, maclen, err);
 out:
	if (key != NULL) {
		explicit_bzero(key, keylen);
		free(key);
	}
	free(buf);
	return rc;
}

/*
 * Sign msg (§4.3.1): *out is msg with the TSIG RR appended and ARCOUNT
 * incremented (malloc'd); mac receives the request MAC, which the reply's
 * MAC covers (§5.3.1).
 */
static int
tsig_sign(const struct dk_tsig *k, const uint8_t *msg, size_t len,
    uint8_t **out, size_t *outlen, uint8_t *mac, size_t *maclen,
    struct dk_error *err)
{
	struct tsig_vars v;
	uint8_t rr[TSIG_RR_MAX], m[DK_HMAC_MAX], *p, *rdlen, *buf;
	uint16_t id, ar;
	size_t mlen, n;
	int rc;

	if (len < 12 || (ar = get16(msg + 10)) == 0xffff)
		return dk_err(err, DK_EINVAL, "cannot sign a malformed "
		    "message");
	memset(&v, 0, sizeof(v));
	if (tsig_name_wire(k->name, v.name, &v.namelen) == -1 ||
	    tsig_alg_wire(k->algorithm, v.alg, &v.alglen) == -1)
		return dk_err(err, DK_ECONFIG, "TSIG key \"%s\" (%s) cannot "
		    "be put on the wire", k->name, k->algorithm);
	v.signed_at = (uint64_t)time(NULL);
	v.fudge = TSIG_FUDGE;
	id = get16(msg);
	if ((rc = tsig_mac(k, NULL, 0, msg, len, id, ar, &v, m, &mlen,
	    err)) != DK_OK)
		return rc;

	/* §4.2: owner, TYPE, CLASS ANY, TTL 0, RDLENGTH, RDATA. */
	p = rr;
	memcpy(p, v.name, v.namelen);
	p += v.namelen;
	p = put16(p, T_TSIG);
	p = put16(p, C_ANY);
	p = put32(p, 0);
	rdlen = p;
	p += 2;
	memcpy(p, v.alg, v.alglen);
	p += v.alglen;
	p = put48(p, v.signed_at);
	p = put16(p, v.fudge);
	p = put16(p, (uint16_t)mlen);
	memcpy(p, m, mlen);
	p += mlen;
	p = put16(p, id);		/* original ID */
	p = put16(p, 0);		/* error */
	p = put16(p, 0);		/* other len */
	put16(rdlen, (uint16_t)(p - rdlen - 2));
	n = (size_t)(p - rr);

	if ((buf = malloc(len + n)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	memcpy(buf, msg, len);
	memcpy(buf + len, rr, n);
	put16(buf + 10, (uint16_t)(ar + 1));
	memcpy(mac, m, mlen);
	*maclen = mlen;
	*out = buf;
	*outlen = len + n;
	return DK_OK;
}

/* Step over a name, compressed or not. */
static int
skip_name(const uint8_t *m, size_t n, size_t *off)
{
	size_t p = *off;

	while (p < n) {
		if (m[p] == 0) {
			*off = p + 1;
			return 0;
		}
		if ((m[p] & 0xc0) == 0xc0) {
			if (p + 2 > n)
				return -1;
			*off = p + 2;
			return 0;
		}
		if ((m[p] & 0xc0) != 0)
			return -1;
		p += 1 + (size_t)m[p];
	}
	return -1;
}

/* Read a name into canonical wire form (expanded, lower case). */
static int
read_name(const uint8_t *m, size_t n, size_t *off, uint8_t *out,
    size_t *outlen)
{
	size_t p = *off, o = 0, end = 0, i;
	int jumps = 0;
	uint8_t c, l;

	for (;;) {
		if (p >= n)
			return -1;
		l = m[p];
		if ((l & 0xc0) == 0xc0) {
			if (p + 2 > n || ++jumps > 64)
				return -1;
			if (end == 0)
				end = p + 2;
			p = (size_t)(l & 0x3f) << 8 | m[p + 1];
			continue;
		}
		if ((l & 0xc0) != 0 || p + 1 + l > n ||
		    o + 1 + l > NAME_MAX_WIRE)
			return -1;
		out[o++] = l;
		for (i = 0; i < l; i++) {
			c = m[p + 1 + i];
			out[o++] = c >= 'A' && c <= 'Z' ? c + 32 : c;
		}
		p += 1 + (size_t)l;
		if (l == 0)
			break;
	}
	*off = end != 0 ? end : p;
	*outlen = o;
	return 0;
}

/*
 * Find the reply's TSIG RR, which must be the last additional RR
 * (§5.2).  Returns 1 and fills t when there is one, 0 when the message
 * is unsigned, -1 when it is malformed.
 */
static int
find_tsig(const uint8_t *m, size_t n, struct tsig_rr *t)
{
	size_t p = 12, start = 0, rd, i, total, nonadd;
	uint16_t type, rdlen;
	int found = 0;

	if (n < 12)
		return -1;
	for (i = 0; i < get16(m + 4); i++) {
		if (skip_name(m, n, &p) == -1 || p + 4 > n)
			return -1;
		p += 4;
	}
	nonadd = (size_t)get16(m + 6) + get16(m + 8);
	total = nonadd + get16(m + 10);
	for (i = 0; i < total; i++) {
		start = p;
		if (skip_name(m, n, &p) == -1 || p + 10 > n)
			return -1;
		type = get16(m + p);
		rdlen = get16(m + p + 8);
		p += 10;
		if (p + rdlen > n)
			return -1;
		p += rdlen;
		if (type == T_TSIG) {
			if (i + 1 != total || i < nonadd)
				return -1;
			found = 1;
		}
	}
	if (!found)
		return 0;
	if (p != n)
		return -1;

	memset(t, 0, sizeof(*t));
	t->start = start;
	p = start;
	if (read_name(m, n, &p, t->v.name, &t->v.namelen) == -1)
		return -1;
	t->cls = get16(m + p + 2);
	t->ttl = (uint32_t)get16(m + p + 4) << 16 | get16(m + p + 6);
	rdlen = get16(m + p + 8);
	p += 10;
	rd = p;
	if (read_name(m, n, &p, t->v.alg, &t->v.alglen) == -1 ||
	    p + 10 > rd + rdlen)
		return -1;
	for (i = 0; i < 6; i++)
		t->v.signed_at = t->v.signed_at << 8 | m[p + i];
	t->v.fudge = get16(m + p + 6);
	t->maclen = get16(m + p + 8);
	p += 10;
	if (p + t->maclen + 6 > rd + rdlen)
		return -1;
	t->mac = m + p;
	p += t->maclen;
	t->orig_id = get16(m + p);
	t->v.error = get16(m + p + 2);
	t->v.otherlen = get16(m + p + 4);
	p += 6;
	if (p + t->v.otherlen != rd + rdlen)
		return -1;
	t->v.other = m + p;
	return 1;
}

/* Compare MACs in time that does not depend on where they differ. */
static int
mac_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/*
 * Check the reply's TSIG before believing anything (RFC 8945 §5.3.2):
 * the TSIG error field first, so that BADKEY, BADSIG and BADTIME are
 * told apart, then key, MAC and time window.  A reply without TSIG is
 * left to the caller, which decides by rcode.
 */
static int
check_reply_tsig(const struct dk_addr *srv, const char *owner,
    const struct dk_tsig *tsig, const ldns_pkt *reply, const uint8_t *wire,
    size_t wlen, const uint8_t *query_mac, size_t query_maclen,
    int *signed_ok, struct dk_error *err)
{
	const char *rname = dk_dns_rcode_name(ldns_pkt_get_rcode(reply));
	struct tsig_rr t;
	uint8_t kname_w[NAME_MAX_WIRE], alg_w[NAME_MAX_WIRE], mac[DK_HMAC_MAX];
	char kname[256];
	size_t kname_len, alg_len, maclen;
	int64_t now;
	int rc;

	*signed_ok = 0;
	key_display(tsig, kname, sizeof(kname));
	if ((rc = find_tsig(wire, wlen, &t)) == 0)
		return DK_OK;
	if (rc == -1 || t.cls != C_ANY || t.ttl != 0)
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: malformed TSIG "
		    "in reply", srv->text, owner);
	switch (t.v.error) {
	case 0:
		break;
	case 16:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error BADSIG (wrong secret for key \"%s\"?)",
		    srv->text, owner, rname, kname);
	case 17:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error BADKEY (server does not know key \"%s\" with "
		    "algorithm %s)", srv->text, owner, rname, kname,
		    tsig->algorithm);
	case 18:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error BADTIME (clocks differ by more than %ds?)",
		    srv->text, owner, rname, TSIG_FUDGE);
	default:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error %s (%d)", srv->text, owner, rname,
		    tsig_error_name(t.v.error), t.v.error);
	}
	if (tsig_name_wire(tsig->name, kname_w, &kname_len) == -1 ||
	    tsig_alg_wire(tsig->algorithm, alg_w, &alg_len) == -1)
		return dk_err(err, DK_ECONFIG, "TSIG key \"%s\" (%s) cannot "
		    "be put on the wire", kname, tsig->algorithm);
	if (t.v.namelen != kname_len ||
	    memcmp(t.v.name, kname_w, kname_len) != 0 ||
	    t.v.alglen != alg_len || memcmp(t.v.alg, alg_w, alg_len) != 0)
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply signed "
		    "with another key than \"%s\" (%s)", srv->text, owner,
		    kname, tsig->algorithm);
	/* The reply as it was before its TSIG RR was added. */
	if ((rc = tsig_mac(tsig, query_mac, query_maclen, wire, t.start,
	    t.orig_id, (uint16_t)(get16(wire + 10) - 1), &t.v, mac, &maclen,
	    err)) != DK_OK)
		return rc;
	/* We never ask for truncated MACs (§5.2.2.1): full length only. */
	if (t.maclen != maclen || !mac_equal(t.mac, mac, maclen))
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply TSIG "
		    "verification failed", srv->text, owner);
	now = (int64_t)time(NULL);
	if ((int64_t)t.v.signed_at > now + t.v.fudge ||
	    (int64_t)t.v.signed_at < now - t.v.fudge)
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply TSIG time "
		    "is outside the %ds window (clocks differ?)", srv->text,
		    owner, (int)t.v.fudge);
	*signed_ok = 1;
	return DK_OK;
}

static int
update_rcode(const struct dk_addr *srv, const char *owner, int rcode,
    const char *note, struct dk_error *err)
{
	const char *rn = dk_dns_rcode_name(rcode);

	switch (rcode) {
	case LDNS_RCODE_NOERROR:
		return DK_OK;
	case LDNS_RCODE_YXRRSET:
		return dk_err(err, DK_EMISMATCH, "%s: UPDATE of %s: "
		    "prerequisite failed: YXRRSET (a TXT record exists)%s",
		    srv->text, owner, note);
	case LDNS_RCODE_NXRRSET:
		return dk_err(err, DK_EMISMATCH, "%s: UPDATE of %s: "
		    "prerequisite failed: NXRRSET (the TXT record is not the "
		    "expected one)%s", srv->text, owner, note);
	case LDNS_RCODE_SERVFAIL:
		return dk_err(err, DK_ETEMP, "%s: UPDATE of %s failed: "
		    "SERVFAIL%s", srv->text, owner, note);
	case LDNS_RCODE_REFUSED:
	case LDNS_RCODE_NOTAUTH:
	case LDNS_RCODE_NOTZONE:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s%s",
		    srv->text, owner, rn, note);
	default:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s failed: %s "
		    "(%d)%s", srv->text, owner, rn, rcode, note);
	}
}

/* Wire length of a name (no compression), as an upper bound. */
static size_t
name_wire_max(const char *name)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	return n + 2;
}

/* RDLENGTH of a TXT rdata made of t's strings. */
static size_t
txt_rdlen(const struct dk_txt *t)
{
	size_t i, n = 0;

	for (i = 0; t != NULL && i < t->nstr; i++)
		n += 1 + strlen(t->str[i]);
	return n;
}

/*
 * An upper bound of what a change adds to an UPDATE (names written out
 * in full): prerequisite, RRset delete, new RR.
 */
static size_t
change_wire_max(const struct dk_dns_change *ch)
{
	size_t l = name_wire_max(ch->owner) + 10;

	return l + txt_rdlen(ch->old) + l + (ch->new != NULL ?
	    l + txt_rdlen(ch->new) : 0);
}

/*
 * Append one owner's TXT replacement to the prerequisite and update
 * sections (RFC 2136 §2.4, §2.5).  DK_EINVAL for bad TXT strings.
 */
static int
push_txt_change(ldns_rr_list *pr, ldns_rr_list *up, const ldns_rdf *oname,
    const struct dk_txt *old, const struct dk_txt *new, uint32_t ttl)
{
	ldns_rr *rr;
	int rc;

	if (old == NULL)	/* §2.4.3 RRset does not exist */
		rr = make_rr(oname, LDNS_RR_CLASS_NONE, 0, NULL, &rc);
	else			/* §2.4.2 RRset exists (value dependent) */
		rr = make_rr(oname, LDNS_RR_CLASS_IN, 0, old, &rc);
	if (rr == NULL)
		return rc;
	if (!ldns_rr_list_push_rr(pr, rr))
		goto nomem;
	/* §2.5.2 delete the RRset, then §2.5.1 add the new RR. */
	if ((rr = make_rr(oname, LDNS_RR_CLASS_ANY, 0, NULL, &rc)) == NULL)
		return rc;
	if (!ldns_rr_list_push_rr(up, rr))
		goto nomem;
	if (new != NULL) {
		if ((rr = make_rr(oname, LDNS_RR_CLASS_IN, ttl, new, &rc)) ==
		    NULL)
			return rc;
		if (!ldns_rr_list_push_rr(up, rr))
			goto nomem;
	}
	return DK_OK;
 nomem:
	ldns_rr_free(rr);
	return DK_ENOMEM;
}

/*
 * Send one UPDATE of zone made of the prerequisite and update sections
 * over TCP, signed with tsig (NULL: unsigned), and judge the reply: its
 * TSIG first, then its rcode (see dk_dns_update_txt).  what names the
 * change in messages ("mail._domainkey.example.com", "12 records").
 */
static int
send_update(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const ldns_rr_list *pr,
    const ldns_rr_list *up, const char *what, int timeout_ms,
    struct dk_error *err)
{
	ldns_rdf *zname = NULL;
	ldns_pkt *q = NULL, *reply = NULL;
	uint8_t *wire = NULL, *swire = NULL, *rwire = NULL;
	uint8_t qmac[DK_HMAC_MAX];
	size_t wlen = 0, swlen = 0, rlen = 0, qmaclen = 0;
	uint16_t id = random_id();
	int rc, signed_ok = 0;

	if ((rc = make_dname(zone, &zname, err)) != DK_OK)
		return rc;
	/* ldns_update_pkt_new takes zname and copies the lists. */
	q = ldns_update_pkt_new(zname, LDNS_RR_CLASS_IN, pr, up, NULL);
	if (q == NULL) {
		ldns_rdf_deep_free(zname);
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	ldns_pkt_set_id(q, id);
	ldns_pkt_set_rd(q, false);
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK) {
		rc = dk_err(err, DK_EINVAL, "cannot build UPDATE of %s", what);
		goto out;
	}
	if (tsig != NULL) {
		if ((rc = tsig_sign(tsig, wire, wlen, &swire, &swlen, qmac,
		    &qmaclen, err)) != DK_OK) {
			dk_err_prefix(err, "cannot sign UPDATE of %s", what);
			goto out;
		}
	}
	if ((rc = tcp_exchange(primary, swire != NULL ? swire : wire,
	    swire != NULL ? swlen : wlen, timeout_ms, &rwire, &rlen, err)) !=
	    DK_OK) {
		dk_err_prefix(err, "UPDATE of %s", what);
		goto out;
	}
	if (ldns_wire2pkt(&reply, rwire, rlen) != LDNS_STATUS_OK) {
		reply = NULL;
		rc = dk_err(err, DK_ETEMP, "%s: UPDATE of %s: malformed reply",
		    primary->text, what);
		goto out;
	}
	if (ldns_pkt_id(reply) != id || !ldns_pkt_qr(reply) ||
	    ldns_pkt_get_opcode(reply) != LDNS_PACKET_UPDATE) {
		rc = dk_err(err, DK_ETEMP, "%s: UPDATE of %s: reply does not "
		    "match the request", primary->text, what);
		goto out;
	}
	if (tsig != NULL) {
		if ((rc = check_reply_tsig(primary, what, tsig, reply, rwire,
		    rlen, qmac, qmaclen, &signed_ok, err)) != DK_OK)
			goto out;
		if (!signed_ok && ldns_pkt_get_rcode(reply) ==
		    LDNS_RCODE_NOERROR) {
			/* RFC 8945 §5.3.1: never trust an unsigned success. */
			rc = dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply "
			    "is not signed", primary->text, what);
			goto out;
		}
	}
	rc = update_rcode(primary, what, ldns_pkt_get_rcode(reply),
	    tsig != NULL && !signed_ok ? " (reply not signed)" : "", err);
 out:
	ldns_pkt_free(q);
	ldns_pkt_free(reply);
	LDNS_FREE(wire);
	free(swire);
	free(rwire);
	return rc;
}

/* owner as a dname inside zone; DK_EINVAL otherwise. */
static int
owner_in_zone(const char *owner, const char *zone, ldns_rdf **out,
    struct dk_error *err)
{
	ldns_rdf *zname = NULL, *oname = NULL;
	int rc;

	if ((rc = make_dname(zone, &zname, err)) != DK_OK ||
	    (rc = make_dname(owner, &oname, err)) != DK_OK)
		goto out;
	if (!ldns_dname_is_subdomain(oname, zname) &&
	    ldns_dname_compare(oname, zname) != 0) {
		rc = dk_err(err, DK_EINVAL, "%s is not in zone %s", owner,
		    zone);
		goto out;
	}
	*out = oname;
	oname = NULL;
 out:
	ldns_rdf_deep_free(zname);
	ldns_rdf_deep_free(oname);
	return rc;
}

int
dk_dns_update_txt(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, int timeout_ms,
    struct dk_error *err)
{
	ldns_rdf *oname = NULL;
	ldns_rr_list *pr = NULL, *up = NULL;
	int rc;

	if ((rc = owner_in_zone(owner, zone, &oname, err)) != DK_OK)
		return rc;
	if ((pr = ldns_rr_list_new()) == NULL ||
	    (up = ldns_rr_list_new()) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = push_txt_change(pr, up, oname, old, new, ttl)) != DK_OK) {
		rc = dk_err(err, rc, "cannot build UPDATE of %s: %s", owner,
		    rc == DK_EINVAL ? "bad TXT strings" : "out of memory");
		goto out;
	}
	rc = send_update(primary, zone, tsig, pr, up, owner, timeout_ms, err);
 out:
	ldns_rr_list_deep_free(pr);
	ldns_rr_list_deep_free(up);
	ldns_rdf_deep_free(oname);
	return rc;
}

/*
 * Most a batch message may hold besides its TSIG RR: the 64 KiB TCP
 * message limit (RFC 1035 §4.2.2), header and zone section.
 */
static size_t
batch_room(const char *zone)
{
	return 65535 - TSIG_RR_MAX - 12 - (name_wire_max(zone) + 4);
}

/* Record a change's outcome (and keep the first failure in err). */
static void
batch_set(size_t i, int rc, const struct dk_error *e, int *status,
    struct dk_error *errs, int *first, struct dk_error *err)
{
	status[i] = rc;
	if (errs != NULL) {
		if (rc == DK_OK)
			memset(&errs[i], 0, sizeof(errs[i]));
		else
			errs[i] = *e;
	}
	if (rc != DK_OK && *first == DK_OK) {
		*first = rc;
		if (err != NULL)
			*err = *e;
	}
}

/* One UPDATE with the changes sel[0..k), whose owners are valid. */
static int
send_batch(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const struct dk_dns_change *changes,
    ldns_rdf **onames, const size_t *sel, size_t k, int timeout_ms,
    unsigned *messages, struct dk_error *err)
{
	ldns_rr_list *pr = NULL, *up = NULL;
	const struct dk_dns_change *ch;
	char what[300];
	size_t i;
	int rc = DK_OK;

	if ((pr = ldns_rr_list_new()) == NULL ||
	    (up = ldns_rr_list_new()) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < k; i++) {
		ch = &changes[sel[i]];
		if ((rc = push_txt_change(pr, up, onames[sel[i]], ch->old,
		    ch->new, ch->ttl)) != DK_OK) {
			rc = dk_err(err, rc, "cannot build UPDATE of %s: %s",
			    ch->owner, rc == DK_EINVAL ? "bad TXT strings" :
			    "out of memory");
			goto out;
		}
	}
	if (k == 1)
		snprintf(what, sizeof(what), "%s", changes[sel[0]].owner);
	else
		snprintf(what, sizeof(what), "%zu records in %s", k, zone);
	if (messages != NULL)
		(*messages)++;
	rc = send_update(primary, zone, tsig, pr, up, what, timeout_ms, err);
 out:
	ldns_rr_list_deep_free(pr);
	ldns_rr_list_deep_free(up);
	return rc;
}

/* status[i] while change i waits to be sent (codes are 0 or negative). */
#define PENDING	1

int
dk_dns_update_batch(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const struct dk_dns_change *changes,
    size_t n, int timeout_ms, int *status, struct dk_error *errs,
    unsigned *messages, struct dk_error *err)
{
	struct dk_error e;
	ldns_rdf **onames = NULL;
	size_t *sel = NULL, room = batch_room(zone), i, k, used, sz;
	int rc, first = DK_OK;

	if (n == 0)
		return DK_OK;
	if ((onames = calloc(n, sizeof(*onames))) == NULL ||
	    (sel = calloc(n, sizeof(*sel))) == NULL) {
		memset(&e, 0, sizeof(e));
		dk_err(&e, DK_ENOMEM, "out of memory");
		for (i = 0; i < n; i++)
			batch_set(i, DK_ENOMEM, &e, status, errs, &first, err);
		goto out;
	}
	/* A name outside the zone fails alone; the others still go. */
	for (i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		status[i] = PENDING;
		if ((rc = owner_in_zone(changes[i].owner, zone, &onames[i],
		    &e)) != DK_OK)
			batch_set(i, rc, &e, status, errs, &first, err);
		else if (change_wire_max(&changes[i]) > room)
			batch_set(i, dk_err(&e, DK_EINVAL, "UPDATE of %s: "
			    "record too large for one message",
			    changes[i].owner), &e, status, errs, &first, err);
	}
	for (;;) {
		/* Fill one message with pending changes, in order. */
		for (i = 0, k = 0, used = 0; i < n; i++) {
			if (status[i] != PENDING)
				continue;
			sz = change_wire_max(&changes[i]);
			if (used + sz > room)
				break;
			used += sz;
			sel[k++] = i;
		}
		if (k == 0)
			break;
		memset(&e, 0, sizeof(e));
		rc = send_batch(primary, zone, tsig, changes, onames, sel, k,
		    timeout_ms, messages, &e);
		if (rc == DK_EMISMATCH && k > 1) {
			/*
			 * One message is atomic (RFC 2136 §3.2): a single
			 * prerequisite failing failed them all, and the
			 * reply does not say which.  Send each on its own,
			 * so that one foreign record holds back only itself.
			 */
			for (i = 0; i < k; i++) {
				memset(&e, 0, sizeof(e));
				rc = send_batch(primary, zone, tsig, changes,
				    onames, &sel[i], 1, timeout_ms, messages,
				    &e);
				batch_set(sel[i], rc, &e, status, errs, &first,
				    err);
			}
			continue;
		}
		for (i = 0; i < k; i++)
			batch_set(sel[i], rc, &e, status, errs, &first, err);
	}
 out:
	for (i = 0; onames != NULL && i < n; i++)
		ldns_rdf_deep_free(onames[i]);
	free(onames);
	free(sel);
	return first;
}

int
dk_dns_update_cname(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const char *owner, const char *target,
    uint32_t ttl, int timeout_ms, struct dk_error *err)
{
	ldns_rdf *oname = NULL, *tname = NULL;
	ldns_rr_list *pr = NULL, *up = NULL;
	ldns_rr *rr = NULL;
	int rc;

	if ((rc = owner_in_zone(owner, zone, &oname, err)) != DK_OK)
		return rc;
	if (target != NULL && (rc = make_dname(target, &tname, err)) != DK_OK)
		goto out;
	if ((pr = ldns_rr_list_new()) == NULL ||
	    (up = ldns_rr_list_new()) == NULL)
		goto nomem;
	/*
	 * §2.4.3: no TXT RRset at owner.  A CNAME cannot share its name
	 * with other data (RFC 1034 §3.6.2), and a TXT record there is
	 * somebody's key: servers would drop the CNAME silently.
	 */
	if ((rr = make_rr(oname, LDNS_RR_CLASS_NONE, 0, NULL, &rc)) == NULL)
		goto nomem;
	if (!ldns_rr_list_push_rr(pr, rr))
		goto nomem;
	/* §2.5.2 delete the CNAME RRset, then §2.5.1 add the new one. */
	if ((rr = make_rr(oname, LDNS_RR_CLASS_ANY, 0, NULL, &rc)) == NULL)
		goto nomem;
	ldns_rr_set_type(rr, LDNS_RR_TYPE_CNAME);
	if (!ldns_rr_list_push_rr(up, rr))
		goto nomem;
	if (tname != NULL) {
		if ((rr = make_rr(oname, LDNS_RR_CLASS_IN, ttl, NULL, &rc)) ==
		    NULL)
			goto nomem;
		ldns_rr_set_type(rr, LDNS_RR_TYPE_CNAME);
		if (!ldns_rr_push_rdf(rr, tname))
			goto nomem;
		tname = NULL;
		if (!ldns_rr_list_push_rr(up, rr))
			goto nomem;
	}
	rr = NULL;
	rc = send_update(primary, zone, tsig, pr, up, owner, timeout_ms, err);
	goto out;
 nomem:
	ldns_rr_free(rr);
	rc = dk_err(err, DK_ENOMEM, "cannot build UPDATE of %s: out of "
	    "memory", owner);
 out:
	ldns_rr_list_deep_free(pr);
	ldns_rr_list_deep_free(up);
	ldns_rdf_deep_free(oname);
	ldns_rdf_deep_free(tname);
	return rc;
}

/*
 * Probes
 */

static void
probe_one(const struct dk_addr *addr, const char *owner,
    const struct dk_record *expected, int timeout_ms, struct dk_probe *res)
{
	struct dk_error e;
	struct dk_answer a;
	struct dk_record *got = NULL;
	char *text = NULL;
	int rc;

	memset(&e, 0, sizeof(e));
	memset(&a, 0, sizeof(a));
	res->addr = *addr;
	res->detail[0] = '\0';
	if ((rc = dk_dns_query(addr, owner, DK_T_TXT, 0, timeout_ms, &a,
	    &e)) != DK_OK) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail), "%.200s", e.msg);
		goto out;
	}
	if (a.rcode != LDNS_RCODE_NOERROR && a.rcode != LDNS_RCODE_NXDOMAIN) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail), "%s",
		    dk_dns_rcode_name(a.rcode));
		goto out;
	}
	if (!a.aa) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail),
		    "not authoritative for %s", owner);
		goto out;
	}
	if (expected == NULL) {
		if (a.ntxt == 0) {
			res->status = DK_OK;
			snprintf(res->detail, sizeof(res->detail), "absent (%s)",
			    a.rcode == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN" :
			    "NODATA");
		} else {
			res->status = DK_EMISMATCH;
			snprintf(res->detail, sizeof(res->detail),
			    "%zu TXT record(s) where none should be", a.ntxt);
		}
		goto out;
	}
	if (a.ntxt == 0) {
		res->status = DK_ENOTFOUND;
		snprintf(res->detail, sizeof(res->detail), "no TXT record (%s)",
		    a.rcode == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN" : "NODATA");
		goto out;
	}
	if (a.ntxt > 1) {
		res->status = DK_EMISMATCH;
		snprintf(res->detail, sizeof(res->detail),
		    "%zu TXT records, expected exactly one", a.ntxt);
		goto out;
	}
	if (dk_txt_join(&a.txt[0], &text) != DK_OK) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail), "out of memory");
		goto out;
	}
	if (dk_record_parse(text, strlen(text), &got, &e) != DK_OK) {
		res->status = DK_EMISMATCH;
		snprintf(res->detail, sizeof(res->detail),
		    "served record does not parse: %.200s", e.msg);
		goto out;
	}
	if (!dk_record_equal(expected, got)) {
		res->status = DK_EMISMATCH;
		snprintf(res->detail, sizeof(res->detail),
		    "serves a different record");
		goto out;
	}
	res->status = DK_OK;
	snprintf(res->detail, sizeof(res->detail), "serves the record");
 out:
	dk_record_free(got);
	free(text);
	dk_answer_clear(&a);
}

size_t
dk_dns_probe_txt(const struct dk_addr *addrs, size_t n, const char *owner,
    const struct dk_record *expected, int timeout_ms,
    struct dk_probe *results)
{
	size_t i, ok = 0;

	for (i = 0; i < n; i++) {
		probe_one(&addrs[i], owner, expected, timeout_ms, &results[i]);
		if (results[i].status == DK_OK)
			ok++;
	}
	return ok;
}
