/*
 * tests/fuzz/fuzz_route53_xml.c — libFuzzer target for the XML reader
 * (lib/xml.c, expat) and the Route 53 answer readers built on it
 * (providers/dns/route53_xml.c): every answer body is outside data.
 * The first octet picks the reader; the rest is the body.  Each reader's
 * results are walked, so that what a reader returns is well formed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"
#include "../providers/dns/route53.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
walk(const struct dk_xml *n)
{
	size_t k = 0;

	for (; n != NULL; n = n->next)
		k += 1 + strlen(n->name) + strlen(n->text) + walk(n->child);
	return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_error err = { 0, "" };
	struct r53_found f = { NULL, 0 };
	struct dk_xml *x = NULL;
	const char *body;
	char *a = NULL, *b = NULL, buf[512];
	size_t i, j, len;
	int more = 0;

	if (size < 1)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	switch (data[0] % 6) {
	case 0:
		if (dk_xml_parse(body, len, 1000, &x, &err) == DK_OK) {
			(void)walk(x);
			(void)dk_xml_path(x, "a/b/c");
			dk_xml_free(x);
		}
		break;
	case 1:
		if (r53_read_rrsets(body, len, "mail1._domainkey.example.com",
		    &f, &more, &a, &b, &err) == DK_OK) {
			for (i = 0; i < f.n; i++)
				for (j = 0; j < f.rs[i].nvalues; j++)
					(void)strlen(f.rs[i].values[j]);
		}
		r53_found_clear(&f);
		break;
	case 2:
		if (r53_read_change(body, len, &a, &b, &err) == DK_OK)
			(void)(strlen(a) + strlen(b));
		break;
	case 3:
		if (r53_read_zones(body, len, "example.com", &a, &err) == DK_OK)
			(void)strlen(a);
		break;
	case 4:
		if (r53_errtext(body, len, buf, sizeof(buf)) == 0)
			(void)strlen(buf);
		break;
	default:
		(void)r53_is_invalid_batch(body, len);
		(void)r53_temporary(400, body, len);
		break;
	}
	free(a);
	free(b);
	return 0;
}
