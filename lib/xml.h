/*
 * lib/xml.h — a small read-only XML tree for API answers (Route 53's),
 * built with expat: the only module that calls it.
 *
 * Element names are kept as written without their namespace prefix;
 * attributes, comments and processing instructions are dropped; text is
 * the concatenation of an element's character data.  A document type
 * declaration (and so any entity definition) is refused, as are trees
 * deeper than 32 or with more than max_nodes elements.
 */
#ifndef DK_XML_H
#define DK_XML_H

#include <stddef.h>

#include "dk.h"

struct dk_xml {
	char		*name;
	char		*text;		/* "" when none; never NULL */
	size_t		 text_len;
	struct dk_xml	*child;		/* first child */
	struct dk_xml	*next;		/* next sibling */
};

/*
 * Parse len octets into *root (free with dk_xml_free).  DK_EINVAL with
 * expat's reason, line and column when not well-formed XML or over a
 * limit; max_nodes 0 means 100000.
 */
int		 dk_xml_parse(const char *buf, size_t len, size_t max_nodes,
		    struct dk_xml **root, struct dk_error *err);
void		 dk_xml_free(struct dk_xml *);

/* The first child of n named name, or NULL (n may be NULL). */
const struct dk_xml *dk_xml_child(const struct dk_xml *n, const char *name);

/* The next sibling of n with n's name, or NULL. */
const struct dk_xml *dk_xml_next(const struct dk_xml *n);

/*
 * The text of the element at a '/'-separated path below n ("ChangeInfo/
 * Status"), or NULL when there is none.
 */
const char	*dk_xml_path(const struct dk_xml *n, const char *path);

#endif
