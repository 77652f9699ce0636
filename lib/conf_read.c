/*
 * lib/conf_read.c — reading the configuration files: the line reader
 * inih calls, its key handler, include, and the rule on who may own and
 * write a file that names commands.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "conf_int.h"
#include "fileio.h"

#define INCLUDE_DEPTH_MAX	8

/*
 * Longest raw line (comments included) read from a configuration file:
 * getline would read a line of any length whole into memory.
 */
#define CONF_LINE_MAX	65536

/*
 * The next line of f into f->buf, newline included, NUL-terminated: its
 * length, -1 at the end of the file or on a read error, -2 when it is
 * longer than CONF_LINE_MAX (the rest is not read).
 */
static ssize_t
read_line(struct file *f)
{
	size_t n = 0;
	int ch;

	if (f->buf == NULL) {
		if ((f->buf = malloc(CONF_LINE_MAX + 2)) == NULL) {
			conf_nomem(f->p);
			return -1;
		}
		f->bufsz = CONF_LINE_MAX + 2;
	}
	while ((ch = getc_unlocked(f->fp)) != EOF) {
		if (n == CONF_LINE_MAX + 1)
			return -2;
		f->buf[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (n == CONF_LINE_MAX + 1 && f->buf[n - 1] != '\n')
		return -2;
	f->buf[n] = '\0';
	return n == 0 ? -1 : (ssize_t)n;
}

/*
 * inih reader: one whole line per call, so f->line is the line inih is
 * working on when it calls the handler.  Comments go here: ';' or '#'
 * at the start or after white space.  Leading white space goes too, so
 * that inih never takes an indented line for a continuation.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct file *f = stream;
	ssize_t n;
	char *s, *e, *c, *hdr;
	size_t len;
	int r;

	if (f->p->failed)
		return NULL;
	errno = 0;
	if ((n = read_line(f)) < 0) {
		if (n == -2) {
			f->line++;
			conf_fail(f, "line too long (more than %d characters with "
			    "comments)", CONF_LINE_MAX);
		} else if (ferror(f->fp)) {
			f->line++;
			dk_err(&f->p->err, DK_EIO, "%s:%d: read error: %s",
			    f->path, f->line, strerror(errno));
			f->p->failed = 1;
			f->err_line = f->line;
		}
		return NULL;
	}
	f->line++;
	s = f->buf;
	if ((size_t)n != strlen(s)) {
		conf_fail(f, "syntax error: NUL character");
		return NULL;
	}
	for (c = s; *c != '\0'; c++) {
		if ((*c == ';' || *c == '#') &&
		    (c == s || isspace((unsigned char)c[-1]))) {
			*c = '\0';
			break;
		}
	}
	s += strspn(s, " \t\r\n\v\f");
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	len = e - s;
	if (num < 4 || len > (size_t)num - 3) {
		conf_fail(f, "line too long (more than %d characters)", num - 3);
		return NULL;
	}
	if (*s == '[') {
		if ((c = strchr(s, ']')) == NULL) {
			conf_fail(f, "syntax error: missing ]");
			return NULL;
		}
		if (c[1] != '\0') {
			conf_fail(f, "syntax error: text after ]");
			return NULL;
		}
		/* open_section cuts its argument; inih needs the line. */
		if ((hdr = strndup(s + 1, c - s - 1)) == NULL) {
			conf_nomem(f->p);
			return NULL;
		}
		r = conf_open_section(f, hdr);
		free(hdr);
		if (r != DK_OK)
			return NULL;
	}
	memcpy(str, s, len + 1);
	return str;
}

/* inih handler: nonzero to go on.  The section argument is not used. */
static int
handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct file *f = user;
	int r;

	if (f->p->failed)
		return 0;
	if (*name == '\0')
		r = conf_fail(f, "syntax error: missing key name");
	else if (value == NULL)
		r = conf_fail(f, "syntax error: missing value for %s", name);
	else {
		switch (f->kind) {
		case SEC_DOMAIN:
		case SEC_PROVIDER:
		case SEC_SIGNER:
			if (strcmp(name, "include") == 0) {
				r = conf_fail(f, "include belongs in [dkimkeyd] or "
				    "before the first section");
				break;
			}
			r = f->kind == SEC_DOMAIN ? conf_domain_key(f, name, value) :
			    conf_section_key(f, name, value);
			break;
		case SEC_NONE:
			if (strcmp(name, "include") == 0)
				r = conf_include(f, value);
			else
				r = conf_fail(f, "key %s outside a section", name);
			break;
		default:
			r = conf_main_key(f, name, value);
			break;
		}
	}
	if (r != DK_OK) {
		f->err_line = f->line;
		return 0;
	}
	return 1;
}

static int
cmp_path(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
conf_include(struct file *f, const char *pattern)
{
	struct parse *p = f->p;
	glob_t g;
	char *full = NULL, *q;
	const char *c;
	size_t i, n;
	int gr, r = DK_OK;

	if (*pattern == '\0')
		return conf_fail(f, "empty include");
	if (p->depth > INCLUDE_DEPTH_MAX)
		return conf_fail(f, "include nesting deeper than %d",
		    INCLUDE_DEPTH_MAX);
	/* Relative to the including file, not the working directory. */
	if (strpbrk(pattern, "*?[") == NULL) {
		if (*pattern == '/')
			full = dk_strdup(pattern);
		else if (asprintf(&full, "%s/%s", f->dir, pattern) == -1)
			full = NULL;
		if (full == NULL)
			return conf_nomem(p);
		r = conf_parse_file(p, full, f);
		goto out;
	}
	/* Escape the directory so that its characters match literally. */
	n = strlen(pattern) + 1;
	if (*pattern != '/')
		n += 2 * strlen(f->dir) + 1;
	if ((full = malloc(n)) == NULL)
		return conf_nomem(p);
	q = full;
	if (*pattern != '/') {
		for (c = f->dir; *c != '\0'; c++) {
			if (strchr("*?[\\", *c) != NULL)
				*q++ = '\\';
			*q++ = *c;
		}
		*q++ = '/';
	}
	strcpy(q, pattern);
	memset(&g, 0, sizeof(g));
	gr = glob(full, 0, NULL, &g);
	if (gr == GLOB_NOSPACE) {
		r = conf_nomem(p);
	} else if (gr == GLOB_ABORTED) {
		r = conf_fail(f, "include %s: cannot read directory", pattern);
	} else if (gr == 0) {
		/* glob sorts by locale; the order must not depend on it. */
		qsort(g.gl_pathv, g.gl_pathc, sizeof(*g.gl_pathv),
		    cmp_path);
		for (i = 0; i < g.gl_pathc && r == DK_OK; i++)
			r = conf_parse_file(p, g.gl_pathv[i], f);
	}
	globfree(&g);
 out:
	free(full);
	if (r != DK_OK)
		f->err_line = f->line;
	return r;
}

/*
 * The configuration names commands (reload =) that run as dkimkeyd's
 * user, often root, so it is guarded like a key file: its owner is root
 * or the user running dkimkeyd; nobody else may write it, except the
 * group when owner and group are both root (a root:root 0664 file gives
 * nobody new the power to write it).  Applied to every include.
 */
static int
file_safe(struct parse *p, struct file *parent, const char *path,
    const struct stat *st)
{
	const char *why = NULL;
	char where[DK_ERRMSG_MAX / 2];

	if (st->st_uid != 0 && st->st_uid != geteuid())
		why = "is owned by another user";
	else if (st->st_mode & S_IWOTH)
		why = "is writable by others";
	else if ((st->st_mode & S_IWGRP) && !(st->st_uid == 0 &&
	    st->st_gid == 0))
		why = "is writable by its group";
	if (why == NULL)
		return DK_OK;
	if (parent != NULL)
		snprintf(where, sizeof(where), "%s:%d: include ", parent->path,
		    parent->line);
	else
		where[0] = '\0';
	dk_err(&p->err, DK_EUNSAFE, "%s%s: configuration file %s (owner %ld, "
	    "mode %04o): it names commands dkimkeyd runs; chown it to root "
	    "or to dkimkeyd's user and chmod go-w", where, path, why,
	    (long)st->st_uid, (unsigned)(st->st_mode & 07777));
	p->failed = 1;
	return DK_EUNSAFE;
}

int
dk_conf_dir_safe(const char *path, struct dk_error *err)
{
	struct stat sb;

	/* Absent is fine: dkimkeyd creates it, private. */
	if (stat(path, &sb) == -1)
		return DK_OK;
	if (S_ISDIR(sb.st_mode) && (sb.st_mode & S_IWOTH))
		return dk_err(err, DK_EUNSAFE, "%s: world-writable directory; "
		    "chmod o-w %s, or choose another", path, path);
	return DK_OK;
}

/* Read one file; parent is the including file, NULL for the main one. */
int
conf_parse_file(struct parse *p, const char *path, struct file *parent)
{
	struct dk_error oerr = { 0, "" };
	struct file f;
	struct stat st;
	const char *why;
	int fd = -1, e, r;

	memset(&f, 0, sizeof(f));
	f.p = p;
	f.path = path;
	/*
	 * Never blocks: a FIFO at the file, an include or -c is refused
	 * as not a regular file instead of hanging every command.
	 */
	r = dk_file_open_input(path, 0, DK_ECONFIG, &fd, &st, &oerr);
	e = errno;
	if (r == DK_OK && (f.fp = fdopen(fd, "r")) == NULL) {
		e = errno;
		close(fd);
		r = DK_EIO;
	}
	if (r != DK_OK) {
		/* Not a regular file: "PATH: not a regular file (a FIFO)". */
		why = r == DK_ECONFIG ? oerr.msg + strlen(path) + 2 : NULL;
		if (parent != NULL && why != NULL)
			return conf_fail(parent, "include %s: %s", path, why);
		if (parent != NULL)
			return conf_fail(parent, "include %s: cannot open: %s",
			    path, strerror(e));
		if (why != NULL)
			dk_err(&p->err, DK_ECONFIG, "%s: %s", path, why);
		else
			dk_err(&p->err, DK_ECONFIG, "%s: cannot open: %s",
			    path, strerror(e));
		p->failed = 1;
		return DK_ECONFIG;
	}
	if ((r = file_safe(p, parent, path, &st)) != DK_OK) {
		fclose(f.fp);
		return r;
	}
	if ((f.dir = dk_dirname(path)) == NULL) {
		fclose(f.fp);
		return conf_nomem(p);
	}
	p->depth++;
	r = ini_parse_stream(reader, &f, handler, &f);
	p->depth--;
	if (r < 0) {
		conf_nomem(p);
	} else if (r > 0 && (f.err_line == 0 || r < f.err_line)) {
		/*
		 * inih goes on after a malformed line and returns the first
		 * one; when it comes before our own error it is the one to
		 * report.
		 */
		p->failed = 0;
		f.line = r;
		conf_fail(&f, "syntax error");
	} else if (!p->failed) {
		conf_close_section(&f);
	}
	fclose(f.fp);
	free(f.buf);
	free(f.dir);
	return p->failed ? p->err.code : DK_OK;
}
