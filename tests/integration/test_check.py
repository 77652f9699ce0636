"""`dkimkeyd check` against a real BIND: every status and message of the
probe (issue: verification probes and monitoring), and hostile replies
from a scriptable responder that no real server would send."""

import json
import os
import re
import subprocess

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.update
import dns.query

from harness import (Bind, public_p, rotate_and_verify, run, split_txt,
                     signer_current, wait_until, zones)
from responder import Responder

CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def _check(s, *args):
    return run(s, "check", *args)


def _expect(r, word, *needles):
    """Exit code and status line for word; every needle in stdout."""
    lines = r.out.splitlines()
    first = lines[0] if lines else ""
    assert r.code == CODES[word], "expected %s: %s" % (word, r.describe())
    assert first.startswith("DKIM %s - " % word), r.describe()
    assert " | " in first or first.endswith(" |"), \
        "no perfdata: " + r.describe()
    for n in needles:
        assert n in r.out, "%r not in the output: %s" % (n, r.describe())
    assert "AddressSanitizer" not in r.err and "runtime error" not in \
        r.err, r.describe()
    return r


def _rsa_record(env, bits, extra=""):
    path = os.path.join(env.tmp, "rsa%d-%s.pem" % (bits, os.urandom(3).hex()))
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt",
                    "rsa_keygen_bits:%d" % bits, "-out", path], check=True,
                   capture_output=True, timeout=120)
    return "v=DKIM1; k=rsa; %sp=%s" % (extra, public_p(path))


def _add_txt(bind, name, value, ttl=2):
    """Add one more TXT RR at name (a second record, behind our back)."""
    rd = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT,
                                 split_txt(value))
    bind._update(name, lambda u, n: u.add(n, ttl, rd))


def _healthy(env, **kw):
    s = env.config(**kw)
    rotate_and_verify(env, s, "mail1")
    return s


def _set_conf_line(s, key, value):
    """Replace `key = ...` in s.conf (first occurrence) or insert it after
    [dkimkeyd]."""
    with open(s.conf) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.split("=")[0].strip() == key:
            lines[i] = "%s = %s" % (key, value)
            break
    else:
        lines.insert(lines.index("[dkimkeyd]") + 1, "%s = %s" % (key,
                                                                 value))
    with open(s.conf, "w") as f:
        f.write("\n".join(lines) + "\n")


def _perf(r):
    first = r.out.splitlines()[0]
    return first.split("|", 1)[1]


# -- §1: the managed selectors ----------------------------------------------

def test_check_healthy_is_ok_with_perfdata(env):
    s = _healthy(env)
    r = _expect(_check(s), "OK")
    assert r.err == "", r.describe()
    perf = _perf(r)
    assert re.search(r"'example\.test_active_age'=\d+s;;", perf), perf
    assert "'example.test_servers_ok'=1;;;0;1" in perf, perf
    # A single line: nothing to report.
    assert len(r.out.splitlines()) == 1, r.describe()


def test_check_duplicate_txt_is_critical(env):
    s = _healthy(env)
    _add_txt(env.bind, s.selector_name("mail1"), _rsa_record(env, 2048))
    _expect(_check(s), "CRITICAL", "2 TXT RRs", "exactly one",
            env.bind.addr(), "mail1._domainkey.example.test")


def test_check_changed_record_is_critical_naming_server(env):
    s = _healthy(env)
    env.bind.set_txt(s.selector_name("mail1"), _rsa_record(env, 2048))
    r = _expect(_check(s), "CRITICAL", env.bind.addr(), "another key",
                "mail1._domainkey.example.test")
    assert "'example.test_servers_ok'=0;;;0;1" in _perf(r), r.describe()


def test_check_record_removed_is_critical(env):
    s = _healthy(env)
    env.bind.delete_txt(s.selector_name("mail1"))
    _expect(_check(s), "CRITICAL", "no record on " + env.bind.addr(),
            "active")


def test_check_testing_flag_is_warning(env):
    s = _healthy(env)
    rec = env.bind.query_txt(s.selector_name("mail1"))[0]
    env.bind.set_txt(s.selector_name("mail1"),
                     rec.replace("k=rsa;", "k=rsa; t=y;"))
    _expect(_check(s), "WARNING", "t=y", "mail1._domainkey.example.test")


def test_check_revoked_key_of_active_selector_is_critical(env):
    s = _healthy(env)
    env.bind.set_txt(s.selector_name("mail1"), "v=DKIM1; k=rsa; p=")
    _expect(_check(s), "CRITICAL", "revoked record")


def test_check_server_down_is_unknown(env):
    s = _healthy(env)
    env.bind.stop()
    r = _expect(_check(s), "UNKNOWN", env.bind.addr(), "no answer")
    assert "'example.test_servers_ok'=0;;;0;1" in _perf(r), r.describe()


def test_check_signer_on_other_key_is_critical(env):
    s = _healthy(env)
    with open(s.key_table) as f:
        kt = f.read()
    with open(s.key_table, "w") as f:
        f.write(kt.replace(":mail1:", ":mail2:"))
    _expect(_check(s), "CRITICAL", "signer opendkim")


# -- §1: watch-only selectors ------------------------------------------------

def _watch(env, value_by_selector, rotate=True):
    sels = " ".join(value_by_selector)
    s = env.config(extra_domain_lines=["watch_selectors = " + sels])
    if rotate:
        rotate_and_verify(env, s, "mail1")
    for sel, value in value_by_selector.items():
        if value is not None:
            env.bind.set_txt(s.selector_name(sel), value)
    return s


def test_check_watch_selectors_ok(env):
    s = _watch(env, {"google": _rsa_record(env, 2048),
                     "s1": "v=DKIM1; k=ed25519; "
                     "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="})
    r = _expect(_check(s), "OK")
    assert "'example.test_servers_ok'=3;;;0;3" in _perf(r), r.describe()


def test_check_watch_short_rsa_is_warning(env):
    s = _watch(env, {"google": _rsa_record(env, 1024)})
    _expect(_check(s), "WARNING", "1024 bits", "google._domainkey")


def test_check_watch_rsa_under_1024_is_critical(env):
    s = _watch(env, {"s1": _rsa_record(env, 512)}, rotate=False)
    _expect(_check(s), "CRITICAL", "512 bits", "under 1024")


def test_check_watch_syntax_error_is_critical(env):
    rec = _rsa_record(env, 2048)
    s = _watch(env, {"dup": rec + "; p=AAAA", "b64": "v=DKIM1; p=@@@@",
                     "kx": "v=DKIM1; k=dsa; p=AAAA"}, rotate=False)
    _expect(_check(s), "CRITICAL", "dup._domainkey.example.test: "
            "invalid record", "duplicate tag p=",
            "b64._domainkey.example.test: invalid record",
            "kx._domainkey.example.test: invalid record")


def test_check_watch_hash_and_service_restrictions_are_critical(env):
    s = _watch(env, {"h1": _rsa_record(env, 2048, "h=sha1; "),
                     "s1": _rsa_record(env, 2048, "s=foo; ")},
               rotate=False)
    _expect(_check(s), "CRITICAL", "h=sha1 does not allow sha256",
            "s=foo does not include email")


def test_check_watch_selector_missing_is_critical(env):
    s = _watch(env, {"google": None})
    _expect(_check(s), "CRITICAL", "watched selector google has no key "
            "record on " + env.bind.addr())


# -- §1: several servers ----------------------------------------------------

def _second_bind(env):
    """A second server for example.test with the zone as created (serial
    1): an out-of-date secondary."""
    b = Bind(env.bind.zones).start()
    env.log("second server %s in %s" % (b.addr(), b.dir))
    return b


def test_check_lagging_secondary_is_warning(env):
    s = _healthy(env)
    b2 = _second_bind(env)
    try:
        # The older copy serves the same selector (as a secondary that
        # missed only the latest change would), but an older serial.
        rec = env.bind.query_txt(s.selector_name("mail1"))[0]
        b2.set_txt(s.selector_name("mail1"), rec)
        for i in range(2):   # later changes the copy has not seen
            env.bind.set_txt("bump%d.example.test" % i, "x")
        serial1 = env.bind.query("example.test", "SOA").answer[0][0].serial
        serial2 = b2.query("example.test", "SOA").answer[0][0].serial
        assert serial2 < serial1, (serial1, serial2)
        _set_conf_line(s, "probe_servers", "%s %s" % (env.bind.addr(),
                                                     b2.addr()))
        r = _expect(_check(s), "WARNING", b2.addr(), env.bind.addr(),
                    "serial %d, behind serial %d" % (serial2, serial1))
        assert "'example.test_servers_ok'=2;;;0;2" in _perf(r), \
            r.describe()
    finally:
        b2.cleanup()


def test_check_nameservers_disagree_is_warning(env):
    s = _watch(env, {"google": _rsa_record(env, 2048)})
    b2 = _second_bind(env)
    try:
        rec = env.bind.query_txt(s.selector_name("mail1"))[0]
        b2.set_txt(s.selector_name("mail1"), rec)
        b2.set_txt(s.selector_name("google"), _rsa_record(env, 2048))
        for i in range(3):   # the copy's serial passes the primary's
            b2.set_txt("bump%d.example.test" % i, "x")
        _set_conf_line(s, "probe_servers", "%s %s" % (env.bind.addr(),
                                                     b2.addr()))
        _expect(_check(s), "WARNING", "nameservers disagree",
                "google._domainkey.example.test")
    finally:
        b2.cleanup()


@zones("example.test", "other.test")
def test_check_discovers_servers_of_many_domains_at_once(env):
    """Discovery mode with several domains: the servers of all of them are
    looked up together, and each domain's report (servers found, or the
    lookup's failure in the per-domain words) is what checking it alone
    gives."""
    s = _healthy(env, discovery=True)
    with open(s.conf, "a") as f:
        for d in ("other.test", "sub.example.test", "gone.invalid"):
            f.write("\n[domain %s]\nprovider = primary\n"
                    "signer = opendkim\nselectors = mail1 mail2\n"
                    "watch_selectors = w1 w2\n" % d)
    r = _check(s)
    assert r.code in (1, 2, 3) and r.err == "", r.describe()
    perf = _perf(r)
    for d in ("example.test", "other.test", "sub.example.test"):
        n = "'%s_servers_ok'=" % d
        assert n in perf, r.describe()
    # BIND serves no .invalid zone: the SOA walk fails at its first step.
    assert ("%s: SOA of w1._domainkey.gone.invalid: REFUSED" %
            env.bind.addr()) in r.out, r.describe()
    want = []
    # The active key's age moves on between the runs (a second boundary
    # can fall between them): compare all but its value.

    def ageless(x):
        return re.sub(r"(_active_age'=)\d+s", r"\1Ns", x)
    for d in ("example.test", "other.test", "sub.example.test",
              "gone.invalid"):
        one = _check(s, "--domain", d)
        assert one.err == "", one.describe()
        mine = [ageless(x) for x in perf.split()
                if x.startswith("'%s_" % d)]
        assert mine and mine == [ageless(x) for x in _perf(one).split()
                                 if x.startswith("'%s_" % d)], \
            (r.describe(), one.describe())
        want += one.out.splitlines()[1:]
    # The details of the whole run are each domain's, in order.
    assert r.out.splitlines()[1:] == want, r.describe()


def test_check_many_domains_judged_in_parts(env):
    """More domains than check judges at once (it asks, judges and
    reports them part by part): the plugin line still names the worst
    problem of the whole run, found in a later part, the perfdata and
    the details keep the order of the configuration, and the JSON
    document lists every domain once, in order."""
    s = env.config()
    n = 1100
    with open(s.conf, "a") as f:
        for i in range(n):
            f.write("\n[domain d%d.example.test]\nprovider = primary\n"
                    "signer = opendkim\nselectors = mail1 mail2\n" % i)
            if i == 1050:
                f.write("watch_selectors = w1\n")
    r = _check(s)
    assert r.code == 2 and r.err == "", r.describe()
    lines = r.out.splitlines()
    assert lines[0].startswith(
        "DKIM CRITICAL - w1._domainkey.d1050.example.test: watched "
        "selector w1 has no key record on %s (and more below) |" %
        env.bind.addr()), r.describe()
    names = re.findall(r"'([^']+)_servers_ok'=", _perf(r))
    assert names == ["example.test"] + ["d%d.example.test" % i
                                        for i in range(n)], names[:5]
    warn = [x for x in lines[1:] if x.startswith("WARNING: ")]
    assert [x.split()[1] for x in warn] == \
        ["example.test:"] + ["d%d.example.test:" % i for i in range(n)], \
        warn[:3]
    crit = lines.index("CRITICAL: w1._domainkey.d1050.example.test: watched "
                       "selector w1 has no key record on %s" %
                       env.bind.addr())
    assert lines[crit - 1].startswith("WARNING: d1049.example.test: ") and \
        lines[crit + 1].startswith("WARNING: d1050.example.test: "), \
        lines[crit - 1:crit + 2]
    j = json.loads(_check(s, "--json").out)
    assert j["status"] == "CRITICAL" and j["exit"] == 2, j["status"]
    assert [d["domain"] for d in j["domains"]] == \
        ["example.test"] + ["d%d.example.test" % i for i in range(n)]
    assert [d["domain"] for d in j["domains"] if d["status"] ==
            "CRITICAL"] == ["d1050.example.test"]
    # Only the domain with a selector to probe asks: its TXT and its
    # zone's serial.
    assert j["probe"]["queries"] == 2, j["probe"]


def test_check_a_silent_server_costs_one_part_not_every_part(env):
    """A server that answered none of its questions in one part of the
    run is not asked again in the later parts: its questions there fail
    at once with the same reason (one time budget per run, not one per
    512 domains), still named in each domain's problems."""
    s = _healthy(env)
    n = 1100
    with Responder(env.bind.port, "silent") as resp:
        _set_conf_line(s, "probe_servers", "%s %s" % (env.bind.addr(),
                                                     resp.addr()))
        with open(s.conf, "a") as f:
            for i in range(n):
                f.write("\n[domain d%d.example.test]\nprovider = primary\n"
                        "signer = opendkim\nselectors = mail1 mail2\n" % i)
                if i in (5, 1050):
                    f.write("watch_selectors = w1\n")
        r = _check(s, "--json")
        j = json.loads(r.out)
        asked = resp.queries
    assert j["status"] == "CRITICAL", j["status"]  # the watched w1

    def silent_problems(domain):
        d = [x for x in j["domains"] if x["domain"] == domain][0]
        return [p["message"] for sel in d["selectors"]
                for p in sel["problems"] if resp.addr() in p["message"]]
    first, late = silent_problems("d5.example.test"), \
        silent_problems("d1050.example.test")
    assert first and late, (first, late)
    assert all("not asked again" not in m for m in first), first
    assert all("no answer from %s" % resp.addr() in m and
               "not asked again" in m for m in late), late
    assert asked > 0


def test_check_probes_ipv6_addresses_of_the_nameservers(env):
    """An NS with an AAAA record is asked over IPv6 as well.  Tests may
    only reach 127.0.0.0/8, so the AAAA is the IPv4-mapped ::ffff:127.0.0.1:
    dkimkeyd uses an AF_INET6 socket for it, the packets stay on
    127.0.0.1."""
    import dns.rdtypes.IN.AAAA
    s = _healthy(env, discovery=True)
    v4 = env.bind.addr()
    v6 = "[::ffff:127.0.0.1]:%d" % env.bind.port
    rd = dns.rdtypes.IN.AAAA.AAAA(dns.rdataclass.IN, dns.rdatatype.AAAA,
                                  "::ffff:127.0.0.1")
    env.bind.allow_update_types("AAAA")
    env.bind._update("ns1.example.test", lambda u, n: u.add(n, 2, rd))
    r = _expect(_check(s), "OK")
    assert "'example.test_servers_ok'=2;;;0;2" in _perf(r), r.describe()
    j = json.loads(_check(s, "--json").out)
    item = [i for i in j["domains"][0]["selectors"]
            if i["selector"] == "mail1"][0]
    got = {x["server"]: x["status"] for x in item["servers"]}
    assert got == {v4: "OK", v6: "OK"}, got
    # A wrong record is reported on the IPv6 address as on the IPv4 one.
    env.bind.set_txt(s.selector_name("mail1"), _rsa_record(env, 2048))
    _expect(_check(s), "CRITICAL", v6, v4, "another key")


def test_check_one_server_down_of_two_is_unknown_unless_others_fail(env):
    s = _healthy(env)
    b2 = _second_bind(env)
    b2.stop()
    try:
        _set_conf_line(s, "probe_servers", "%s %s" % (env.bind.addr(),
                                                     b2.addr()))
        _expect(_check(s), "UNKNOWN", b2.addr())
        # Another server proving a problem outranks the silent one.
        env.bind.delete_txt(s.selector_name("mail1"))
        _expect(_check(s), "CRITICAL", env.bind.addr(), b2.addr())
    finally:
        b2.cleanup()


# -- §1: cname mode -----------------------------------------------------------

@zones("example.test", "provider.test")
def test_check_cname_mode(env):
    s = _healthy(env)
    rec = env.bind.query_txt(s.selector_name("mail1"))[0]
    target = "mail1.example.test.dkim.provider.test"
    env.bind.set_txt(target, rec)

    # The customer's CNAME: the harness zone allows TXT updates only, so
    # the CNAME goes in by a zone reload of a copy with it added.
    zf = os.path.join(env.bind.dir, "example.test.zone")

    def set_cname(value):
        env.bind.delete_txt(s.selector_name("mail1"))
        env.bind.stop()
        with open(zf) as f:
            text = f.read()
        text = re.sub(r"(?m)^mail1\._domainkey\s+IN\s+CNAME.*\n", "", text)
        if value is not None:
            text += "mail1._domainkey\tIN\tCNAME\t%s.\n" % value
        with open(zf, "w") as f:
            f.write(text)
        for j in os.listdir(env.bind.dir):
            if j.endswith(".jnl"):
                os.unlink(os.path.join(env.bind.dir, j))
        env.bind.start()
        # The TXT at the target went with the journal: put it back.
        env.bind.set_txt(target, rec)

    with open(s.conf, "a") as f:
        f.write("mode = cname\ncname_target = {selector}.{domain}."
                "dkim.provider.test\n")
    set_cname(target)
    _expect(_check(s), "OK")
    set_cname("elsewhere.provider.test")
    _expect(_check(s), "CRITICAL", "points to elsewhere.provider.test",
            "expected " + target)
    set_cname(None)
    _expect(_check(s), "CRITICAL", "no CNAME on " + env.bind.addr(),
            "CNAME " + target)


# -- §4: output -------------------------------------------------------------

def test_check_age_thresholds(env):
    s = _healthy(env)
    wait_until(lambda: _check(s, "-w", "1s").code == 1, 10,
               "the active key to be a second old")
    r = _expect(_check(s, "-w", "1s"), "WARNING", "warning at",
                "dkimkeyd rotate --domain example.test")
    assert re.search(r"'example\.test_active_age'=\d+s;1;", _perf(r)), \
        r.describe()
    # Between the warning and the critical age (the key may be more than
    # 2s old by now on a loaded machine: the critical age is far off).
    r = _expect(_check(s, "-w", "1s", "--crit-age", "1h"), "WARNING")
    wait_until(lambda: _check(s, "--crit-age", "2s").code == 2, 10,
               "the active key to be two seconds old")
    r = _expect(_check(s, "-w", "1s", "--crit-age", "2s"), "CRITICAL",
                "critical at 2s)")
    # The age in the unit of the threshold, never "0d old".
    assert re.search(r"active key mail1 is \d+s old", r.out), r.describe()
    assert re.search(r"_active_age'=\d+s;1;2", _perf(r)), r.describe()
    _expect(_check(s, "-w", "30d", "--crit-age", "60d"), "OK")
    r = _check(s, "-w", "soon")
    assert r.code == 64 and "not a duration" in r.err, r.describe()
    r = run(s, "status", "-w", "1d")
    assert r.code == 64, r.describe()


def test_check_json(env):
    s = _watch(env, {"google": _rsa_record(env, 1024)})
    r = _check(s, "--json")
    assert r.code == 1, r.describe()
    j = json.loads(r.out)
    assert j["status"] == "WARNING" and j["exit"] == 1, j
    (d,) = j["domains"]
    assert d["domain"] == "example.test" and d["status"] == "WARNING", d
    assert d["active_selector"] == "mail1", d
    assert isinstance(d["active_age"], int) and d["active_age"] >= 0, d
    assert d["servers_ok"] == 1 and d["servers_total"] == 2, d
    sels = {x["selector"]: x for x in d["selectors"]}
    assert sels["mail1"]["kind"] == "managed", sels
    assert sels["mail1"]["state"] == "active", sels
    assert sels["mail1"]["status"] == "OK", sels
    assert sels["mail1"]["servers"] == [{"server": env.bind.addr(),
                                         "status": "OK"}], sels
    assert sels["google"]["kind"] == "watch", sels
    assert sels["google"]["rsa_bits"] == 1024, sels
    assert sels["google"]["status"] == "WARNING", sels
    assert any("1024 bits" in p["message"] and p["severity"] == "WARNING"
               for p in sels["google"]["problems"]), sels
    assert d["signer"][0]["selector"] == "mail1", d
    # The probe round: one question per selector and server, one SOA per
    # server; each sent once on a healthy loopback.
    p = j["probe"]
    asked = sum(len(x["servers"]) for x in d["selectors"]) + 1
    assert p["queries"] == asked and p["sent"] >= p["queries"], (p, asked)
    assert p["seconds"] > 0, p


def test_check_writes_metrics_file_atomically(env):
    s = _healthy(env)
    mdir = os.path.join(env.tmp, "textfile")
    os.makedirs(mdir)
    path = os.path.join(mdir, "dkimkeyd.prom")
    _set_conf_line(s, "metrics_file", path)
    _expect(_check(s), "OK")
    with open(path) as f:
        text = f.read()
    assert os.stat(path).st_mode & 0o777 == 0o644, oct(os.stat(path).st_mode)
    assert os.listdir(mdir) == ["dkimkeyd.prom"], os.listdir(mdir)
    for fam in ("dkimkeyd_key_age_seconds", "dkimkeyd_server_ok",
                "dkimkeyd_check_status", "dkimkeyd_active_key_age_seconds"):
        assert "# TYPE %s gauge" % fam in text, text
    assert 'dkimkeyd_check_status{domain="example.test"} 0' in text, text
    assert ('dkimkeyd_server_ok{domain="example.test",selector="mail1",'
            'server="%s"} 1' % env.bind.addr()) in text, text
    assert re.search(r'dkimkeyd_key_age_seconds\{domain="example.test",'
                     r'selector="mail1"\} \d+\n', text), text
    env.bind.delete_txt(s.selector_name("mail1"))
    _expect(_check(s), "CRITICAL")
    with open(path) as f:
        text = f.read()
    assert 'dkimkeyd_check_status{domain="example.test"} 2' in text, text
    assert ('dkimkeyd_server_ok{domain="example.test",selector="mail1",'
            'server="%s"} 0' % env.bind.addr()) in text, text


# -- §2: DMARC ----------------------------------------------------------------

@zones("example.test", "other.test")
def test_check_dmarc_alignment(env):
    s = _healthy(env, extra_domain_lines=[
        "senders = example.test news.example.test other.test "
        "none.example.test"])
    env.bind.set_txt("_dmarc.example.test", "v=DMARC1; p=reject")
    env.bind.set_txt("_dmarc.other.test", "v=DMARC1; p=quarantine")
    # Relaxed: news.example.test falls back to the organizational
    # domain's record and aligns; other.test does not.
    r = _expect(_check(s), "WARNING", "sender other.test",
                "organizational domains differ", "fix:")
    assert "sender news.example.test (p=" not in r.out, r.describe()
    assert "no DMARC record" not in r.out or "none.example.test" in r.out
    # Strict at the subdomain: d=example.test no longer aligns.
    env.bind.set_txt("_dmarc.news.example.test",
                     "v=DMARC1; p=reject; adkim=s")
    r = _expect(_check(s), "WARNING", "sender news.example.test",
                "adkim=s", "requires d=news.example.test")
    j = json.loads(_check(s, "--json").out)
    dm = {x["sender"]: x for x in j["domains"][0]["dmarc"]}
    assert dm["example.test"]["aligned"] is True, dm
    assert dm["news.example.test"]["aligned"] is False, dm
    assert dm["news.example.test"]["adkim"] == "s", dm
    assert dm["other.test"]["aligned"] is False, dm
    assert dm["other.test"]["adkim"] == "r", dm
    # none.example.test has no record of its own, so example.test's.
    assert dm["none.example.test"]["record"] == "_dmarc.example.test", dm
    # Without any DMARC record: noted, not a problem.
    env.bind.delete_txt("_dmarc.other.test")
    env.bind.set_txt("_dmarc.news.example.test", "v=DMARC1; p=none")
    r = _expect(_check(s), "OK", "no DMARC record at _dmarc.other.test")


# -- §3: the canary -------------------------------------------------------------

def test_check_canary(env):
    s = _healthy(env)
    _expect(_check(s, "--canary"), "OK")
    sel, kf = signer_current(s)
    # The signer's key file replaced behind dkimkeyd's back: the key
    # signs, but DNS does not hold its public half.
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", kf + ".new"],
                   check=True, capture_output=True, timeout=120)
    os.chmod(kf + ".new", 0o600)
    os.replace(kf + ".new", kf)
    _expect(_check(s, "--canary"), "CRITICAL", "canary", "would not verify",
            env.bind.addr())
    os.unlink(kf)
    _expect(_check(s, "--canary"), "CRITICAL", "canary: signer key")


def test_check_canary_ed25519(env):
    s = env.config(algorithm="ed25519")
    rotate_and_verify(env, s, "mail1", algorithm="ed25519")
    _expect(_check(s, "--canary"), "OK")


# -- §6: hostile replies ----------------------------------------------------

def test_check_rejects_hostile_replies(env):
    s = _healthy(env)
    good = "probe_servers = %s" % env.bind.addr()
    with open(s.conf) as f:
        conf = f.read()
    assert good in conf
    for mode in ("good", "wrong_id_then_good", "wrong_id", "wrong_question",
                 "wrong_type", "truncated", "oversized", "garbage", "short",
                 "not_response", "other_port", "other_address", "silent"):
        with Responder(env.bind.port, mode) as resp:
            with open(s.conf, "w") as f:
                f.write(conf.replace(good, "probe_servers = %s" %
                                     resp.addr()))
            r = _check(s)
            assert resp.errors == [], (mode, resp.errors)
            assert r.code >= 0, "killed by a signal (%s): %s" % (
                mode, r.describe())
            if mode in ("good", "wrong_id_then_good"):
                _expect(r, "OK")
                continue
            assert resp.queries > 0, "%s: no query reached the " \
                "responder" % mode
            _expect(r, "UNKNOWN", resp.addr())
            assert "servers_ok'=0;;;0;1" in _perf(r), (mode, r.describe())
    with open(s.conf, "w") as f:
        f.write(conf)


# -- the same probes against Knot DNS ----------------------------------------

def test_check_on_knot_duplicate_testing_and_short_key(env):
    from knot import KnotEnv, started_knot
    k = KnotEnv(env, started_knot(env))
    s = k.config(extra_domain_lines=["watch_selectors = google"])
    rotate_and_verify(k, s, "mail1")
    k.bind.set_txt(s.selector_name("google"), _rsa_record(env, 2048))
    _expect(_check(s), "OK")
    rec = k.bind.query_txt(s.selector_name("mail1"))[0]
    k.bind.set_txt(s.selector_name("mail1"),
                   rec.replace("k=rsa;", "k=rsa; t=y;"))
    k.bind.set_txt(s.selector_name("google"), _rsa_record(env, 1024))
    _expect(_check(s), "WARNING", "t=y", "1024 bits", k.bind.addr())
    _add_txt(k.bind, s.selector_name("google"), _rsa_record(env, 2048))
    _expect(_check(s), "CRITICAL", "2 TXT RRs", k.bind.addr())
