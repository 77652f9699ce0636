"""match = (Salesforce-style domain matching) through the real signers:
mail From the domain, a subdomain and a deeper subdomain goes through the
OpenDKIM milter and through Exim, and the d= each carries is the most
specific [domain] whose match covers the From domain; every signature
verifies with python3-dkim against the test BIND.  Signers that cannot
express a match refuse the configuration (exit 78, file:line)."""

import json
import os
import re

from exim import Exim, Sink, open_for_exim
from harness import run, run_ok
from opendkim_milter import use_milter
from rspamd import use_signer, verify_all

# example.test signs for itself and every subdomain but own.example.test,
# which has its own key for itself only; kids.example.test's key signs
# for the names below it, not for kids.example.test itself.
SECTIONS = """
[domain own.example.test]
provider = primary
signer = opendkim
selectors = own1 own2
ttl = 2s
retire_after = 3s
propagation_timeout = 10s
safety_margin = 1s
match = domain

[domain kids.example.test]
provider = primary
signer = opendkim
selectors = kid1 kid2
ttl = 2s
retire_after = 3s
propagation_timeout = 10s
safety_margin = 1s
match = subdomains
"""

# From domain -> (d=, s=) of the signature, or None: not signed.
EXPECT = {
    "example.test": ("example.test", "mail1"),
    "sub.example.test": ("example.test", "mail1"),
    "deep.sub.example.test": ("example.test", "mail1"),
    "own.example.test": ("own.example.test", "own1"),
    "x.own.example.test": ("example.test", "mail1"),
    "kids.example.test": ("example.test", "mail1"),
    "a.kids.example.test": ("kids.example.test", "kid1"),
    "b.a.kids.example.test": ("kids.example.test", "kid1"),
    "other.test": None,
}


def configure(env, extra=(), **kw):
    s = env.config(extra_domain_lines=("match = domain-and-subdomains",) +
                   tuple(extra), **kw)
    with open(s.conf, "a") as f:
        f.write(SECTIONS)
    return s


def rotate_all(s):
    for d in ("example.test", "own.example.test", "kids.example.test"):
        run_ok(s, "rotate", "--domain", d)


def test_opendkim_milter_signs_subdomains_with_the_most_specific_key(env):
    s = configure(env)
    r = run(s, "configtest")
    assert r.code == 0, r.describe()
    m = use_milter(env, s)
    m.start()
    try:
        rotate_all(s)
        for frm, want in sorted(EXPECT.items()):
            # A message OpenDKIM will not sign is accepted before its
            # body, which miltertest's script does not expect: unsigned
            # mail is Exim's part below.
            if want is None:
                continue
            env.log("signing From %s" % frm)
            reply, sigs, signed = m.sign(frm)
            assert reply == "a", (frm, reply, sigs)
            got = verify_all(env.bind, signed, log=env.log)
            assert [(d, sel) for d, sel, _ in got] == [want], \
                "From %s: signed %r, expected %r" % (frm, got, want)
    finally:
        m.stop()
    # The most specific lines come first, whatever the switch order.
    with open(s.signing_table) as f:
        lines = [ln.split()[0] for ln in f if ln.startswith("*@")]
    assert lines.index("*@own.example.test") < \
        lines.index("*@*.example.test"), lines
    assert lines.index("*@*.kids.example.test") < \
        lines.index("*@*.example.test"), lines


def test_exim_signs_subdomains_with_the_most_specific_key(env):
    s = configure(env, tables=False)
    lsearch = os.path.join(env.tmp, "exim-dkim.lsearch")
    use_signer(s, ["type = exim", "file = %s" % lsearch])
    with open(s.conf) as f:
        text = f.read()
    with open(s.conf, "w") as f:
        f.write(text.replace("[dkimkeyd]\n", "[dkimkeyd]\nkey_group = "
                             "Debian-exim\n", 1))
    open_for_exim(env.tmp, s)
    sink = Sink().start()
    x = Exim(env.tmp, sink.port, lsearch)
    try:
        r = run(s, "configtest")
        assert r.code == 0, r.describe()
        rotate_all(s)
        x.start()
        for frm, want in sorted(EXPECT.items()):
            token = "match-%s" % frm
            x.send("a@" + frm, "alice@" + frm, subject=token)
            msg = sink.find(token)
            if want is None:
                assert b"DKIM-Signature" not in msg, frm
                continue
            got = verify_all(env.bind, msg, log=env.log)
            assert [(d, sel) for d, sel, _ in got] == [want], \
                "From %s: signed %r, expected %r" % (frm, got, want)
    finally:
        x.stop()
        sink.stop()


def _refused(s, pattern):
    r = run(s, "configtest")
    assert r.code == 78, r.describe()
    assert re.search(pattern, r.err), r.describe()


def test_configtest_refuses_match_a_signer_cannot_express(env):
    s = env.config(signer="files",
                   extra_domain_lines=("match = subdomains",))
    _refused(s, r"dkimkeyd\.conf:\d+: \[domain example\.test\]: match = "
             r"subdomains cannot be expressed by \[signer files\]")
    s = env.config(tables=False,
                   extra_domain_lines=("match = domain-and-subdomains",))
    use_signer(s, ["type = rspamd",
                   "file = %s" % os.path.join(env.tmp, "rspamd.conf"),
                   "key_dir = %s" % os.path.join(env.tmp, "rkeys")])
    os.makedirs(os.path.join(env.tmp, "rkeys"), mode=0o700, exist_ok=True)
    _refused(s, r"dkimkeyd\.conf:\d+: \[domain example\.test\]: match = "
             r"domain-and-subdomains cannot be expressed by \[signer "
             r"opendkim\] \(type rspamd\)")
    # match = domain is what every signer expresses.
    s = env.config(signer="files", extra_domain_lines=("match = domain",))
    r = run(s, "configtest")
    assert r.code == 0, r.describe()


def test_configtest_refuses_overlap_under_multiple_signatures(env):
    s = configure(env)
    with open(s.conf) as f:
        text = f.read()
    with open(s.conf, "w") as f:
        f.write(text.replace("require_safe_keys = no\n",
                             "require_safe_keys = no\n"
                             "multiple_signatures = yes\n", 1))
    _refused(s, r"dkimkeyd\.conf:\d+: \[domain (own|kids)\.example\.test\] "
             r"overlaps \[domain example\.test\] .*MultipleSignatures")


def test_check_judges_dmarc_alignment_with_the_matched_domain(env):
    """check judges each sender's DMARC alignment with the d= the most
    specific matching section signs its mail with, and says which."""
    s = configure(env, extra=("senders = sub.example.test own.example.test "
                              "a.kids.example.test",))
    rotate_all(s)
    env.bind.set_txt("_dmarc.example.test", "v=DMARC1; p=reject")
    # Strict at own.example.test: its own section signs it, d= equal.
    env.bind.set_txt("_dmarc.own.example.test",
                     "v=DMARC1; p=reject; adkim=s")
    r = run(s, "check")
    assert r.code == 0, r.describe()
    assert "sender own.example.test is signed with d=own.example.test" \
        in r.out, r.describe()
    assert "sender a.kids.example.test is signed with d=kids.example.test" \
        in r.out, r.describe()
    j = json.loads(run(s, "check", "--json", "--domain",
                       "example.test").out)
    dm = {x["sender"]: x for x in j["domains"][0]["dmarc"]}
    assert dm["sub.example.test"]["signing_domain"] == "example.test", dm
    assert dm["own.example.test"]["signing_domain"] == \
        "own.example.test", dm
    assert dm["a.kids.example.test"]["signing_domain"] == \
        "kids.example.test", dm
    assert all(x["matched"] and x["aligned"] for x in dm.values()), dm
    # Strict at a subdomain the parent's key signs: no longer aligned.
    env.bind.set_txt("_dmarc.sub.example.test",
                     "v=DMARC1; p=reject; adkim=s")
    r = run(s, "check")
    assert r.code == 1, r.describe()
    assert "sender sub.example.test (p=reject): d=example.test does not " \
        "align with From sub.example.test: adkim=s" in r.out, r.describe()
