/*
 * lib/dns_addr.c — server addresses: numeric IPv4 and IPv6 with a port,
 * lists of them, and the system resolver of /etc/resolv.conf.  Part of
 * the DNS module (lib/dns.h).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "dns_int.h"
#include "fileio.h"

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

	char why[sizeof(err->msg)];
	int fd;

	/* A FIFO or a device there must not hang us: refused. */
	if (dk_file_open_input(path, 0, DK_ECONFIG, &fd, NULL, err) != DK_OK) {
		snprintf(why, sizeof(why), "%s", err->msg);
		return dk_err(err, DK_ECONFIG, "%s (set resolver = in the "
		    "provider section)", why);
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		return dk_err(err, DK_ECONFIG, "%s: %s", path,
		    strerror(errno));
	}
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
