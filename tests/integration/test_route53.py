"""The route53 provider against r53api.R53Api, a strict loopback
stand-in for the Route 53 API (SigV4 verified, exact-match DELETE,
batch quotas, PENDING then INSYNC) that applies accepted changes to the
test's real BIND: first and second rotation, retirement, revocation and
removal; python3-dkim verifies each key against BIND; a record dkimkeyd
did not write is left alone, also when it appears between the read and
the write (Route 53 refuses the batch); refused credentials exit 69;
throttling, 500 and slow replies exit 75 or are retried after
Retry-After; a mangled TXT is never activated; the wrong CA fails; the
secret key appears in no output, argv or environment; bad section keys
and bad credentials files are refused with file:line."""

import os
import subprocess
import time

import harness
from harness import (FOREIGN_RECORD, FOREIGN_SELECTOR, dkim_roundtrip,
                     is_revoked, key_status, managed_record, read_bytes,
                     rotate_and_verify, run, run_ok, signer_current,
                     snapshot_files, wait_until)
from r53api import R53Api

SOME_KEY = ("v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALz"
            "SOMEONEELSExxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxwIDAQAB")


def start_api(env, **kw):
    api = R53Api(env.bind, env.tmp, **kw).start()
    close = env.close

    def close_both():
        try:
            api.stop()
        finally:
            close()
    env.close = close_both
    return api


def write_config(env, api, zone_id=True, ca=None, secret=None, profile=None,
                 extra=(), domains=(), **kw):
    """harness.write_config with a route53 provider section for api;
    the credentials file (mode 0600) holds a decoy profile first."""
    s = harness.write_config(env.tmp, env.bind, **kw)
    s.cred_file = os.path.join(env.tmp, "aws.credentials")
    text = ("# AWS shared credentials\n[other]\n"
            "aws_access_key_id = AKIAOTHEROTHEROTHER1\n"
            "aws_secret_access_key = not-this-one\n\n"
            "[%s]\naws_access_key_id = %s\n"
            "aws_secret_access_key = %s\n" % (
                profile or "default", api.access_key,
                secret or api.secret_key))
    if api.session_token:
        text += "aws_session_token = %s\n" % api.session_token
    harness.Bind._write(s.cred_file, text, 0o600)
    with open(s.conf) as f:
        lines = f.read().splitlines()
    i = lines.index("[provider primary]")
    j = lines.index("", i)
    zone = env.bind.zone_of(s.domain)
    prov = ["[provider primary]",
            "type = route53",
            "api_url = %s" % api.url(),
            "ca_file = %s" % (ca or api.ca_file),
            "credentials_file = %s" % s.cred_file,
            "zone = %s" % zone,
            "probe_servers = %s" % env.bind.addr(),
            "timeout = 3s",
            "insync_timeout = 10s"]
    if zone_id:
        prov.append("hosted_zone_id = %s" % api.zone_id(zone))
    if profile:
        prov.append("profile = %s" % profile)
    prov += list(extra)
    lines[i:j] = prov
    for d in domains:
        lines += ["", "[domain %s]" % d, "provider = primary",
                  "signer = opendkim", "selectors = mail1 mail2",
                  "algorithm = rsa-2048", "ttl = 2s", "retire_after = 3s",
                  "propagation_timeout = 10s", "safety_margin = 1s",
                  "rotate_every = 1h"]
    harness.Bind._write(s.conf, "\n".join(lines) + "\n", 0o644)
    return s


def _unchanged(env, s, tables):
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed: something was activated"
    assert not os.path.exists(s.reloaded), "signer reloaded"


def _tables(s):
    return (read_bytes(s.key_table), read_bytes(s.signing_table))


def test_route53_rotation_lifecycle(env):
    api = start_api(env)
    s = write_config(env, api)
    name1 = s.selector_name("mail1")

    sel1, kf1 = rotate_and_verify(env, s, "mail1")
    # What the API holds: one TXT value of quoted <= 255-octet strings.
    ttl, vals = api.rrset(name1)
    assert ttl == 2 and len(vals) == 1 and vals[0].startswith('"v=DKIM1')
    assert api.count("GET", "/change/") >= 1, "GetChange never asked"
    assert api.count("POST", "/rrset") == 1, api.requests

    rec1 = managed_record(env.bind, s, "mail1")
    sel2, kf2 = rotate_and_verify(env, s, "mail2")
    assert kf2 != kf1
    assert managed_record(env.bind, s, "mail1") == rec1, \
        "retired key's record changed (invariant 2)"
    assert key_status(s, "mail1")["state"] == "retired"

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(env.bind, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 30, "run --once to publish mail1 revoked",
               interval=0.5)
    assert key_status(s, "mail1")["state"] == "revoked"
    assert signer_current(s) == (sel2, kf2)
    # Revocation was one batch: DELETE of the exact old, CREATE of p=.
    assert len(api.rrset(name1)[1]) == 1

    def removed():
        run_ok(s, "run", "--once")
        return managed_record(env.bind, s, "mail1") is None
    wait_until(removed, 30, "run --once to delete mail1", interval=0.5)
    assert api.rrset(name1) is None
    assert not os.path.exists(kf1), "private key %s not destroyed" % kf1
    assert key_status(s, "mail1")["state"] == "removed"
    assert dkim_roundtrip(s, env.bind, s.domain, log=env.log)

    time.sleep(s.ttl + 1)
    rotate_and_verify(env, s, "mail1")
    assert env.foreign_txt("example.test") == [FOREIGN_RECORD]
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()


def test_route53_zone_found_from_the_api_and_session_token(env):
    api = start_api(env, session_token="FwoGZXIvYXdzE" + "x" * 300)
    s = write_config(env, api, zone_id=False, profile="dkim")
    rotate_and_verify(env, s, "mail1")
    assert api.count("GET", "/hostedzonesbyname") >= 1


def test_route53_many_domains_in_one_change_batch(env):
    api = start_api(env)
    s = write_config(env, api, zone_id=False,
                     domains=("www.example.test", "mx.example.test"),
                     extra_domain_lines=("rotate_every = 1h",))
    r = run(s, "run", "--once")
    assert r.code == 0, r.describe()
    for d in ("example.test", "www.example.test", "mx.example.test"):
        recs = env.bind.query_txt("mail1._domainkey.%s" % d)
        assert len(recs) == 1 and recs[0].startswith("v=DKIM1"), (d, recs)
    assert api.count("POST", "/rrset") == 1, \
        "three domains' records were not one ChangeBatch: %r" % api.requests


def test_route53_batches_split_at_the_api_quotas(env):
    """80 RSA-2048 records are more than the 32,000 characters of Value
    one request may carry: two ChangeBatches, each accepted by the
    strict server, and every record published."""
    api = start_api(env)
    doms = ["d%02d.example.test" % i for i in range(80)]
    s = write_config(env, api, domains=doms,
                     extra_domain_lines=("rotate_every = 1h",),
                     extra=("max_requests_per_second = 500",))
    r = run(s, "run", "--once", timeout=300)
    assert r.code == 0, r.describe()
    posts = [q for q in api.requests if q[0] == "POST"]
    assert len(posts) == 2 and all(p[3] == 200 for p in posts), posts
    for d in ["example.test"] + doms:
        recs = env.bind.query_txt("mail1._domainkey.%s" % d)
        assert len(recs) == 1 and recs[0].startswith("v=DKIM1"), (d, recs)


def test_route53_leaves_a_foreign_record_alone(env):
    api = start_api(env)
    s = write_config(env, api)
    api.set_txt(s.selector_name("mail1"), SOME_KEY)
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "mail1._domainkey.example.test" in r.err and \
        "did not write" in r.err, r.describe()
    assert env.bind.query_txt(s.selector_name("mail1")) == [SOME_KEY]
    assert api.count("POST", "/rrset") == 0
    _unchanged(env, s, tables)


def test_route53_record_written_between_read_and_write_is_kept(env):
    """Route 53 itself refuses the batch (CREATE where an RRset now
    exists): a real compare-and-swap, reported as someone else's."""
    api = start_api(env)
    s = write_config(env, api)
    name = s.selector_name("mail1")
    orig = api.change

    def racing_change(zid, body):
        api.change = orig
        api.set_txt(name, SOME_KEY)
        return orig(zid, body)
    api.change = racing_change
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "did not write" in r.err and "InvalidChangeBatch" in r.err and \
        "already exists" in r.err, r.describe()
    assert env.bind.query_txt(name) == [SOME_KEY]
    assert api.rrset(name) == (2, ['"%s"' % SOME_KEY])
    _unchanged(env, s, tables)


def test_route53_refused_credentials_exit_69(env):
    api = start_api(env)
    s = write_config(env, api, secret="wrong-secret-wrong-secret")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "route53" in r.err and "403" in r.err and \
        "SignatureDoesNotMatch" in r.err, r.describe()
    assert "wrong-secret" not in r.err + r.out
    s = write_config(env, api)
    api.fault("POST", status=403, code="AccessDenied", message="User: "
              "arn:aws:iam::123456789012:user/dkim is not authorized to "
              "perform: route53:ChangeResourceRecordSets")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69 and "AccessDenied" in r.err and \
        "route53:ChangeResourceRecordSets" in r.err, r.describe()
    api.fault("GET", status=401, code="InvalidClientTokenId",
              message="The security token included in the request is "
              "invalid.")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69 and "401" in r.err, r.describe()
    assert managed_record(env.bind, s, "mail1") is None
    assert not os.path.exists(s.reloaded)


def test_route53_throttling_waits_for_retry_after(env):
    api = start_api(env)
    s = write_config(env, api)
    api.fault("POST", status=400, code="Throttling", message="Rate "
              "exceeded", retry_after=2)
    api.fault("GET /2013-04-01/change", status=429, code="Throttling",
              message="Rate exceeded", retry_after=1)
    t0 = time.monotonic()
    rotate_and_verify(env, s, "mail1")
    assert time.monotonic() - t0 >= 3, "Retry-After not honoured"
    assert api.count("POST", "/rrset") == 2, api.requests


def test_route53_persistent_throttling_500_and_slow_exit_75(env):
    api = start_api(env)
    s = write_config(env, api)
    for status, code in ((400, "Throttling"), (500, "InternalFailure")):
        api.faults.clear()
        api.fault("POST", status=status, code=code, message="try later",
                  times=20, retry_after=1)
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 75, r.describe()
        assert "route53" in r.err and code in r.err, r.describe()
        assert managed_record(env.bind, s, "mail1") is None
    api.faults.clear()
    api.fault("GET", delay=5, times=3)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75 and "timed out" in r.err, r.describe()
    assert not os.path.exists(s.reloaded)
    api.faults.clear()
    rotate_and_verify(env, s, "mail1", resumed=True)


def test_route53_truncated_txt_is_never_activated(env):
    api = start_api(env)
    s = write_config(env, api, propagation_timeout="4s")
    api.truncate_txt = True
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    served = env.bind.query_txt(s.selector_name("mail1"))
    assert len(served) == 1 and len(served[0]) == 255, served
    _unchanged(env, s, tables)


def test_route53_wrong_ca_fails(env):
    api = start_api(env)
    s = write_config(env, api, ca=api.other_ca_file)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "TLS certificate" in r.err, r.describe()
    assert api.requests == [], "a request got through an unverified TLS"
    assert managed_record(env.bind, s, "mail1") is None


def test_route53_bad_answers_give_clear_messages(env):
    api = start_api(env)
    s = write_config(env, api)
    cases = [("<html><body>Gateway</body></html>", "HTML page"),
             ("", "not the API's XML"),
             ("<ListResourceRecordSetsResponse><ResourceRecordSets>"
              "<ResourceRecordSet><Name>x</Name>", "not the API's XML"),
             ("<GetChangeResponse/>", "expected a ListResourceRecordSets"),
             ("<ListResourceRecordSetsResponse><ResourceRecordSets>"
              "<ResourceRecordSet><Name>mail1._domainkey.example.test."
              "</Name><TTL>x</TTL><Type>TXT</Type></ResourceRecordSet>"
              "</ResourceRecordSets></ListResourceRecordSetsResponse>",
              "TTL"),
             ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
              "<r>&a;</r>", "document type"),
             ("<a>" * 100 + "</a>" * 100, "nested too deeply")]
    orig = api.list_rrsets
    for body, word in cases:
        api.list_rrsets = lambda zid, q, b=body: b
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 69, (body, r.describe())
        assert word in r.err and "route53" in r.err, (body, r.describe())
    api.list_rrsets = lambda zid, q: "<x>" + "y" * (17 << 20) + "</x>"
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69 and "larger than" in r.err, r.describe()
    api.list_rrsets = orig
    assert managed_record(env.bind, s, "mail1") is None
    assert not os.path.exists(s.reloaded)


def test_route53_bad_section_keys_exit_78(env):
    api = start_api(env)
    s = write_config(env, api)
    with open(s.conf) as f:
        good = f.read()
    zid = api.zone_id("example.test")
    bad = [("api_url = %s" % api.url(), "api_url = http://127.0.0.1:1",
            "api_url"),
           ("api_url = %s" % api.url(), "api_url = %s/x" % api.url(),
            "api_url"),
           ("hosted_zone_id = %s" % zid, "hosted_zone_id = z-1", "hosted"),
           ("timeout = 3s", "timeout = 3s\nregion = US East",
            "region"),
           ("timeout = 3s", "timeout = 3s\nmax_requests_per_second = -1",
            "max_requests_per_second"),
           ("insync_timeout = 10s", "insync_timeout = soon",
            "insync_timeout"),
           ("timeout = 3s", "timeout = 3s\nprofile = [x]", "profile"),
           ("ca_file = %s" % api.ca_file, "ca_file = ca.pem", "ca_file"),
           ("timeout = 3s", "timeout = 3s\ntoken_file = /x", "token_file"),
           ("timeout = 3s", "timeout = forever", "timeout")]
    for old, new, word in bad:
        text = good.replace(old, new, 1)
        assert text != good, old
        harness.Bind._write(s.conf, text, 0o644)
        line = text.splitlines().index(new.splitlines()[-1]) + 1
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 78, r.describe()
        assert "%s:%d:" % (s.conf, line) in r.err and word in r.err, \
            r.describe()
    text = good.replace("credentials_file = %s\n" % s.cred_file, "")
    harness.Bind._write(s.conf, text, 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "credentials_file" in r.err, r.describe()
    text = good.replace("hosted_zone_id = %s\n" % zid, "").replace(
        "zone = example.test\n", "")
    harness.Bind._write(s.conf, text, 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "hosted_zone_id" in r.err, r.describe()
    assert api.requests == []


def test_route53_credentials_file_checked(env):
    api = start_api(env)
    s = write_config(env, api)
    good = read_bytes(s.cred_file).decode()
    os.chmod(s.cred_file, 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77 and s.cred_file in r.err, r.describe()
    os.chmod(s.cred_file, 0o600)
    real = s.cred_file + ".real"
    os.rename(s.cred_file, real)
    os.symlink(real, s.cred_file)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77 and "symbolic link" in r.err, r.describe()
    os.unlink(s.cred_file)
    os.rename(real, s.cred_file)
    for text, word in (("[nodefault]\naws_access_key_id = AKIA1\n",
                        "no [default] profile"),
                       ("[default]\naws_access_key_id = AKIA1\n",
                        "aws_secret_access_key"),
                       ("[default\n", "without ']'"),
                       ("[default]\njust words\n", ":2: not a key")):
        harness.Bind._write(s.cred_file, text, 0o600)
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 78 and word in r.err and s.cred_file in r.err, \
            r.describe()
    harness.Bind._write(s.cred_file, good, 0o600)
    assert api.requests == []
    rotate_and_verify(env, s, "mail1")


def _proc_text(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_route53_secret_never_leaks(env):
    api = start_api(env)
    s = write_config(env, api)
    secret = api.secret_key.encode()
    rotate_and_verify(env, s, "mail1")
    p = subprocess.Popen([harness.DKIMKEYD, "-c", s.conf, "run"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    seen = []
    try:
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            for what in ("cmdline", "environ"):
                seen.append(_proc_text(p.pid, what))
            time.sleep(0.2)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    outs = [out, err]
    api.fault("POST", status=403, code="AccessDenied", message="denied")
    for args in (("rotate", "--domain", s.domain), ("status", "--json"),
                 ("check", "--domain", s.domain), ("configtest",),
                 ("run", "--once")):
        r = run(s, *args)
        outs += [r.out.encode(), r.err.encode()]
    os.chmod(s.cred_file, 0o604)
    r = run(s, "rotate", "--domain", s.domain)
    outs += [r.out.encode(), r.err.encode()]
    os.chmod(s.cred_file, 0o600)
    for path, data in snapshot_files(s.state_dir, env.tmp).items():
        if os.path.abspath(path) == os.path.abspath(s.cred_file):
            continue
        outs.append(data if isinstance(data, bytes) else b"")
    assert any(seen), "daemon's /proc entries never read"
    for i, blob in enumerate(outs + seen):
        assert secret not in blob, "secret key found in output #%d" % i
