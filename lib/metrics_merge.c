/*
 * lib/metrics_merge.c — merge our families into a metrics file that
 * other writers share: the existing file is read (tolerantly: what cannot
 * be read is dropped, with a warning), its other families are kept
 * verbatim and in their order, accumulating counters are added to.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "metrics_int.h"


/* Larger than any file this program writes; beyond it, start afresh. */
#define FILE_MAX	(256L * 1024 * 1024)

enum ftype { FT_UNTYPED, FT_COUNTER, FT_GAUGE, FT_HISTOGRAM, FT_SUMMARY };

/*
 * A family of the existing file: its lines are the bytes [start, end)
 * (comments and blank lines up to the next family included).
 */
struct block {
	char		*name;
	size_t		 start, end;
	enum ftype	 type;
	int		 has_help, has_type, nsamples, bad;
	int		 closed;	/* ended by a stray line */
	struct family	 acc;	/* if ours and accumulating: its samples */
};

struct parse {
	const char		*path;
	const struct dk_metrics	*m;
	struct block		*b;
	size_t			 nb;
	size_t			 dropped;	/* families and stray lines */
	int			 first_line;	/* of the first problem */
	char			 first[256];
	int			 nomem;
};

static void
problem(struct parse *ps, int line, const char *what, const char *name)
{
	if (ps->first_line == 0) {
		ps->first_line = line;
		snprintf(ps->first, sizeof(ps->first), "%s%s%.100s", what,
		    name != NULL ? " " : "", name != NULL ? name : "");
	}
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t';
}

static int
name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == ':' || (!first && c >= '0' && c <= '9');
}

/* A metric name at *pp (advanced past it); its length, 0 when none. */
static size_t
scan_name(const char **pp, const char *end)
{
	const char *start = *pp, *p = *pp;

	if (p >= end || !name_char(*p, 1))
		return 0;
	while (p < end && name_char(*p, p == start))
		p++;
	*pp = p;
	return (size_t)(p - start);
}

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && is_space(*p))
		p++;
	return p;
}

/*
 * A sample line: name, labels (into canon as this module formats them,
 * so that they compare with ours), value, optional timestamp.  NULL on
 * success, else what is wrong.
 */
static const char *
parse_sample(const char *p, const char *end, const char **name,
    size_t *namelen, struct buf *canon, double *value)
{
	const char *q, *n;
	char tok[64], *e, c;
	size_t nlabels = 0;

	q = p;
	*name = p;
	if ((*namelen = scan_name(&q, end)) == 0)
		return "bad metric name";
	p = skip_space(q, end);
	metrics_bputs(canon, "");
	if (p < end && *p == '{') {
		p = skip_space(p + 1, end);
		while (p < end && *p != '}') {
			n = p;
			while (p < end && name_char(*p, p == n) && *p != ':')
				p++;
			if (p == n)
				return "bad label name";
			metrics_bputs(canon, nlabels++ == 0 ? "{" : ",");
			metrics_bput(canon, n, (size_t)(p - n));
			p = skip_space(p, end);
			if (p >= end || *p != '=')
				return "'=' expected after label name";
			p = skip_space(p + 1, end);
			if (p >= end || *p != '"')
				return "'\"' expected before label value";
			metrics_bputs(canon, "=\"");
			for (p++; p < end && *p != '"'; p++) {
				if (*p != '\\') {
					metrics_bput(canon, p, 1);
					continue;
				}
				if (++p >= end)
					break;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return "bad escape in label value";
				c = *p;
				metrics_bputs(canon, c == 'n' ? "\\n" :
				    c == '"' ? "\\\"" : "\\\\");
			}
			if (p >= end)
				return "unterminated label value";
			metrics_bputs(canon, "\"");
			p = skip_space(p + 1, end);
			if (p < end && *p == ',')
				p = skip_space(p + 1, end);
			else if (p < end && *p != '}')
				return "',' or '}' expected after label value";
		}
		if (p >= end)
			return "unterminated label set";
		if (nlabels > 0)
			metrics_bputs(canon, "}");
		p = skip_space(p + 1, end);
	}
	for (q = p; q < end && !is_space(*q); q++)
		;
	if (q == p || (size_t)(q - p) >= sizeof(tok))
		return "bad sample value";
	memcpy(tok, p, (size_t)(q - p));
	tok[q - p] = '\0';
	errno = 0;
	*value = strtod(tok, &e);
	if (*e != '\0' || (errno == ERANGE && !isinf(*value)))
		return "bad sample value";
	p = skip_space(q, end);
	if (p < end) {
		q = p;
		if (*q == '-')
			q++;
		while (q < end && *q >= '0' && *q <= '9')
			q++;
		if (q == p || (q == p + 1 && *p == '-') ||
		    skip_space(q, end) != end)
			return "bad timestamp";
	}
	return NULL;
}

static struct block *
block_find(struct parse *ps, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < ps->nb; i++)
		if (strlen(ps->b[i].name) == len &&
		    memcmp(ps->b[i].name, name, len) == 0)
			return &ps->b[i];
	return NULL;
}

/* Start a new family at byte off, line; NULL on allocation failure. */
static struct block *
block_new(struct parse *ps, const char *name, size_t len, size_t off,
    int line)
{
	struct block *nb, *b;
	int dup = block_find(ps, name, len) != NULL;

	if ((nb = reallocarray(ps->b, ps->nb + 1, sizeof(*nb))) == NULL) {
		ps->nomem = 1;
		return NULL;
	}
	ps->b = nb;
	if (ps->nb > 0 && !ps->b[ps->nb - 1].closed)
		ps->b[ps->nb - 1].end = off;
	b = &ps->b[ps->nb];
	memset(b, 0, sizeof(*b));
	if ((b->name = strndup(name, len)) == NULL) {
		ps->nomem = 1;
		return NULL;
	}
	b->start = b->end = off;
	ps->nb++;
	/* The format wants all lines of a family together. */
	if (dup) {
		b->bad = 1;
		problem(ps, line, "second group of lines for family",
		    b->name);
	}
	return b;
}

/*
 * A line that belongs to no family is dropped alone: the family before
 * it ends there, so that its verbatim copy does not carry the line.
 */
static void
stray(struct parse *ps, struct block **cur, size_t off, int line,
    const char *what)
{
	if (*cur != NULL) {
		(*cur)->end = off;
		(*cur)->closed = 1;
		*cur = NULL;
	}
	ps->dropped++;
	problem(ps, line, what, NULL);
}

static void
block_bad(struct parse *ps, struct block *b, int line, const char *what)
{
	if (!b->bad)
		problem(ps, line, what, b->name);
	b->bad = 1;
}

/* Does a sample named name, len belong to family b? */
static int
belongs(const struct block *b, const char *name, size_t len)
{
	size_t bl = strlen(b->name);
	const char *sfx;

	if (len == bl && memcmp(name, b->name, len) == 0)
		return 1;
	if ((b->type != FT_HISTOGRAM && b->type != FT_SUMMARY) || len <= bl ||
	    memcmp(name, b->name, bl) != 0)
		return 0;
	sfx = name + bl;
	len -= bl;
	return (len == 4 && memcmp(sfx, "_sum", 4) == 0) ||
	    (len == 6 && memcmp(sfx, "_count", 6) == 0) ||
	    (b->type == FT_HISTOGRAM && len == 7 &&
	    memcmp(sfx, "_bucket", 7) == 0);
}

/* # HELP name text / # TYPE name type, at p (past "#"). */
static void
directive(struct parse *ps, struct block **cur, const char *p,
    const char *end, size_t off, int line)
{
	static const char *const types[] = { "untyped", "counter", "gauge",
	    "histogram", "summary" };
	const char *kw, *name, *q;
	size_t kwlen, len, i;
	int help;
	struct block *b = *cur;

	p = skip_space(p, end);
	kw = p;
	while (p < end && !is_space(*p))
		p++;
	kwlen = (size_t)(p - kw);
	if (kwlen == 4 && memcmp(kw, "HELP", 4) == 0)
		help = 1;
	else if (kwlen == 4 && memcmp(kw, "TYPE", 4) == 0)
		help = 0;
	else
		return;		/* a plain comment: stays with the family */
	p = skip_space(p, end);
	name = p;
	if ((len = scan_name(&p, end)) == 0 || (p < end && !is_space(*p))) {
		/* Not about any family we could keep. */
		if (b != NULL)
			block_bad(ps, b, line, "bad HELP or TYPE line in");
		else
			stray(ps, cur, off, line, "bad HELP or TYPE line");
		return;
	}
	len = (size_t)(p - name);
	if (b == NULL || b->nsamples > 0 || strlen(b->name) != len ||
	    memcmp(b->name, name, len) != 0 ||
	    (help ? b->has_help : b->has_type)) {
		if ((b = block_new(ps, name, len, off, line)) == NULL)
			return;
		*cur = b;
	}
	if (help) {
		b->has_help = 1;
		return;
	}
	b->has_type = 1;
	p = skip_space(p, end);
	for (q = p; q < end && !is_space(*q); q++)
		;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i]) == (size_t)(q - p) &&
		    memcmp(types[i], p, (size_t)(q - p)) == 0)
			break;
	if (i == sizeof(types) / sizeof(types[0]) || skip_space(q, end) !=
	    end)
		block_bad(ps, b, line, "bad TYPE for");
	else
		b->type = (enum ftype)i;
}

static void
sample_line(struct parse *ps, struct block **cur, const char *p,
    const char *end, size_t off, int line)
{
	struct buf canon = { NULL, 0, 0, 0 };
	const struct family *ours;
	struct block *b = *cur;
	const char *name = p, *why;
	size_t len = 0;
	double v;

	why = parse_sample(p, end, &name, &len, &canon, &v);
	if (canon.failed) {
		ps->nomem = 1;
		goto out;
	}
	if (why != NULL && (b == NULL || len == 0 || !belongs(b, name, len))) {
		/* Cannot tell its family: it goes alone. */
		stray(ps, cur, off, line, why);
		goto out;
	}
	if (b == NULL || !belongs(b, name, len)) {
		if ((b = block_new(ps, name, len, off, line)) == NULL)
			goto out;
		*cur = b;
	}
	b->nsamples++;
	if (why != NULL) {
		block_bad(ps, b, line, why);
		goto out;
	}
	if (b->bad || (ours = metrics_find(ps->m, b->name)) == NULL ||
	    !ours->accumulate || strlen(b->name) != len)
		goto out;
	if (metrics_put(&b->acc, canon.p, v, 0) != DK_OK)
		ps->nomem = 1;
	canon.p = NULL;
 out:
	free(canon.p);
}

static void
parse_text(struct parse *ps, const char *text, size_t n)
{
	struct block *cur = NULL;
	const char *p, *eol, *end = text + n;
	int line = 0;

	for (p = text; p < end && !ps->nomem; p = eol + (eol < end)) {
		line++;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
			if (cur != NULL)
				block_bad(ps, cur, line, "NUL byte in");
			else
				stray(ps, &cur, (size_t)(p - text), line,
				    "NUL byte");
			continue;
		}
		{
			const char *q = skip_space(p, eol), *e = eol;

			while (e > q && (e[-1] == '\r' || is_space(e[-1])))
				e--;
			if (q == e)
				continue;
			if (*q == '#')
				directive(ps, &cur, q + 1, e,
				    (size_t)(p - text), line);
			else
				sample_line(ps, &cur, q, e,
				    (size_t)(p - text), line);
		}
	}
	if (ps->nb > 0 && !ps->b[ps->nb - 1].closed)
		ps->b[ps->nb - 1].end = n;
}

static void
parse_free(struct parse *ps)
{
	size_t i, j;

	for (i = 0; i < ps->nb; i++) {
		free(ps->b[i].name);
		for (j = 0; j < ps->b[i].acc.ns; j++)
			free(ps->b[i].acc.s[j].labels);
		free(ps->b[i].acc.s);
		free(ps->b[i].acc.ix);
	}
	free(ps->b);
}

/*
 * The file's text, malloc'd ("" when missing).  A file that is not a
 * regular one is not read (a symbolic link could make us publish what
 * it points at, a FIFO would hang us); the write then replaces it, with
 * a warning.
 */
static int
read_existing(const char *path, char **out, size_t *n, struct dk_error *warn,
    struct dk_error *err)
{
	struct dk_error rerr = { 0, "" };
	struct stat ls;
	int rc;

	rc = dk_file_read(path, FILE_MAX, DK_READ_NOFOLLOW, DK_ECORRUPT,
	    DK_ECORRUPT, out, n, NULL, &rerr);
	if (rc == DK_OK)
		return DK_OK;
	if (rc == DK_ECORRUPT || (rc == DK_EUNSAFE && lstat(path, &ls) == 0 &&
	    S_ISLNK(ls.st_mode)))
		dk_err(warn, DK_ECORRUPT, "%s; replacing it", rc ==
		    DK_ECORRUPT ? rerr.msg : "not a regular file");
	else if (rc != DK_ENOTFOUND)
		return dk_err(err, rc == DK_ENOMEM ? rc : DK_EIO, "%s",
		    rerr.msg);
	if ((*out = dk_strdup("")) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	*n = 0;
	return DK_OK;
}

/*
 * Wait for the writers' lock, briefly: metrics must not hold up work.
 * The lock is an flock on the file's directory: the file itself is
 * replaced by every write, and a lock file would sit in the collector's
 * directory and need to be writable by every user that writes metrics.
 */
#define LOCK_WAIT_MS	5000

static int
lock_dir(const char *path, int *fdp, struct dk_error *err)
{
	char *dir;
	int fd, rc;

	if ((dir = dk_dirname(path)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (dk_flock_wait(fd, LOCK_WAIT_MS) == -1) {
		rc = dk_err(err, errno == EWOULDBLOCK ? DK_ETEMP : DK_EIO,
		    "%s: lock of %s: %s", path, dir, errno == EWOULDBLOCK ?
		    "held by another writer; metrics not written" :
		    strerror(errno));
		close(fd);
		goto out;
	}
	*fdp = fd;
	rc = DK_OK;
 out:
	free(dir);
	return rc;
}

int
dk_metrics_merge(const struct dk_metrics *m, const char *path,
    struct dk_error *warn, struct dk_error *err)
{
	struct parse ps;
	struct buf b = { NULL, 0, 0, 0 };
	struct block *bl;
	const struct family *f;
	char *text = NULL, *done = NULL;
	size_t n = 0, i, fi;
	int lockfd = -1, rc;

	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	ps.m = m;
	if (warn != NULL) {
		warn->code = 0;
		warn->msg[0] = '\0';
	}
	if ((done = calloc(m->nf + 1, 1)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = lock_dir(path, &lockfd, err)) != DK_OK)
		goto out;
	/* Under the lock: temporaries left by a writer that crashed. */
	(void)dk_file_sweep(&path, 1, NULL);
	if ((rc = read_existing(path, &text, &n, warn, err)) != DK_OK)
		goto out;
	parse_text(&ps, text, n);
	if (ps.nomem) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	metrics_bputs(&b, "");
	/* In file order, so that alternating writers keep it stable. */
	for (i = 0; i < ps.nb; i++) {
		bl = &ps.b[i];
		if (bl->bad) {
			ps.dropped++;
			continue;
		}
		if ((f = metrics_find(m, bl->name)) != NULL) {
			fi = (size_t)(f - m->f);
			if (!done[fi])
				metrics_format_family(&b, f, f->accumulate ?
				    &bl->acc : NULL);
			done[fi] = 1;
			continue;
		}
		if (!bl->has_type) {
			metrics_bputs(&b, "# TYPE ");
			metrics_bputs(&b, bl->name);
			metrics_bputs(&b, " untyped\n");
		}
		metrics_bput(&b, text + bl->start, bl->end - bl->start);
		if (bl->end > bl->start && text[bl->end - 1] != '\n')
			metrics_bputs(&b, "\n");
	}
	for (fi = 0; fi < m->nf; fi++)
		if (!done[fi])
			metrics_format_family(&b, &m->f[fi], NULL);
	if (b.failed) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (ps.first_line != 0)
		dk_err(warn, DK_ECORRUPT, "%s:%d: %s; dropped %zu unreadable "
		    "famil%s or line%s", path, ps.first_line, ps.first,
		    ps.dropped, ps.dropped == 1 ? "y" : "ies",
		    ps.dropped == 1 ? "" : "s");
	rc = metrics_write_atomic(path, b.p, warn, err);
 out:
	/* Closing the descriptor releases the lock. */
	if (lockfd != -1)
		close(lockfd);
	parse_free(&ps);
	free(b.p);
	free(text);
	free(done);
	return rc;
}
