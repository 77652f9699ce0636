"""Self-tests of the harness: the test BIND, TSIG updates and the
python3-dkim check work on their own, without dkimkeyd."""

import base64
import os
import subprocess

import dns.rcode
import dns.tsig
import dns.update

from harness import FOREIGN_RECORD, HarnessError, dkim_sign_verify, wait_until


def _genkey(env, name, alg):
    path = os.path.join(env.tmp, name + ".pem")
    args = ["openssl", "genpkey", "-out", path]
    if alg == "ed25519":
        args += ["-algorithm", "ed25519"]
    else:
        args += ["-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:%d" % alg]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True, timeout=30).stdout
    if alg == "ed25519":
        rec = "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    else:
        rec = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return path, rec


def test_bind_serves_test_zone(env):
    b = env.bind
    r = b.query("example.test", "SOA")
    soa = r.answer[0]
    assert soa.ttl == 2 and soa[0].minimum == 1, soa
    ns = b.query("example.test", "NS").answer[0]
    assert [str(x.target) for x in ns] == ["ns1.example.test."], ns
    a = b.query("ns1.example.test", "A").answer[0]
    assert [x.address for x in a] == ["127.0.0.1"], a
    assert b.query_txt("other._domainkey.example.test") == [FOREIGN_RECORD]
    r = b.query("mail1._domainkey.example.test", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN, dns.rcode.to_text(r.rcode())
    assert b.query_txt("mail1._domainkey.example.test") == []


def test_tsig_update_and_dkim_verify_rsa(env):
    b = env.bind
    name = "selftest._domainkey.example.test"
    kf, rec = _genkey(env, "rsa", 2048)
    other_kf, other_rec = _genkey(env, "rsa2", 2048)
    b.set_txt(name, rec)
    assert b.query_txt(name) == [rec]
    ok, _ = dkim_sign_verify(b, "example.test", "selftest", kf)
    assert ok, "signature with the published key does not verify"
    b.set_txt(name, other_rec)
    assert b.query_txt(name) == [other_rec]
    ok, _ = dkim_sign_verify(b, "example.test", "selftest", kf)
    assert not ok, "signature verifies against another key"
    b.delete_txt(name)
    assert b.query_txt(name) == []


def test_dkim_verify_ed25519_and_rsa4096(env):
    b = env.bind
    kf, rec = _genkey(env, "ed", "ed25519")
    b.set_txt("ed._domainkey.example.test", rec)
    ok, _ = dkim_sign_verify(b, "example.test", "ed", kf)
    assert ok, "Ed25519 signature does not verify"
    kf, rec = _genkey(env, "big", 4096)
    b.set_txt("big._domainkey.example.test", rec)
    ttl, rrs = b.txt_rrset("big._domainkey.example.test")
    assert len(rrs) == 1 and len(rrs[0]) == 3, rrs
    ok, _ = dkim_sign_verify(b, "example.test", "big", kf)
    assert ok, "RSA-4096 signature does not verify"


def test_wrong_tsig_secret_is_badsig(env):
    b = env.bind
    bad = dns.tsig.Key(b.keyname, base64.b64encode(b"\x01" * 32).decode(),
                       b.algorithm)
    u = dns.update.UpdateMessage("example.test", keyring=bad)
    u.replace("x._domainkey.example.test", 2, "TXT", '"v=DKIM1; p="')
    try:
        dns.query.tcp(u, "127.0.0.1", port=b.port, timeout=5)
    except dns.tsig.PeerBadSignature:
        pass
    else:
        raise AssertionError("update with a wrong secret was not BADSIG")
    assert b.query_txt("x._domainkey.example.test") == []


def test_bind_restarts_on_same_port(env):
    b = env.bind
    b.set_txt("keep._domainkey.example.test", "v=DKIM1; p=")
    b.stop()
    assert not b.running()
    try:
        b.query("example.test", "SOA", timeout=1)
    except (OSError, dns.exception.Timeout):
        pass
    else:
        raise AssertionError("stopped named still answers")
    b.start()
    assert b.query_txt("keep._domainkey.example.test") == ["v=DKIM1; p="]


def test_wait_until_reports_what(env):
    try:
        wait_until(lambda: False, 0.3, "the impossible")
    except HarnessError as e:
        assert "the impossible" in str(e), e
    else:
        raise AssertionError("wait_until did not time out")
    assert wait_until(lambda: 42, 1, "a value") == 42
