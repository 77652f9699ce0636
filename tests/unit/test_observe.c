/*
 * tests/unit/test_observe.c — one judgement of a server's answer
 * (lib/observe.c) over canned replies: each class, and the rule the
 * gate applies (dk_obs_ok) against the classes check reports.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "observe.h"

#define P_A	"fcSwM6j/pZMXfe3aKlD+Lo61FN00y5pzo/BUh8fRFDE="
#define P_B	"+q13npNaQS45pJl7Qgez1Zlpj8/DsK7p+EJ5+/BxBvo="
#define REC_A	"v=DKIM1; k=ed25519; p=" P_A

struct canned {
	struct dk_answer a;
	struct dk_txt	 t[2];
	char		*s[2];
};

/* An answer with rcode, AA, and zero, one or two TXT RRs. */
static struct dk_answer *
canned(struct canned *c, int rcode, int aa, const char *t1, const char *t2)
{
	memset(c, 0, sizeof(*c));
	c->a.rcode = rcode;
	c->a.aa = aa;
	c->a.ttl = 300;
	c->a.neg_ttl = 60;
	c->s[0] = (char *)t1;
	c->s[1] = (char *)t2;
	if (t1 != NULL) {
		c->t[0].str = &c->s[0];
		c->t[0].nstr = 1;
		c->a.ntxt = 1;
	}
	if (t2 != NULL) {
		c->t[1].str = &c->s[1];
		c->t[1].nstr = 1;
		c->a.ntxt = 2;
	}
	c->a.txt = c->t;
	return &c->a;
}

static struct dk_record *
expected(const char *text)
{
	struct dk_record *r = NULL;

	assert_int_equal(dk_record_parse(text, strlen(text), &r, NULL), DK_OK);
	return r;
}

static enum dk_obs_kind
judge(const struct dk_answer *a, const struct dk_record *want, int *differs,
    uint32_t *ttl)
{
	struct dk_observation o;
	enum dk_obs_kind k;

	assert_int_equal(dk_observe_txt(a, "192.0.2.1: timed out",
	    "192.0.2.1", "mail1._domainkey.example.test", want, &o), DK_OK);
	assert_true(o.why[0] != '\0');
	k = o.kind;
	if (differs != NULL)
		*differs = o.differs;
	if (ttl != NULL)
		*ttl = o.ttl;
	dk_observation_clear(&o);
	return k;
}

static void
test_each_class(void **state)
{
	struct canned c;
	struct dk_record *want = expected(REC_A);
	uint32_t ttl;
	int differs;

	assert_int_equal(judge(NULL, want, NULL, NULL), DK_OBS_NOANSWER);
	assert_int_equal(judge(canned(&c, 2, 1, NULL, NULL), want, NULL, NULL),
	    DK_OBS_NOANSWER);
	assert_int_equal(judge(canned(&c, 5, 0, NULL, NULL), want, NULL, NULL),
	    DK_OBS_LAME);
	assert_int_equal(judge(canned(&c, 9, 1, NULL, NULL), want, NULL, NULL),
	    DK_OBS_LAME);
	/* A referral or a resolver: AA=0 even with the record. */
	assert_int_equal(judge(canned(&c, 0, 0, REC_A, NULL), want, NULL,
	    NULL), DK_OBS_LAME);
	assert_int_equal(judge(canned(&c, 3, 1, NULL, NULL), want, NULL, &ttl),
	    DK_OBS_ABSENT);
	assert_int_equal(ttl, 60);
	assert_int_equal(judge(canned(&c, 0, 1, NULL, NULL), want, NULL, NULL),
	    DK_OBS_ABSENT);
	canned(&c, 0, 1, NULL, NULL);
	c.a.cname = "sel._domainkey.esp.example";
	assert_int_equal(judge(&c.a, want, NULL, NULL), DK_OBS_CNAME);
	assert_int_equal(judge(canned(&c, 0, 1, REC_A, REC_A), want, NULL,
	    NULL), DK_OBS_SEVERAL);
	assert_int_equal(judge(canned(&c, 0, 1, "v=spf1 -all", NULL), want,
	    NULL, NULL), DK_OBS_INVALID);
	assert_int_equal(judge(canned(&c, 0, 1, REC_A, NULL), want, NULL,
	    &ttl), DK_OBS_SERVED);
	assert_int_equal(ttl, 300);
	/* The same record written differently is the same record. */
	assert_int_equal(judge(canned(&c, 0, 1, "v=DKIM1;k=ed25519;  p=" P_A,
	    NULL), want, NULL, NULL), DK_OBS_SERVED);
	assert_int_equal(judge(canned(&c, 0, 1, "v=DKIM1; k=ed25519; p=" P_B,
	    NULL), want, &differs, NULL), DK_OBS_OTHER);
	assert_int_equal(differs, DK_DIFF_KEY);
	assert_int_equal(judge(canned(&c, 0, 1, "v=DKIM1; k=ed25519; p=",
	    NULL), want, &differs, NULL), DK_OBS_OTHER);
	assert_int_equal(differs, DK_DIFF_KEY);
	assert_int_equal(judge(canned(&c, 0, 1, "v=DKIM1; k=ed25519; t=y; p="
	    P_A, NULL), want, &differs, NULL), DK_OBS_OTHER);
	assert_int_equal(differs, DK_DIFF_TAGS);
	assert_int_equal(judge(canned(&c, 0, 1, "v=DKIM1; k=ed25519; h=sha1; "
	    "p=" P_A, NULL), want, &differs, NULL), DK_OBS_OTHER);
	assert_int_equal(differs, DK_DIFF_TAGS);
	/* Nothing expected: any record is another one. */
	assert_int_equal(judge(canned(&c, 0, 1, REC_A, NULL), NULL, &differs,
	    NULL), DK_OBS_OTHER);
	dk_record_free(want);
}

/*
 * The gate activates only on DK_OBS_SERVED (or DK_OBS_ABSENT when the
 * record must be gone); every other class is one check reports as a
 * problem.  Walk every canned reply through both.
 */
static void
test_gate_accepts_only_what_check_calls_served(void **state)
{
	struct canned c;
	struct dk_record *want = expected(REC_A);
	struct dk_observation o;
	const char *texts[] = { NULL, REC_A, "v=DKIM1; k=ed25519; t=y; p=" P_A,
	    "v=DKIM1; k=ed25519; p=" P_B, "v=DKIM1; k=ed25519; p=", "garbage" };
	int rcodes[] = { 0, 2, 3, 5 };
	size_t i, j, served = 0;
	int aa;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		for (j = 0; j < sizeof(rcodes) / sizeof(rcodes[0]); j++)
			for (aa = 0; aa < 2; aa++) {
				canned(&c, rcodes[j], aa, texts[i], NULL);
				assert_int_equal(dk_observe_txt(&c.a, "", "s",
				    "o", want, &o), DK_OK);
				assert_int_equal(dk_obs_ok(&o, 0),
				    o.kind == DK_OBS_SERVED);
				if (dk_obs_ok(&o, 0)) {
					served++;
					assert_int_equal(rcodes[j], 0);
					assert_int_equal(aa, 1);
					assert_string_equal(texts[i], REC_A);
				}
				assert_int_equal(dk_obs_ok(&o, 1),
				    o.kind == DK_OBS_ABSENT);
				dk_observation_clear(&o);
			}
	assert_int_equal(served, 1);
	dk_record_free(want);
}

static void
test_cname(void **state)
{
	struct canned c;
	struct dk_observation o;
	char *names[] = { "Sel._domainkey.ESP.example." };

	canned(&c, 0, 1, NULL, NULL);
	c.a.names = names;
	c.a.nnames = 1;
	assert_int_equal(dk_observe_cname(&c.a, NULL, "s", "o",
	    "sel._domainkey.esp.example.", &o), DK_OK);
	assert_int_equal(o.kind, DK_OBS_SERVED);
	dk_observation_clear(&o);
	assert_int_equal(dk_observe_cname(&c.a, NULL, "s", "o",
	    "other.example.", &o), DK_OK);
	assert_int_equal(o.kind, DK_OBS_OTHER);
	assert_string_equal(o.cname, names[0]);
	dk_observation_clear(&o);
	canned(&c, 3, 1, NULL, NULL);
	assert_int_equal(dk_observe_cname(&c.a, NULL, "s", "o", "x.", &o),
	    DK_OK);
	assert_int_equal(o.kind, DK_OBS_ABSENT);
	dk_observation_clear(&o);
	canned(&c, 0, 0, NULL, NULL);
	assert_int_equal(dk_observe_cname(&c.a, NULL, "s", "o", "x.", &o),
	    DK_OK);
	assert_int_equal(o.kind, DK_OBS_LAME);
	dk_observation_clear(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_class),
		cmocka_unit_test(test_gate_accepts_only_what_check_calls_served),
		cmocka_unit_test(test_cname),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
