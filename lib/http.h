/*
 * lib/http.h — HTTP(S) requests for the API providers (libcurl).  The only
 * module that calls libcurl; its handles and option rules stay in http.c.
 *
 * TLS peer and host verification are always on (an optional ca_file
 * replaces the system store).  Redirects are never followed (a token
 * header must not travel to another host), only http and https are
 * spoken, curl's verbose output is never enabled (it would print request
 * headers, tokens included).  Status mapping, done here once for every
 * provider:
 *   2xx                 DK_OK
 *   401, 403            DK_EPERM naming the service and the API's own text
 *   429, 5xx            retried when the request allows it, never before
 *                       the server's Retry-After (capped); then DK_ETEMP
 *   timeout, unreachable DK_ETEMP
 *   other 4xx           DK_EPERM with the API's text
 *   body over max_body  DK_EPERM
 */
#ifndef DK_HTTP_H
#define DK_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "dk.h"

/*
 * A request pace shared by every handle of one provider section: at most
 * rate requests per second (requests are delayed, never refused).  The
 * caller owns it; zero-initialise, then set rate.
 */
struct dk_http_pace {
	double		rate;		/* requests per second; <= 0: none */
	int64_t		next_ns;	/* monotonic time the next may start */
};

struct dk_http_opts {
	const char	*service;	/* "powerdns": named in messages */
	const char	*ca_file;	/* PEM bundle, or NULL: system store */
	int		 timeout_ms;	/* whole call, retries included */
	int		 connect_timeout_ms; /* 0: min(timeout, 10 s) */
	size_t		 max_body;	/* 0: 8 MiB */
	int		 max_attempts;	/* 0: 3 */
	int		 retry_after_cap_s; /* longest wait; 0: 30 s */
	struct dk_http_pace *pace;	/* NULL: no pacing */
	/*
	 * Optional: the API's own error text from an error body (JSON
	 * "error" field, ...), written to buf; return 0 when found.
	 */
	int	(*errtext)(const char *body, size_t len, char *buf,
		    size_t buflen);
	/*
	 * Optional: does this error answer (not 401/403, 429 or 5xx) still
	 * mean "not done, try later" (Route 53's 400 Throttling)?  Then it
	 * is treated as a 429.
	 */
	int	(*temporary)(long status, const char *body, size_t len);
};

struct dk_http;

/* A handle (one connection cache); opts is copied, strings borrowed. */
int		 dk_http_new(const struct dk_http_opts *, struct dk_http **out,
		    struct dk_error *err);
void		 dk_http_free(struct dk_http *);

struct dk_http_request {
	const char		*method;	/* "GET", "PATCH", ... */
	const char		*url;
	const char *const	*headers;	/* "Name: value", NULL-ended;
						   may carry secrets: never
						   logged */
	const char		*body;		/* NULL: none */
	size_t			 body_len;
	int			 idempotent;	/* may be resent after a 5xx */
};

struct dk_http_response {
	long		 status;
	char		*body;		/* NUL-terminated, malloc'd */
	size_t		 body_len;
	char		*headers;	/* the last response's header block */
	long		 retry_after;	/* seconds, -1 when none */
};

/*
 * Send req, with retries as described above.  On DK_OK, *resp holds the
 * 2xx response (free with dk_http_response_clear).  On a failure after
 * an HTTP answer, resp (when not NULL) still receives it, so that the
 * caller may look at a 404 or 422 body; the message in err names the
 * service, the method, the URL's path and the API's text, never a
 * request header.
 */
int		 dk_http_do(struct dk_http *, const struct dk_http_request *,
		    struct dk_http_response *resp, struct dk_error *err);
void		 dk_http_response_clear(struct dk_http_response *);

/* A response header's value (first match, case-insensitive), malloc'd. */
char		*dk_http_response_header(const struct dk_http_response *,
		    const char *name);

/* Requests sent through h since dk_http_new (retries count). */
unsigned	 dk_http_requests(const struct dk_http *);

/* Percent-encode s for a URL path segment or query value; malloc'd. */
char		*dk_http_escape(const char *s);

#endif
