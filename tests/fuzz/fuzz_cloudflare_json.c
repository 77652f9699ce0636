/*
 * tests/fuzz/fuzz_cloudflare_json.c — libFuzzer target for what the
 * Cloudflare provider reads out of the API's answers
 * (providers/dns/cloudflare_api.c, cloudflare.c): a record list page ("result" records
 * with id, name, type, content), the envelope's "errors" and TXT content
 * in presentation format or bare.
 *
 * The provider's reading functions are static, so this file includes
 * the provider's sources.  Beyond "no crash and no leak": a failure
 * always says why; every TXT read is one or more strings of at most 255
 * octets; what is found at an owner is at most 8 TXT RRs (more is
 * flagged) and reading is deterministic.
 */
#include "../../providers/dns/cloudflare_api.c"
#include "../../providers/dns/cloudflare.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_txt(const struct dk_txt *t)
{
	size_t k;

	if (t->nstr == 0 || t->str == NULL)
		abort();
	for (k = 0; k < t->nstr; k++)
		if (t->str[k] == NULL || strlen(t->str[k]) > 255)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_error err = { 0 };
	struct recs l = { NULL, 0 }, m = { NULL, 0 };
	struct dk_txt t;
	struct at a;
	char msg[512], *s;
	json_t *j, *res;
	size_t i;

	(void)cf_errtext((const char *)data, size, msg, sizeof(msg));
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (strlen(s) == size && cf_parse_content(s, &t) == DK_OK) {
		check_txt(&t);
		dk_txt_free(&t);
	}
	free(s);
	if ((j = json_loadb((const char *)data, size, 0, NULL)) == NULL)
		return 0;
	(void)errors_text(j, msg, sizeof(msg));
	res = json_is_array(j) ? j : json_object_get(j, "result");
	if (json_is_array(res)) {
		if (cf_add_page(res, &l, &err) != DK_OK) {
			if (err.msg[0] == '\0')
				abort();	/* every failure says why */
		} else {
			for (i = 0; i < l.n; i++)
				check_txt(&l.r[i].txt);
			records_at(&l, "sel._domainkey.example.com", &a);
			if (a.ntxt > 8 || (a.more && a.ntxt != 8))
				abort();
			if (cf_add_page(res, &m, &err) != DK_OK || m.n != l.n)
				abort();	/* deterministic */
		}
	}
	cf_recs_clear(&l);
	cf_recs_clear(&m);
	json_decref(j);
	return 0;
}
