/*
 * tests/fuzz/fuzz_pdns_json.c — libFuzzer target for what the PowerDNS
 * provider reads out of the API's JSON answers
 * (providers/dns/powerdns.c): a zone's rrsets list, the zone list and
 * the {"error": ...} body of a refusal.
 *
 * The provider's reading functions are static, so this file includes
 * the provider's source.  Beyond "no crash and no leak": a failure
 * always says why; what is found at the owner is either nothing or
 * well-formed TXT strings (each at most 255 octets) and at most one
 * CNAME; reading is deterministic.
 */
#include "../../providers/dns/powerdns.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_found(const struct found *f)
{
	size_t i, k;

	for (i = 0; i < f->ntxt; i++) {
		if (f->txt[i].nstr == 0 || f->txt[i].str == NULL)
			abort();
		for (k = 0; k < f->txt[i].nstr; k++)
			if (f->txt[i].str[k] == NULL ||
			    strlen(f->txt[i].str[k]) > 255)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_conf_section sec;
	struct pdns c;
	struct found f, g;
	struct dk_error err = { 0 };
	char msg[256];
	json_t *j, *rrsets;
	int rc, rc2;

	memset(&sec, 0, sizeof(sec));
	sec.file = "fuzz.conf";
	sec.line = 1;
	sec.name = "pdns";
	memset(&c, 0, sizeof(c));
	c.b.sec = &sec;
	c.base = "http://127.0.0.1/api/v1/servers/localhost";

	(void)pdns_errtext((const char *)data, size, msg, sizeof(msg));
	if ((j = json_loadb((const char *)data, size, 0, NULL)) == NULL)
		return 0;
	rrsets = json_is_array(j) ? j : json_object_get(j, "rrsets");
	if (json_is_array(rrsets)) {
		rc = collect(&c, rrsets, "sel._domainkey.example.com.", &f,
		    &err);
		if (rc != DK_OK) {
			if (err.msg[0] == '\0')
				abort();	/* every failure says why */
		} else {
			check_found(&f);
			rc2 = collect(&c, rrsets, "sel._domainkey.example.com.",
			    &g, &err);
			if (rc2 != DK_OK || g.ntxt != f.ntxt ||
			    (f.cname == NULL) != (g.cname == NULL))
				abort();	/* deterministic */
			found_clear(&g);
			found_clear(&f);
		}
	}
	json_decref(j);
	return 0;
}
