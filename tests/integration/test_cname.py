"""CNAME delegation (mode = cname) against a real BIND serving a customer
zone (example.test) and an operator zone (operator.test): the TXT record
goes into the operator's zone, no key is activated before the customer's
CNAME leads to it on every server of the customer's zone, cname_provider
maintains that CNAME, and a bulk `run --once` sends many records in few
UPDATE messages."""

import os
import re
import signal

import dkim
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME

from harness import (FOREIGN_KEYTABLE, FOREIGN_SIGNINGTABLE, MESSAGE,
                     _private_key_for_dkimpy, public_p, read_bytes,
                     record_tags, run, run_ok, signer_current, wait_until,
                     zones)

OPERATOR = "operator.test"
TARGET = "{selector}.{domain}.operator.test"


def _allow_cname(env):
    """The harness grants TXT updates only; the customer's side of these
    tests writes CNAME records too (by hand, or through cname_provider)."""
    env.bind.allow_update_types("CNAME")


def _set_cname(env, name, target):
    """Make name a CNAME to target (None: remove it), as the customer
    would, with dnspython and the TSIG key."""
    def build(u, n):
        u.delete(n, "CNAME")
        if target is not None:
            rd = dns.rdtypes.ANY.CNAME.CNAME(
                dns.rdataclass.IN, dns.rdatatype.CNAME,
                dns.name.from_text(target))
            u.add(n, 2, rd)
    env.bind._update(name, build)


def _cname_of(env, name):
    r = env.bind.query(name, "CNAME")
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and \
                rrset.name == dns.name.from_text(name):
            return str(rrset[0].target).rstrip(".")
    return None


def _txt_at(env, name):
    """TXT records at name itself (not through a CNAME)."""
    r = env.bind.query(name, "TXT")
    own = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.TXT and
           rr.name == dns.name.from_text(name)]
    if not own:
        return []
    return [b"".join(rd.strings).decode("ascii") for rd in own[0]]


def _config(env, discovery=False, propagation_timeout="4s", extra=()):
    """One cname-mode domain example.test; TXT in operator.test."""
    lines = ["mode = cname", "cname_target = " + TARGET] + list(extra)
    s = env.config(discovery=discovery,
                   propagation_timeout=propagation_timeout,
                   extra_domain_lines=lines)
    if not discovery:
        # The provider publishes in the operator's zone; the customer's
        # servers are named, as the operator's probe_servers do not say.
        with open(s.conf) as f:
            text = f.read()
        text = text.replace("zone = example.test", "zone = " + OPERATOR)
        text += "cname_servers = %s\n" % env.bind.addr()
        with open(s.conf, "w") as f:
            f.write(text)
    env.setup = s
    return s


def _resolve_txt(env, name, depth=8):
    """TXT at name as a recursive resolver finds it: an authoritative
    server answers a CNAME into another zone with the CNAME alone (RFC
    1034 §4.3.2), and the resolver goes on at the target."""
    if depth == 0:
        return None
    name = name.decode("ascii") if isinstance(name, bytes) else name
    recs = _txt_at(env, name.rstrip("."))
    if recs:
        return recs[0]
    t = _cname_of(env, name.rstrip("."))
    return _resolve_txt(env, t, depth - 1) if t else None


def _verify_through_cname(env, domain, log):
    """Sign with the key the signer uses for domain; verify with
    python3-dkim, which asks for TXT at SELECTOR._domainkey.DOMAIN."""
    sel, kf = signer_current(env.setup, domain)
    key, alg = _private_key_for_dkimpy(kf)
    msg = MESSAGE % (domain.encode(), domain.encode())
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name.decode("ascii") if isinstance(name, bytes)
                     else name)
        v = _resolve_txt(env, name)
        return v.encode("ascii") if v else None
    sig = dkim.sign(msg, sel.encode(), domain.encode(), key,
                    include_headers=[b"from", b"to", b"subject"],
                    signature_algorithm=alg)
    ok = dkim.verify(sig + msg, dnsfunc=dnsfunc)
    want = "%s._domainkey.%s" % (sel, domain)
    assert [a.rstrip(".") for a in asked] == [want], asked
    if not ok:
        log("dkim.verify failed for %s through its CNAME" % want)
    return ok


def _check(s, *args):
    r = run(s, "check", *args)
    assert "AddressSanitizer" not in r.err and \
        "runtime error" not in r.err, r.describe()
    return r


def _tables_untouched(s):
    assert read_bytes(s.key_table) == FOREIGN_KEYTABLE.encode(), \
        "KeyTable changed before the CNAME was served"
    assert read_bytes(s.signing_table) == FOREIGN_SIGNINGTABLE.encode(), \
        "SigningTable changed before the CNAME was served"
    assert not os.path.exists(s.reloaded), "signer reloaded"


@zones("example.test", OPERATOR)
def test_cname_rotation_waits_for_the_customer_cname(env):
    _allow_cname(env)
    # NS discovery for both zones: the customer's servers are found the
    # way they would be in production, through the resolver.
    s = _config(env, discovery=True)
    sel_name = "mail1._domainkey.example.test"
    target = "mail1.example.test.operator.test"

    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 75, r.describe()
    env.log(r.describe())
    # It waited for the CNAME up to propagation_timeout (4s).
    assert r.elapsed >= 3, r.describe()
    assert "%s must be a CNAME to %s on every server of example.test" % (
        sel_name, target) in r.err, r.describe()
    assert "127.0.0.1:%d has none" % env.bind.port in r.err, r.describe()
    # Published in the operator's zone, and nowhere else.
    recs = _txt_at(env, target)
    assert len(recs) == 1 and record_tags(recs[0]).get("p"), recs
    assert _txt_at(env, sel_name) == [], "TXT written in the customer zone"
    _tables_untouched(s)
    st = run_ok(s, "status", "--domain", "example.test")
    assert "active" not in re.sub(r"no active key", "", st), st

    # run --once while the CNAME is still missing: pending, not an error
    # until propagation_timeout (which has passed here: 75 again).
    r = run(s, "run", "--once")
    assert r.code == 75 and "must be a CNAME" in r.err, r.describe()
    _tables_untouched(s)

    # The customer adds the CNAME: the rotation completes.
    _set_cname(env, sel_name, target)
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    sel, kf = signer_current(s)
    assert sel == "mail1", sel
    assert record_tags(_txt_at(env, target)[0])["p"] == public_p(kf)
    # python3-dkim asks for TXT at the selector name; the CNAME leads
    # to the record in the operator's zone.
    assert _cname_of(env, sel_name) == target
    assert _verify_through_cname(env, "example.test", env.log), \
        "signature does not verify through the CNAME"
    r = _check(s)
    assert r.code == 0 and r.out.startswith("DKIM OK"), r.describe()

    # The customer points the CNAME elsewhere: CRITICAL, naming it.
    _set_cname(env, sel_name, "elsewhere.operator.test")
    r = _check(s)
    assert r.code == 2 and r.out.startswith("DKIM CRITICAL"), r.describe()
    assert "points to elsewhere.operator.test" in r.out and \
        target in r.out, r.describe()
    _set_cname(env, sel_name, None)
    r = _check(s)
    assert r.code == 2 and "no CNAME on" in r.out, r.describe()


@zones("example.test", OPERATOR)
def test_cname_missing_stops_the_next_rotation_too(env):
    _allow_cname(env)
    s = _config(env)
    _set_cname(env, "mail1._domainkey.example.test",
               "mail1.example.test.operator.test")
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    sel1, kf1 = signer_current(s)
    # mail2's CNAME is missing: the second rotation publishes mail2 in
    # the operator's zone but keeps signing with mail1.
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 75, r.describe()
    assert "mail2._domainkey.example.test must be a CNAME to " \
        "mail2.example.test.operator.test" in r.err, r.describe()
    assert signer_current(s) == (sel1, kf1)
    assert len(_txt_at(env, "mail2.example.test.operator.test")) == 1
    assert _verify_through_cname(env, "example.test", env.log)


@zones("example.test", OPERATOR)
def test_cname_provider_creates_the_cname(env):
    _allow_cname(env)
    s = _config(env, extra=("cname_provider = customer",))
    with open(s.conf) as f:
        text = f.read()
    text += ("\n[provider customer]\ntype = rfc2136\nserver = %s\n"
             "tsig_key_file = %s\nzone = example.test\n"
             "probe_servers = %s\n" % (env.bind.addr(), s.tsig_key_file,
                                       env.bind.addr()))
    with open(s.conf, "w") as f:
        f.write(text)
    run_ok(s, "configtest")

    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    assert _cname_of(env, "mail1._domainkey.example.test") == \
        "mail1.example.test.operator.test"
    sel, kf = signer_current(s)
    assert sel == "mail1"
    assert _verify_through_cname(env, "example.test", env.log)
    r = _check(s)
    assert r.code == 0, r.describe()

    # A TXT record at the customer's name is someone's key: the CNAME is
    # not forced over it, and mail1 keeps signing.
    env.bind.set_txt("mail2._domainkey.example.test", "v=DKIM1; p=")
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code != 0, r.describe()
    assert "mail2._domainkey.example.test holds a TXT record" in r.err, \
        r.describe()
    assert signer_current(s) == (sel, kf)
    assert _txt_at(env, "mail2._domainkey.example.test") == ["v=DKIM1; p="]
    env.bind.delete_txt("mail2._domainkey.example.test")


N_BULK = 20


def _bulk_config(env, n):
    """n customers (c1.example.test ...) delegating to one operator zone,
    cname_provider keeping their CNAMEs; no key yet and rotate_every set,
    so that all rotate at once."""
    s = env.config()
    with open(s.conf) as f:
        text = f.read()
    head = text[:text.index("[domain ")]
    head = head.replace("zone = example.test", "zone = " + OPERATOR)
    head += ("[provider customer]\ntype = rfc2136\nserver = %s\n"
             "tsig_key_file = %s\nzone = example.test\n"
             "probe_servers = %s\n\n" % (env.bind.addr(), s.tsig_key_file,
                                         env.bind.addr()))
    doms = ["c%d.example.test" % i for i in range(1, n + 1)]
    for d in doms:
        head += ("[domain %s]\nprovider = primary\nsigner = opendkim\n"
                 "selectors = mail1 mail2\nttl = 2s\nretire_after = 3s\n"
                 "propagation_timeout = 60s\nsafety_margin = 1s\n"
                 "rotate_every = 1m\nmode = cname\ncname_target = %s\n"
                 "cname_provider = customer\n\n" % (d, TARGET))
    with open(s.conf, "w") as f:
        f.write(head)
    env.setup = s
    return s, doms


def _all_active(s, doms):
    kt = read_bytes(s.key_table).decode()
    return all("mail1._domainkey.%s " % d in kt for d in doms)


@zones("example.test", OPERATOR)
def test_cname_bulk_run_once_batches_updates(env):
    _allow_cname(env)
    s, doms = _bulk_config(env, N_BULK)

    r = run(s, "run", "--once", timeout=300)
    assert r.code == 0 and r.err == "", r.describe()
    m = re.search(r"published (\d+) records in (\d+) UPDATE messages?",
                  r.out)
    assert m, "no UPDATE count printed: " + r.describe()
    records, messages = int(m.group(1)), int(m.group(2))
    assert records == N_BULK, r.describe()
    assert messages < records, "%d records took %d UPDATE messages" % (
        records, messages)
    env.log("bulk: %d records in %d UPDATE messages" % (records, messages))
    for d in doms:
        t = "mail1.%s.operator.test" % d
        assert len(_txt_at(env, t)) == 1, "no record at " + t
        assert _cname_of(env, "mail1._domainkey." + d) == t

    # Later runs finish every rotation.
    def all_active():
        run_ok(s, "run", "--once", timeout=300)
        return _all_active(s, doms)
    wait_until(all_active, 60, "every bulk domain to be active",
               interval=0.5)
    for d in doms[:3]:
        assert _verify_through_cname(env, d, env.log), \
            "signature of %s does not verify" % d


@zones("example.test", OPERATOR)
def test_cname_daemon_batches_updates(env):
    from test_daemon import Daemon
    _allow_cname(env)
    s, doms = _bulk_config(env, 10)
    d = Daemon(s)
    try:
        d.expect("published 10 records in 1 UPDATE message", deadline=120)
        wait_until(lambda: _all_active(s, doms), 60,
                   "every domain to be active under the daemon")
        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0, d.describe()
        assert d.err() == "", d.describe()
    finally:
        d.stop()
    assert _verify_through_cname(env, doms[-1], env.log)


@zones("example.test", OPERATOR)
def test_cname_dry_run_names_the_target_and_the_cname(env):
    s = _config(env)
    before = read_bytes(s.state_file())
    r = run(s, "rotate", "--domain", "example.test", "--dry-run")
    assert r.code == 0 and r.err == "", r.describe()
    target = "mail1.example.test.operator.test"
    assert "would publish %s TXT" % target in r.out, r.describe()
    assert "mail1._domainkey.example.test CNAME %s" % target in r.out, \
        r.describe()
    assert read_bytes(s.state_file()) == before, "dry run changed state"
    assert _txt_at(env, target) == [], "dry run published"
