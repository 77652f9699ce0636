"""The cloudflare provider against the Cloudflare API v4 test server
(cfapi.py: HTTPS with the test's own CA, strict about the token, zone
id, record shape and batch limits, small pages), which applies every
accepted change to the test's real BIND: rotations, retirement,
revocation and removal; python3-dkim verifies each key against BIND; a
record dkimkeyd did not write is left alone; the API's faults (401, 403,
429 with Retry-After, 500, a slow reply, a half-applied batch, a TXT cut
short); a wrong CA; bad bodies; bad section keys; the token in no
output, argv or environment."""

import os
import subprocess
import time

import cfapi
import harness
from harness import (FOREIGN_RECORD, FOREIGN_SELECTOR, dkim_roundtrip,
                     is_revoked, key_status, managed_record, read_bytes,
                     rotate_and_verify, run, run_ok, signer_current,
                     snapshot_files, wait_until)


def _setup(env, api_kw=None, **kw):
    cf = cfapi.start(env, **(api_kw or {}))
    return cf, cfapi.write_config(env, cf, **kw)


def _check_foreign(env, cf):
    name = "%s._domainkey.%s" % (FOREIGN_SELECTOR, env.bind.zones[0])
    assert env.bind.query_txt(name) == [FOREIGN_RECORD], \
        "foreign record %s changed in BIND" % name
    assert len(cf.txt(name)) == 1, cf.txt(name)
    env.check_foreign()


def _untouched(env, s, tables):
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed: something was activated"
    assert not os.path.exists(s.reloaded), "signer reloaded"


def _tables(s):
    return (read_bytes(s.key_table), read_bytes(s.signing_table))


def test_cloudflare_rotation_lifecycle(env):
    cf, s = _setup(env)
    b = env.bind
    sel1, kf1 = rotate_and_verify(env, s, "mail1")
    # What the API holds: one quoted record of <= 255-octet strings.
    content = cf.txt(s.selector_name("mail1"))
    assert len(content) == 1 and content[0].startswith('"v=DKIM1'), content
    # Pages of 3 records at most: the listing was followed page by page.
    assert cf.max_per_page == 3
    rec1 = managed_record(b, s, "mail1")
    sel2, kf2 = rotate_and_verify(env, s, "mail2")
    assert kf2 != kf1
    assert managed_record(b, s, "mail1") == rec1, \
        "retired key's record changed (invariant 2)"
    assert key_status(s, "mail1")["state"] == "retired"

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(b, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "run --once to revoke mail1 through the API",
               interval=0.5)
    assert len(cf.txt(s.selector_name("mail1"))) == 1
    assert signer_current(s) == (sel2, kf2)

    def removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None
    wait_until(removed, 20, "run --once to delete mail1 through the API",
               interval=0.5)
    assert cf.txt(s.selector_name("mail1")) == []
    assert not os.path.exists(kf1), "private key %s not destroyed" % kf1
    assert key_status(s, "mail1")["state"] == "removed"
    assert dkim_roundtrip(s, b, s.domain, log=env.log)
    # Every write went through the batch endpoint.
    assert cf.count("POST", "/dns_records/batch") >= 4
    assert cf.count("POST") == cf.count("POST", "/dns_records/batch")
    _check_foreign(env, cf)
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()


def test_cloudflare_zone_found_and_txt_shown_split_otherwise(env):
    """No zone key: the zone id comes from /zones?name= (the domain,
    then its parents).  The API shows TXT content re-split and quoted
    differently from what was sent: it still compares equal by decoded
    key, so revocation and removal find dkimkeyd's own record."""
    cf, s = _setup(env, zone=False)
    cf.resplit = True
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")
    listed = [q for m, p, q, _ in cf.requests if p.endswith("/zones")]
    assert any("name=example.test" in q for q in listed), listed

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(env.bind, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "mail1 revoked with re-split content",
               interval=0.5)
    _check_foreign(env, cf)


def test_cloudflare_leaves_a_foreign_record_alone(env):
    cf, s = _setup(env)
    foreign = ("v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALz"
               "SOMEONEELSExxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxwIDAQAB")
    cf.add_txt(s.selector_name("mail1"), foreign)
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "mail1._domainkey.example.test" in r.err and \
        "did not write" in r.err, r.describe()
    assert env.bind.query_txt(s.selector_name("mail1")) == [foreign]
    assert len(cf.txt(s.selector_name("mail1"))) == 1
    assert cf.count("POST") == 0, "a batch was sent"
    _untouched(env, s, tables)
    _check_foreign(env, cf)


def _refused(env, cf, s, code, *words):
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == code, r.describe()
    for w in words:
        assert w in r.err, "%r not in: %s" % (w, r.describe())
    assert cf.token not in r.err + r.out, "token in output"
    assert managed_record(env.bind, s, "mail1") is None
    _untouched(env, s, tables)
    return r


def test_cloudflare_401_and_403_exit_69_with_the_api_text(env):
    cf, s = _setup(env)
    cf.fault("GET", "/zones", status=401, code=9109,
             message="Invalid access token")
    _refused(env, cf, s, 69, "cloudflare", "401", "Invalid access token")
    harness.Bind._write(s.token_file, "not-the-token\n", 0o600)
    _refused(env, cf, s, 69, "cloudflare", "403", "Authentication error")
    assert "not-the-token" not in run(s, "rotate", "--domain",
                                      s.domain).err
    harness.Bind._write(s.token_file, cf.token + "\n", 0o600)
    rotate_and_verify(env, s, "mail1", resumed=True)


def test_cloudflare_429_honours_retry_after(env):
    cf, s = _setup(env)
    cf.fault("GET", "/dns_records", status=429, retry_after=2)
    rotate_and_verify(env, s, "mail1")
    times = [t for m, p, _, t in cf.requests if p.endswith("/dns_records")]
    assert len(times) >= 2 and times[1] - times[0] >= 1.9, \
        "the retry did not wait the server's Retry-After: %r" % times
    # A Retry-After beyond the cap: no wait, 75 at once.
    cf.fault("GET", "/dns_records", status=429, retry_after=3600)
    t0 = time.monotonic()
    r = _refused_any(s, 75)
    assert time.monotonic() - t0 < 20 and "3600" in r.err, r.describe()


def _refused_any(s, code):
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == code, r.describe()
    return r


def test_cloudflare_500_slow_and_half_applied(env):
    cf, s = _setup(env)
    # A 500 on a read is retried; the rotation completes.
    cf.fault("GET", "/dns_records", status=500, message="try again")
    rotate_and_verify(env, s, "mail1")
    # A 500 on the batch is not resent (it may have been applied): 75.
    cf.fault("POST", "/batch", status=500, message="try again")
    r = _refused_any(s, 75)
    assert "cloudflare" in r.err and "500" in r.err, r.describe()
    assert cf.count("POST") == 2, cf.count("POST")
    assert managed_record(env.bind, s, "mail2") is None
    # A slow reply: the deadline (timeout = 3s) passes, 75.
    cf.fault("GET", "/dns_records", delay=6)
    r = _refused_any(s, 75)
    assert "timed out" in r.err or "deadline" in r.err, r.describe()
    # Half-applied: the batch went through, the answer is a 500.  The
    # rerun reads the record back as its own and carries on.
    cf.fault("POST", "/batch", half=True)
    _refused_any(s, 75)
    assert managed_record(env.bind, s, "mail2") is not None
    assert signer_current(s)[0] == "mail1", "activated after a failure"
    rotate_and_verify(env, s, "mail2", resumed=True)
    assert len(cf.txt(s.selector_name("mail2"))) == 1
    _check_foreign(env, cf)


def test_cloudflare_truncated_txt_is_never_activated(env):
    cf, s = _setup(env)
    cf.fault("POST", "/batch", truncate=200)
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "cut short" in r.err, r.describe()
    _untouched(env, s, tables)


def test_cloudflare_wrong_ca_is_refused(env):
    cf, s = _setup(env)
    with open(s.conf) as f:
        text = f.read()
    harness.Bind._write(s.conf, text.replace(cf.ca, cf.other_ca), 0o644)
    r = _refused(env, cf, s, 69, "cloudflare", "TLS certificate")
    assert cf.count() == 0 or all(m == "GET" for m, _, _, _ in
                                  cf.requests), "a request got through"
    # Without ca_file the system store is used: refused as well.
    harness.Bind._write(s.conf, text.replace("ca_file = %s\n" % cf.ca, ""),
                        0o644)
    _refused(env, cf, s, 69, "TLS certificate")
    assert cf.count() == 0, "a request was served despite a bad CA"
    harness.Bind._write(s.conf, text, 0o644)
    rotate_and_verify(env, s, "mail1", resumed=True)


def test_cloudflare_bad_bodies_give_clear_messages(env):
    cf, s = _setup(env)
    cases = [
        (dict(body=b"<html><body>Bad gateway</body></html>",
              ctype="text/html"), "HTML page"),
        (dict(body=b""), "empty body"),
        (dict(body=b'{"success": true, "result": ' + b"[" +
              b'{"id":"x","name":"n","type":"A","content":"1.2.3.4"},' *
              400000 + b"{}]}"), "larger than"),
        (dict(body=b"[]"), "not an API v4 envelope"),
        (dict(body=b'{"success": true, "result": {"a": 1}}'),
         "not a list"),
        (dict(body=b'{"success": true, "result": [{"id": 1}]}'),
         "without id, name, type"),
        (dict(body=b'{"success": false, "errors": "x"}'), "no error text"),
        (dict(body=b'{"success": true, "result": [], "result_info": 7}'),
         "result_info"),
    ]
    for kw, word in cases:
        cf.fault("GET", "/dns_records", **kw)
        r = _refused(env, cf, s, 69, "cloudflare", word)
        assert len(r.err) < 2000, r.describe()
    cf.fault("POST", "/batch", body=b'{"success": true, "result": 3}')
    _refused(env, cf, s, 69, "does not list the records")
    rotate_and_verify(env, s, "mail1", resumed=True)


def test_cloudflare_strict_server_limits_come_back_as_api_text(env):
    """The server's own refusals (here: a TTL under the plan's minimum,
    a batch over its limit) reach the operator with the API's text."""
    cf, s = _setup(env, api_kw=dict(min_ttl=60))
    _refused(env, cf, s, 69, "cloudflare", "Invalid TTL")
    cf.min_ttl = 1
    cf.batch_limit = 1
    rotate_and_verify(env, s, "mail1", resumed=True)
    rotate_and_verify(env, s, "mail2")
    # Revoking mail1 is a delete and a post: two records, over the limit.
    time.sleep(4)
    r = run(s, "run", "--once")
    assert r.code == 69 and "A batch holds 1 to 1" in r.err, r.describe()
    assert not is_revoked(managed_record(env.bind, s, "mail1"))


def test_cloudflare_batch_is_a_compare_and_swap(env):
    """Someone replaces dkimkeyd's record between its read and its batch
    (a new record, a new id): the batch's delete names an id that is
    gone, the API refuses the whole batch, and their record stays."""
    cf, s = _setup(env)
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")
    name = s.selector_name("mail1")
    theirs = "v=DKIM1; k=rsa; p=" + "Q" * 40
    cf.fault("POST", "/batch", hook=lambda: cf.replace_txt(name, theirs))
    time.sleep(4)
    r = run(s, "run", "--once")
    assert r.code == 69, r.describe()
    assert "does not exist" in r.err, r.describe()
    assert env.bind.query_txt(name) == [theirs]
    assert len(cf.txt(name)) == 1
    assert signer_current(s)[0] == "mail2"


def test_cloudflare_bad_section_keys_exit_78(env):
    cf, s = _setup(env)
    with open(s.conf) as f:
        good = f.read()
    url = cf.url()
    bad = [("api_url = %s" % url, "api_url = http://127.0.0.1:1/x",
            "api_url"),
           ("timeout = 3s", "timeout = 3s\nbatch_size = 1", "batch_size"),
           ("timeout = 3s", "timeout = 3s\nbatch_size = many",
            "batch_size"),
           ("max_requests_per_second = 200", "max_requests_per_second = 0",
            "max_requests_per_second"),
           ("ca_file = %s" % cf.ca, "ca_file = relative.pem", "ca_file"),
           ("timeout = 3s", "timeout = 3s\nserver_id = x", "server_id"),
           ("timeout = 3s", "timeout = never", "timeout"),
           ("probe_servers = %s" % env.bind.addr(), "probe_servers = nope",
            "probe_servers")]
    for old, new, word in bad:
        text = good.replace(old, new, 1)
        harness.Bind._write(s.conf, text, 0o644)
        line = text.splitlines().index(new.splitlines()[-1]) + 1
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 78, r.describe()
        assert "%s:%d:" % (s.conf, line) in r.err and word in r.err, \
            r.describe()
    harness.Bind._write(s.conf, good.replace(
        "token_file = %s\n" % s.token_file, ""), 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "token_file" in r.err, r.describe()
    harness.Bind._write(s.conf, good, 0o644)
    os.chmod(s.token_file, 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77 and s.token_file in r.err, r.describe()
    assert cf.token not in r.err + r.out
    assert cf.count() == 0, "a request was sent with a bad configuration"


def _proc_text(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_cloudflare_token_never_leaks(env):
    cf, s = _setup(env)
    secret = cf.token.encode()
    rotate_and_verify(env, s, "mail1")
    outs, seen = [], []
    p = subprocess.Popen([harness.DKIMKEYD, "-c", s.conf, "run"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            pids = [p.pid]
            for d in os.listdir("/proc"):
                if d.isdigit():
                    st = _proc_text(int(d), "stat").split(b") ", 1)
                    if len(st) == 2 and \
                            st[1].split()[1] == str(p.pid).encode():
                        pids.append(int(d))
            for pid in pids:
                for what in ("cmdline", "environ"):
                    seen.append(_proc_text(pid, what))
            time.sleep(0.2)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    outs += [out, err]
    cf.fault("GET", "/dns_records", status=403, message="no permission")
    for args in (("rotate", "--domain", s.domain), ("status", "--json"),
                 ("check", "--domain", s.domain), ("check", "-v"),
                 ("run", "--once"), ("rotate", "--domain", s.domain)):
        r = run(s, *args)
        outs += [r.out.encode(), r.err.encode()]
    for path, data in snapshot_files(s.state_dir, env.tmp).items():
        if os.path.abspath(path) == os.path.abspath(s.token_file):
            continue
        outs.append(data)
    assert seen, "daemon's /proc entries never read"
    for i, blob in enumerate(outs + seen):
        assert secret not in blob, "API token found in output #%d" % i


def test_cloudflare_many_domains_in_few_batches(env):
    """run --once publishes many domains' records through replace_many:
    the zone's TXT records listed once (every page: 3 a page here), the
    changes sent in batches of batch_size records; a foreign record at
    one domain's selector stops that domain only."""
    cf = cfapi.start(env)
    n = 9
    doms = ["d%d.example.test" % i for i in range(n)]
    s = cfapi.write_config(env, cf, domain=doms[0],
                           extra_provider_lines=("batch_size = 4",),
                           extra_domain_lines=("rotate_every = 30d",))
    with open(s.conf) as f:
        text = f.read()
    sec = text[text.index("[domain %s]" % doms[0]):]
    for d in doms[1:]:
        text += "\n" + sec.replace("[domain %s]" % doms[0],
                                   "[domain %s]" % d)
    harness.Bind._write(s.conf, text, 0o644)
    foreign = doms[5]
    # Other TXT records listed before it: the foreign one is on page 3.
    for i in range(6):
        cf.add_txt("a%d.example.test" % i, "v=spf1 -all")
    cf.add_txt("mail1._domainkey.%s" % foreign, FOREIGN_RECORD)
    r = run(s, "run", "--once")
    assert r.code == 69, r.describe()
    assert foreign in r.err and "did not write" in r.err, r.describe()
    for d in doms:
        recs = env.bind.query_txt("mail1._domainkey.%s" % d)
        if d == foreign:
            assert recs == [FOREIGN_RECORD], recs
        else:
            assert len(recs) == 1 and recs[0].startswith("v=DKIM1"), \
                (d, recs)
    batches = cf.count("POST", "/batch")
    assert 2 <= batches <= 3, "8 records in batches of 4: %d" % batches
    lists = [q for m, p, q, _ in cf.requests if p.endswith("/dns_records")]
    assert any("page=2" in q for q in lists), lists
    assert cf.count() <= 12, "%d requests for %d records" % (cf.count(), n)


def test_cloudflare_crash_at_every_point_and_occurrence(env):
    """The kill-at-every-point suite of test_crash (before and after
    each provider call and each batch request, before and after each
    commit), with the records
    written through the Cloudflare test server into BIND: the same
    invariants after every kill and rerun, a signer in the loop."""
    import test_crash
    cf = cfapi.start(env)
    token = os.path.join(env.tmp, "cf.token")
    harness.Bind._write(token, cf.token + "\n", 0o600)
    orig = test_crash.write_conf

    def write_conf(e, flows, **kw):
        conf = orig(e, flows, **kw)
        with open(conf) as f:
            lines = f.read().splitlines()
        i = lines.index("[provider primary]")
        j = lines.index("", i)
        lines[i:j] = ["[provider primary]", "type = cloudflare",
                      "api_url = %s" % cf.url(),
                      "token_file = %s" % token,
                      "ca_file = %s" % cf.ca,
                      "zone = %s" % env.bind.zones[0],
                      "probe_servers = %s" % env.bind.addr(),
                      "max_requests_per_second = 200",
                      "timeout = 5s"]
        harness.Bind._write(conf, "\n".join(lines) + "\n", 0o644)
        return conf

    test_crash.write_conf = write_conf
    try:
        test_crash.every_point(env, test_crash.Flow, "f", test_crash.POINTS
                               + ("before-api-write", "after-api-write"))
    finally:
        test_crash.write_conf = orig
    _check_foreign(env, cf)
    assert cf.count("POST") == cf.count("POST", "/batch")


@harness.zones("example.test", "operator.test")
def test_cloudflare_as_cname_provider(env):
    """The customer's zone on Cloudflare, the operator's on rfc2136:
    cname_provider = a cloudflare section writes the selector CNAME
    (DNS only, never proxied) through the batch endpoint, and never over
    a TXT record someone has at that name."""
    import test_cname
    test_cname._allow_cname(env)
    cf = cfapi.start(env, zones=("example.test",))
    s = test_cname._config(env, extra=("cname_provider = customer",))
    token = os.path.join(env.tmp, "cf.token")
    harness.Bind._write(token, cf.token + "\n", 0o600)
    with open(s.conf) as f:
        text = f.read()
    text += ("\n[provider customer]\ntype = cloudflare\napi_url = %s\n"
             "token_file = %s\nca_file = %s\nzone = example.test\n"
             "probe_servers = %s\nmax_requests_per_second = 200\n" % (
                 cf.url(), token, cf.ca, env.bind.addr()))
    harness.Bind._write(s.conf, text, 0o644)
    run_ok(s, "configtest")
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    name = "mail1._domainkey.example.test"
    assert test_cname._cname_of(env, name) == \
        "mail1.example.test.operator.test"
    recs = [x for x in cf.records.values() if x["name"] == name]
    assert len(recs) == 1 and recs[0]["type"] == "CNAME" and \
        recs[0]["proxied"] is False, recs
    sel, kf = signer_current(s)
    assert sel == "mail1"
    assert test_cname._verify_through_cname(env, "example.test", env.log)
    # Idempotent: a second rotation leaves mail1's CNAME as it is.
    n0 = cf.count("POST")
    cf.add_txt("mail2._domainkey.example.test", "v=DKIM1; p=")
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code != 0, r.describe()
    assert "mail2._domainkey.example.test holds a TXT record" in r.err, \
        r.describe()
    assert cf.count("POST") == n0, "a batch was sent over a TXT record"
    assert signer_current(s) == (sel, kf)
    assert test_cname._txt_at(env, "mail2._domainkey.example.test") == \
        ["v=DKIM1; p="]


def test_cloudflare_paces_requests(env):
    """max_requests_per_second spaces the requests of a section (as the
    test server saw them arrive)."""
    cf, s = _setup(env)
    with open(s.conf) as f:
        text = f.read()
    harness.Bind._write(s.conf, text.replace(
        "max_requests_per_second = 200", "max_requests_per_second = 2"),
        0o644)
    rotate_and_verify(env, s, "mail1")
    times = [t for _, _, _, t in cf.requests]
    assert len(times) >= 3, cf.requests
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Arrival times: the first request's TLS handshake shortens the first
    # gap as the server sees it; the starts are 1/2 s apart.
    assert min(gaps) >= 0.3 and sum(gaps) / len(gaps) >= 0.45, \
        "requests closer than 1/2 s: %r" % gaps
