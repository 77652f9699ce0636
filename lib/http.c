/*
 * lib/http.c — HTTP(S) for the API providers: the only file that calls
 * libcurl.  See http.h for the contract.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"

#define DEFAULT_MAX_BODY	(8u << 20)
#define DEFAULT_ATTEMPTS	3
#define DEFAULT_RETRY_CAP_S	30
#define MAX_CONNECT_MS		10000
#define MAX_HEADERS		(64u << 10)
#define BACKOFF_MS		500	/* first wait without Retry-After */

struct dk_http {
	CURL			*curl;
	struct dk_http_opts	 o;
	unsigned		 nreq;
};

struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
	int	 over;		/* the limit was hit */
};

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleep until the monotonic instant t (through signals). */
static void
sleep_until(int64_t t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(t / 1000000000);
	ts.tv_nsec = (long)(t % 1000000000);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

static int
buf_add(struct buf *b, const char *p, size_t n)
{
	size_t ncap;
	char *np;

	if (b->len + n > b->max) {
		b->over = 1;
		return -1;
	}
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 4096;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	return buf_add(arg, p, size * n) == 0 ? size * n : 0;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	/* A new status line (after 100 Continue): keep only the last. */
	if (size * n >= 5 && strncmp(p, "HTTP/", 5) == 0)
		b->len = 0;
	return buf_add(b, p, size * n) == 0 ? size * n : 0;
}

int
dk_http_new(const struct dk_http_opts *o, struct dk_http **out,
    struct dk_error *err)
{
	struct dk_http *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	h->o = *o;
	if (h->o.service == NULL)
		h->o.service = "http";
	if (h->o.timeout_ms <= 0)
		h->o.timeout_ms = 30000;
	if (h->o.connect_timeout_ms <= 0)
		h->o.connect_timeout_ms = h->o.timeout_ms < MAX_CONNECT_MS ?
		    h->o.timeout_ms : MAX_CONNECT_MS;
	if (h->o.max_body == 0)
		h->o.max_body = DEFAULT_MAX_BODY;
	if (h->o.max_attempts <= 0)
		h->o.max_attempts = DEFAULT_ATTEMPTS;
	if (h->o.retry_after_cap_s <= 0)
		h->o.retry_after_cap_s = DEFAULT_RETRY_CAP_S;
	if ((h->curl = curl_easy_init()) == NULL) {
		free(h);
		return dk_err(err, DK_ENOMEM, "%s: cannot create an HTTP "
		    "handle", o->service ? o->service : "http");
	}
	*out = h;
	return DK_OK;
}

void
dk_http_free(struct dk_http *h)
{
	if (h == NULL)
		return;
	curl_easy_cleanup(h->curl);
	free(h);
}

unsigned
dk_http_requests(const struct dk_http *h)
{
	return h->nreq;
}

void
dk_http_response_clear(struct dk_http_response *r)
{
	if (r == NULL)
		return;
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
}

char *
dk_http_response_header(const struct dk_http_response *r, const char *name)
{
	const char *p, *eol, *v;
	size_t nl = strlen(name);
	char *out;

	for (p = r->headers; p != NULL && *p != '\0'; p = eol) {
		if ((eol = strchr(p, '\n')) == NULL)
			eol = p + strlen(p);
		else
			eol++;
		if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
			continue;
		for (v = p + nl + 1; *v == ' ' || *v == '\t'; v++)
			;
		nl = (size_t)(eol - v);
		while (nl > 0 && (v[nl - 1] == '\n' || v[nl - 1] == '\r' ||
		    v[nl - 1] == ' '))
			nl--;
		if ((out = malloc(nl + 1)) == NULL)
			return NULL;
		memcpy(out, v, nl);
		out[nl] = '\0';
		return out;
	}
	return NULL;
}

char *
dk_http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, j;
	char *out;

	if ((out = malloc(3 * n + 1)) == NULL)
		return NULL;
	for (i = j = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			out[j++] = (char)c;
		else {
			out[j++] = '%';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		}
	}
	out[j] = '\0';
	return out;
}

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
static long
parse_retry_after(const struct dk_http_response *r)
{
	char *v, *end;
	long s = -1;
	time_t t;

	if ((v = dk_http_response_header(r, "Retry-After")) == NULL)
		return -1;
	if (isdigit((unsigned char)v[0])) {
		s = strtol(v, &end, 10);
		if (*end != '\0' || s < 0)
			s = -1;
	} else if ((t = curl_getdate(v, NULL)) != -1) {
		s = (long)(t - time(NULL));
		if (s < 0)
			s = 0;
	}
	free(v);
	return s;
}

/* "https://host/path" without the query: what messages show of a URL. */
static void
url_shown(const char *url, char *buf, size_t len)
{
	size_t n = strcspn(url, "?#");

	snprintf(buf, len, "%.*s", (int)(n > 200 ? 200 : n), url);
}

/* The API's text for an error answer, one printable line. */
static void
api_text(const struct dk_http *h, const struct dk_http_response *r,
    char *buf, size_t len)
{
	const char *p = r->body ? r->body : "";
	char *ct;
	size_t i, n;

	buf[0] = '\0';
	if (r->body_len == 0) {
		snprintf(buf, len, "empty body");
		return;
	}
	if (h->o.errtext != NULL && h->o.errtext(r->body, r->body_len, buf,
	    len) == 0 && buf[0] != '\0')
		goto clean;
	ct = dk_http_response_header(r, "Content-Type");
	while (isspace((unsigned char)*p))
		p++;
	if ((ct != NULL && strncasecmp(ct, "text/html", 9) == 0) ||
	    *p == '<') {
		free(ct);
		snprintf(buf, len, "an HTML page, not an API answer (is the "
		    "URL right?)");
		return;
	}
	free(ct);
	n = strcspn(p, "\r\n");
	snprintf(buf, len, "%.*s", (int)(n > 200 ? 200 : n), p);
 clean:
	for (i = 0; buf[i] != '\0'; i++)
		if (!isprint((unsigned char)buf[i]))
			buf[i] = '?';
}

static int
curl_code(const struct dk_http *h, CURLcode cc, const struct buf *body,
    const char *method, const char *shown, const char *ebuf,
    struct dk_error *err)
{
	const char *why = ebuf[0] ? ebuf : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_WRITE_ERROR:
		if (body->over)
			return dk_err(err, DK_EPERM, "%s: %s %s: answer larger "
			    "than %zu bytes; refused", h->o.service, method,
			    shown, h->o.max_body);
		return dk_err(err, DK_ENOMEM, "%s: %s %s: out of memory",
		    h->o.service, method, shown);
	case CURLE_OPERATION_TIMEDOUT:
		return dk_err(err, DK_ETEMP, "%s: %s %s: timed out (%s)",
		    h->o.service, method, shown, why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return dk_err(err, DK_EPERM, "%s: %s %s: TLS certificate not "
		    "accepted: %s", h->o.service, method, shown, why);
	case CURLE_SSL_CACERT_BADFILE:
		return dk_err(err, DK_ECONFIG, "%s: ca_file %s: %s",
		    h->o.service, h->o.ca_file ? h->o.ca_file : "(system)",
		    why);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return dk_err(err, DK_ECONFIG, "%s: %s: %s", h->o.service,
		    shown, why);
	default:
		return dk_err(err, DK_ETEMP, "%s: %s %s: %s", h->o.service,
		    method, shown, why);
	}
}

/* One attempt; DK_OK when an HTTP answer (any status) came back. */
static int
attempt(struct dk_http *h, const struct dk_http_request *q,
    struct curl_slist *hdrs, long remain_ms, struct dk_http_response *r,
    const char *shown, struct dk_error *err)
{
	struct buf body = { NULL, 0, 0, 0, 0 }, head = { NULL, 0, 0, 0, 0 };
	char ebuf[CURL_ERROR_SIZE];
	CURL *c = h->curl;
	CURLcode cc;
	long conn;
	int rc;

	body.max = h->o.max_body;
	head.max = MAX_HEADERS;
	ebuf[0] = '\0';
	conn = h->o.connect_timeout_ms < remain_ms ? h->o.connect_timeout_ms :
	    remain_ms;

	/* Keeps the connection cache; forgets every option. */
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->o.ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->o.ca_file);
	curl_easy_setopt(c, CURLOPT_URL, q->url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, remain_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, conn);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "dkimkeyd");
	if (strcmp(q->method, "GET") == 0)
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
		if (q->body != NULL) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)q->body_len);
		}
	}
	h->nreq++;
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		rc = curl_code(h, cc, &body, q->method, shown, ebuf, err);
		free(body.p);
		free(head.p);
		return rc;
	}
	memset(r, 0, sizeof(*r));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (body.p == NULL && buf_add(&body, "", 0) != 0) {
		free(head.p);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	r->body = body.p;
	r->body_len = body.len;
	r->headers = head.p;
	r->retry_after = parse_retry_after(r);
	return DK_OK;
}

int
dk_http_do(struct dk_http *h, const struct dk_http_request *q,
    struct dk_http_response *resp, struct dk_error *err)
{
	struct curl_slist *hdrs = NULL, *t;
	struct dk_http_response r;
	char shown[256], text[256];
	int64_t t0 = mono_ns(), deadline, now, wait_ns;
	long remain_ms;
	size_t i;
	int rc = DK_OK, n, busy;

	memset(&r, 0, sizeof(r));
	url_shown(q->url, shown, sizeof(shown));
	deadline = t0 + (int64_t)h->o.timeout_ms * 1000000;
	/* No "Expect: 100-continue" round trip for small bodies. */
	if ((hdrs = curl_slist_append(NULL, "Expect:")) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	for (i = 0; q->headers != NULL && q->headers[i] != NULL; i++) {
		if ((t = curl_slist_append(hdrs, q->headers[i])) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		hdrs = t;
	}
	for (n = 1;; n++) {
		if (h->o.pace != NULL && h->o.pace->rate > 0) {
			now = mono_ns();
			if (h->o.pace->next_ns > now)
				sleep_until(h->o.pace->next_ns);
			now = mono_ns();
			h->o.pace->next_ns = (h->o.pace->next_ns > now ?
			    h->o.pace->next_ns : now) +
			    (int64_t)(1e9 / h->o.pace->rate);
		}
		remain_ms = (long)((deadline - mono_ns()) / 1000000);
		if (remain_ms <= 0) {
			rc = dk_err(err, DK_ETEMP, "%s: %s %s: deadline of "
			    "%d ms passed", h->o.service, q->method, shown,
			    h->o.timeout_ms);
			goto out;
		}
		dk_http_response_clear(&r);
		if ((rc = attempt(h, q, hdrs, remain_ms, &r, shown, err)) !=
		    DK_OK)
			goto out;
		if (r.status >= 200 && r.status < 300)
			break;
		api_text(h, &r, text, sizeof(text));
		if (r.status == 401 || r.status == 403) {
			rc = dk_err(err, DK_EPERM, "%s: %s %s: HTTP %ld (the "
			    "token is refused or lacks the permission): %s",
			    h->o.service, q->method, shown, r.status, text);
			goto out;
		}
		busy = r.status == 429 || (h->o.temporary != NULL &&
		    r.status < 500 && h->o.temporary(r.status, r.body,
		    r.body_len));
		if (!busy && r.status < 500) {
			rc = dk_err(err, DK_EPERM, "%s: %s %s: HTTP %ld: %s",
			    h->o.service, q->method, shown, r.status, text);
			goto out;
		}
		/* 429 means "not done": resendable whatever the method. */
		if (n >= h->o.max_attempts || (!busy && !q->idempotent)) {
			rc = dk_err(err, DK_ETEMP, "%s: %s %s: HTTP %ld: %s%s",
			    h->o.service, q->method, shown, r.status, text,
			    n > 1 ? " (after retries)" : "");
			goto out;
		}
		if (r.retry_after > h->o.retry_after_cap_s) {
			rc = dk_err(err, DK_ETEMP, "%s: %s %s: HTTP %ld, retry "
			    "after %lds (more than the %ds this call waits): "
			    "%s", h->o.service, q->method, shown, r.status,
			    r.retry_after, h->o.retry_after_cap_s, text);
			goto out;
		}
		wait_ns = r.retry_after >= 0 ?
		    (int64_t)r.retry_after * 1000000000 :
		    (int64_t)BACKOFF_MS * 1000000 << (n - 1);
		if (mono_ns() + wait_ns >= deadline) {
			rc = dk_err(err, DK_ETEMP, "%s: %s %s: HTTP %ld%s%s, "
			    "no time left to retry within %d ms: %s",
			    h->o.service, q->method, shown, r.status,
			    r.retry_after >= 0 ? ", retry after " : "",
			    r.retry_after >= 0 ? "the server's delay" : "",
			    h->o.timeout_ms, text);
			goto out;
		}
		sleep_until(mono_ns() + wait_ns);
	}
 out:
	curl_slist_free_all(hdrs);
	if (resp != NULL && r.status != 0) {
		*resp = r;
		return rc;
	}
	dk_http_response_clear(&r);
	return rc;
}
