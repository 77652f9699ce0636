/*
 * lib/xml.c — an XML tree with expat; see xml.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "xml.h"

#define MAX_DEPTH		32
#define DEFAULT_MAX_NODES	100000

struct builder {
	XML_Parser	 p;
	struct dk_xml	*root;
	struct dk_xml	*stack[MAX_DEPTH];
	struct dk_xml	*last[MAX_DEPTH];	/* last child of stack[i] */
	int		 depth;
	size_t		 nodes;
	size_t		 max_nodes;
	const char	*why;			/* our own refusal */
};

void
dk_xml_free(struct dk_xml *n)
{
	struct dk_xml *next;

	while (n != NULL) {
		dk_xml_free(n->child);
		next = n->next;
		free(n->name);
		free(n->text);
		free(n);
		n = next;
	}
}

static void
stop(struct builder *b, const char *why)
{
	if (b->why == NULL)
		b->why = why;
	XML_StopParser(b->p, XML_FALSE);
}

static void XMLCALL
on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct builder *b = arg;
	struct dk_xml *n;
	const char *colon;

	if (b->why != NULL)
		return;
	if (b->depth == MAX_DEPTH) {
		stop(b, "nested too deeply");
		return;
	}
	if (++b->nodes > b->max_nodes) {
		stop(b, "too many elements");
		return;
	}
	if (b->depth == 0 && b->root != NULL) {
		stop(b, "more than one root element");
		return;
	}
	if ((colon = strchr(name, ':')) != NULL)
		name = colon + 1;
	if ((n = calloc(1, sizeof(*n))) == NULL ||
	    (n->name = strdup(name)) == NULL ||
	    (n->text = calloc(1, 1)) == NULL) {
		if (n != NULL) {
			free(n->name);
			free(n);
		}
		stop(b, "out of memory");
		return;
	}
	if (b->depth == 0)
		b->root = n;
	else if (b->last[b->depth - 1] == NULL)
		b->stack[b->depth - 1]->child = n;
	else
		b->last[b->depth - 1]->next = n;
	if (b->depth > 0)
		b->last[b->depth - 1] = n;
	b->stack[b->depth] = n;
	b->last[b->depth] = NULL;
	b->depth++;
}

static void XMLCALL
on_end(void *arg, const XML_Char *name)
{
	struct builder *b = arg;

	if (b->why == NULL && b->depth > 0)
		b->depth--;
}

static void XMLCALL
on_text(void *arg, const XML_Char *s, int len)
{
	struct builder *b = arg;
	struct dk_xml *n;
	char *t;

	if (b->why != NULL || b->depth == 0 || len <= 0)
		return;
	n = b->stack[b->depth - 1];
	if ((t = realloc(n->text, n->text_len + (size_t)len + 1)) == NULL) {
		stop(b, "out of memory");
		return;
	}
	memcpy(t + n->text_len, s, (size_t)len);
	n->text_len += (size_t)len;
	t[n->text_len] = '\0';
	n->text = t;
}

static void XMLCALL
on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	stop(arg, "a document type declaration (refused)");
}

static void XMLCALL
on_entity(void *arg, const XML_Char *name, int is_param,
    const XML_Char *value, int value_len, const XML_Char *base,
    const XML_Char *sysid, const XML_Char *pubid, const XML_Char *notation)
{
	stop(arg, "an entity declaration (refused)");
}

int
dk_xml_parse(const char *buf, size_t len, size_t max_nodes,
    struct dk_xml **root, struct dk_error *err)
{
	struct builder b;
	enum XML_Status st;
	int rc = DK_OK;

	memset(&b, 0, sizeof(b));
	b.max_nodes = max_nodes ? max_nodes : DEFAULT_MAX_NODES;
	if (len > (size_t)0x7fffffff)
		return dk_err(err, DK_EINVAL, "XML: document too large");
	if ((b.p = XML_ParserCreate("UTF-8")) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	XML_SetUserData(b.p, &b);
	XML_SetElementHandler(b.p, on_start, on_end);
	XML_SetCharacterDataHandler(b.p, on_text);
	XML_SetStartDoctypeDeclHandler(b.p, on_doctype);
	XML_SetEntityDeclHandler(b.p, on_entity);
	st = XML_Parse(b.p, buf, (int)len, 1);
	if (b.why != NULL)
		rc = dk_err(err, b.why[0] == 'o' && b.why[1] == 'u' ?
		    DK_ENOMEM : DK_EINVAL, "XML: %s", b.why);
	else if (st != XML_STATUS_OK)
		rc = dk_err(err, DK_EINVAL, "XML: %s at line %lu, column %lu",
		    XML_ErrorString(XML_GetErrorCode(b.p)),
		    (unsigned long)XML_GetCurrentLineNumber(b.p),
		    (unsigned long)XML_GetCurrentColumnNumber(b.p));
	else if (b.root == NULL)
		rc = dk_err(err, DK_EINVAL, "XML: no root element");
	XML_ParserFree(b.p);
	if (rc != DK_OK) {
		dk_xml_free(b.root);
		return rc;
	}
	*root = b.root;
	return DK_OK;
}

const struct dk_xml *
dk_xml_child(const struct dk_xml *n, const char *name)
{
	const struct dk_xml *c;

	for (c = n != NULL ? n->child : NULL; c != NULL; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const struct dk_xml *
dk_xml_next(const struct dk_xml *n)
{
	const struct dk_xml *c;

	for (c = n->next; c != NULL; c = c->next)
		if (strcmp(c->name, n->name) == 0)
			return c;
	return NULL;
}

const char *
dk_xml_path(const struct dk_xml *n, const char *path)
{
	char part[128];
	const char *p = path;
	size_t k;

	while (n != NULL && *p != '\0') {
		k = strcspn(p, "/");
		if (k >= sizeof(part))
			return NULL;
		memcpy(part, p, k);
		part[k] = '\0';
		n = dk_xml_child(n, part);
		p += k;
		if (*p == '/')
			p++;
	}
	return n != NULL ? n->text : NULL;
}
