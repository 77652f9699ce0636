"""The rfc2136 provider against Knot DNS: first and second rotation,
retirement, revocation and removal by `run --once`, check OK then
CRITICAL after a change behind dkimkeyd's back, a refused TSIG (69), and
an RSA-4096 record of three character-strings."""

import base64
import os
import re
import subprocess

from harness import (FOREIGN_RECORD, FOREIGN_SELECTOR, dkim_roundtrip,
                     is_revoked, key_status, managed_record, public_p,
                     read_bytes, record_tags, rotate_and_verify, run,
                     run_ok, signer_current, wait_until)
from knot import KnotEnv, started_knot


def _knot_env(env):
    return KnotEnv(env, started_knot(env))


def _check_foreign(kenv):
    """Invariant 5 on the Knot zone."""
    name = "%s._domainkey.example.test" % FOREIGN_SELECTOR
    have = kenv.bind.query_txt(name)
    assert have == [FOREIGN_RECORD], \
        "foreign record %s on knotd changed: %r" % (name, have)


def _roundtrip(kenv, s):
    assert dkim_roundtrip(s, kenv.bind, s.domain, log=kenv.log), \
        "message signed with the active key does not verify against knotd"


def test_knot_rotation_lifecycle(env):
    k = _knot_env(env)
    s = k.config()
    b = k.bind

    sel1, kf1 = rotate_and_verify(k, s, "mail1")
    assert managed_record(b, s, "mail2") is None
    _roundtrip(k, s)

    rec1 = managed_record(b, s, "mail1")
    sel2, kf2 = rotate_and_verify(k, s, "mail2")
    assert kf2 != kf1
    assert managed_record(b, s, "mail1") == rec1, \
        "retired key's record changed on knotd (invariant 2)"
    assert key_status(s, "mail1")["state"] == "retired"
    _roundtrip(k, s)

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(b, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "run --once to publish mail1 revoked on knotd",
               interval=0.5)
    assert key_status(s, "mail1")["state"] == "revoked"
    assert signer_current(s) == (sel2, kf2)
    _roundtrip(k, s)

    def removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None
    wait_until(removed, 20, "run --once to delete mail1 on knotd",
               interval=0.5)
    assert not os.path.exists(kf1), "private key %s not destroyed" % kf1
    assert key_status(s, "mail1")["state"] == "removed"
    assert signer_current(s) == (sel2, kf2)
    _roundtrip(k, s)
    _check_foreign(k)


def _check(s, expect_code, expect_word):
    r = run(s, "check", "--domain", s.domain)
    first = r.out.splitlines()[0] if r.out else ""
    assert r.code == expect_code, r.describe()
    assert first.startswith("DKIM " + expect_word), r.describe()
    return r


def test_knot_check_ok_then_critical_after_change(env):
    k = _knot_env(env)
    s = k.config()
    rotate_and_verify(k, s, "mail1")
    r = _check(s, 0, "OK")
    assert r.err == "", r.describe()

    path = os.path.join(env.tmp, "intruder.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    path], check=True, capture_output=True, timeout=60)
    k.bind.set_txt(s.selector_name("mail1"),
                   "v=DKIM1; k=ed25519; p=" + public_p(path))
    r = _check(s, 2, "CRITICAL")
    assert "127.0.0.1:%d" % k.bind.port in r.out, \
        "CRITICAL does not name the knotd server: " + r.describe()
    assert "mail1" in r.out, "CRITICAL does not name the selector: " + \
        r.describe()

    k.bind.delete_txt(s.selector_name("mail1"))
    _check(s, 2, "CRITICAL")
    _check_foreign(k)


def _break_tsig(s, secret=None, keyname=None):
    with open(s.tsig_key_file) as f:
        text = f.read()
    if secret is not None:
        text = re.sub(r'secret\s+"[^"]+"', 'secret "%s"' % secret, text)
    if keyname is not None:
        text = re.sub(r'key\s+"[^"]+"', 'key "%s"' % keyname, text)
    with open(s.tsig_key_file, "w") as f:
        f.write(text)
    os.chmod(s.tsig_key_file, 0o600)


def _refused_rotation(k, s, word):
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))
    reloaded = os.stat(s.reloaded).st_mtime_ns
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert word in r.err, "stderr does not name %s: %s" % (word,
                                                           r.describe())
    assert "NOTAUTH" in r.err, "stderr does not name NOTAUTH: " + \
        r.describe()
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed after a refused update"
    assert os.stat(s.reloaded).st_mtime_ns == reloaded, "signer reloaded"
    assert managed_record(k.bind, s, "mail2") is None
    assert key_status(s, "mail1")["state"] == "active"


def test_knot_wrong_tsig_secret_exits_69(env):
    k = _knot_env(env)
    s = k.config()
    rotate_and_verify(k, s, "mail1")
    _break_tsig(s, secret=base64.b64encode(os.urandom(32)).decode())
    _refused_rotation(k, s, "BADSIG")


def test_knot_unknown_tsig_key_exits_69(env):
    k = _knot_env(env)
    s = k.config()
    rotate_and_verify(k, s, "mail1")
    _break_tsig(s, keyname="not-known-to-knot")
    _refused_rotation(k, s, "BADKEY")
    _check_foreign(k)


def test_knot_rsa4096_rotation(env):
    k = _knot_env(env)
    s = k.config(algorithm="rsa-4096")
    sel, kf = rotate_and_verify(k, s, "mail1", algorithm="rsa-4096")
    ttl, rrs = k.bind.txt_rrset(s.selector_name(sel))
    assert len(rrs) == 1, rrs
    strings = rrs[0]
    assert len(strings) == 3 and all(len(x) <= 255 for x in strings), \
        [len(x) for x in strings]
    assert ttl == 2, "record TTL %s, configured 2s" % ttl
    der = base64.b64decode(record_tags(b"".join(strings).decode())["p"])
    text = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER",
                           "-noout", "-text"], input=der, check=True,
                          capture_output=True, timeout=30).stdout.decode()
    assert "4096 bit" in text, text.splitlines()[0]
    _roundtrip(k, s)
    rotate_and_verify(k, s, "mail2", algorithm="rsa-4096")
    _roundtrip(k, s)
    _check_foreign(k)
