"""Dual algorithms (RFC 8463: an RSA and an Ed25519 key rotated in step)
and emergency revocation, against a real BIND, checked with python3-dkim."""

import os

from harness import (dkim_sign_verify, files_signer_keys, is_revoked,
                     key_status, managed_record, public_p, record_tags, run,
                     run_ok, signer_current, wait_until)

DUAL = ("ed25519_selectors = ed1 ed2",)
WARNING = ("revoking %s._domainkey.example.test: mail in flight signed "
           "with this key will fail DKIM verification")


def signer_keys(setup):
    """[(selector, keyfile)] the files signer's index names for
    example.test, in order.  Debian 12's OpenDKIM cannot sign with an RSA
    and an Ed25519 key for one domain (test_opendkim_milter.py), so
    configtest refuses dual domains on an opendkim signer, and these
    tests run on the files signer."""
    return files_signer_keys(setup)


def check_active_pair(env, setup, rsa_sel, ed_sel):
    """Both keys signed with, published, and verifying; returns the key
    files {selector: keyfile}."""
    b = env.bind
    keys = signer_keys(setup)
    assert [sel for sel, _ in keys] == [rsa_sel, ed_sel], \
        "example.test.keys: %r" % keys
    files = dict(keys)
    for sel, kf in keys:
        assert os.path.isfile(kf), "the index names missing key %s" % kf
        rec = managed_record(b, setup, sel)
        assert rec is not None, "%s not published" % sel
        tags = record_tags(rec)
        assert tags.get("k") == ("ed25519" if sel == ed_sel else "rsa"), rec
        assert tags.get("p") == public_p(kf), \
            "%s publishes another key than %s" % (sel, kf)
        ok, _ = dkim_sign_verify(b, setup.domain, sel, kf, log=env.log)
        assert ok, "signature with %s (%s) does not verify" % (sel, kf)
        assert key_status(setup, sel)["state"] == "active"
    return files


def test_dual_rotation_lifecycle(env):
    s = env.config(extra_domain_lines=DUAL, signer="files")
    b = env.bind

    # First rotation: an RSA key on mail1 and an Ed25519 key on ed1,
    # switched on together; both signatures verify.
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    files1 = check_active_pair(env, s, "mail1", "ed1")
    assert key_status(s, "mail1")["algorithm"] == "rsa-2048"
    assert key_status(s, "ed1")["algorithm"] == "ed25519"
    assert key_status(s, "mail1")["active"] == key_status(s, "ed1")["active"]
    assert managed_record(b, s, "mail2") is None
    assert managed_record(b, s, "ed2") is None
    with open(s.state_file()) as f:
        state = f.read()
    assert state.count("generation: 1\n") == 2, state
    # check --json names both active keys; active_selector the RSA one.
    r = run(s, "check", "--json", "--domain", s.domain)
    dom = __import__("json").loads(r.out)["domains"][0]
    assert dom["active_selector"] == "mail1", dom
    assert sorted(k["selector"] for k in dom["active_keys"]) == \
        ["ed1", "mail1"], dom["active_keys"]

    # Second rotation moves both; both old keys retired together, their
    # records unchanged (invariant 2).
    rec_m1 = managed_record(b, s, "mail1")
    rec_e1 = managed_record(b, s, "ed1")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    check_active_pair(env, s, "mail2", "ed2")
    k_m1, k_e1 = key_status(s, "mail1"), key_status(s, "ed1")
    assert k_m1["state"] == "retired" and k_e1["state"] == "retired"
    assert k_m1["retired"] == k_e1["retired"]
    assert managed_record(b, s, "mail1") == rec_m1
    assert managed_record(b, s, "ed1") == rec_e1

    # run --once revokes both after retire_after, then removes both.
    def both_revoked():
        run_ok(s, "run", "--once")
        return all(managed_record(b, s, sel) is not None and
                   is_revoked(managed_record(b, s, sel))
                   for sel in ("mail1", "ed1"))
    wait_until(both_revoked, 30, "run --once to revoke mail1 and ed1")

    def both_removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None and \
            managed_record(b, s, "ed1") is None
    wait_until(both_removed, 30, "run --once to delete mail1 and ed1")
    for kf in files1.values():
        src = os.path.join(s.key_dir, os.path.basename(kf))
        assert not os.path.exists(src), "private key %s not destroyed" % src
    check_active_pair(env, s, "mail2", "ed2")
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()


def test_revoke_active_key_rotates_and_revokes_at_once(env):
    # retire_after 1h: only revoke can publish p= within this test.
    s = env.config(retire_after="1h")
    b = env.bind
    run_ok(s, "rotate", "--domain", s.domain)
    sel1, kf1 = signer_current(s)
    assert sel1 == "mail1"

    r = run(s, "revoke", "--domain", s.domain)
    assert r.code == 0, r.describe()
    assert WARNING % "mail1" in r.err, r.describe()
    sel2, kf2 = signer_current(s)
    assert sel2 == "mail2", "signer still on %s" % sel2
    ok, _ = dkim_sign_verify(b, s.domain, sel2, kf2, log=env.log)
    assert ok, "the fresh key does not verify"
    rec = managed_record(b, s, "mail1")
    assert rec is not None and is_revoked(rec), \
        "mail1 not revoked at once: %r" % rec
    k1 = key_status(s, "mail1")
    assert k1["state"] == "revoked", k1
    assert k1["revoked"] - k1["retired"] < 60, k1
    with open(s.state_file()) as f:
        assert "compromised:" in f.read()

    # Again: the idle selector mail1 still holds the revoked key; it is
    # removed at once, and after its TTL mail1 takes the fresh key.
    r = run(s, "revoke", "--domain", s.domain)
    assert r.code == 0, r.describe()
    assert WARNING % "mail2" in r.err, r.describe()
    sel3, kf3 = signer_current(s)
    assert sel3 == "mail1" and kf3 != kf1, (sel3, kf3)
    assert not os.path.exists(kf1), "removed key %s not destroyed" % kf1
    ok, _ = dkim_sign_verify(b, s.domain, sel3, kf3, log=env.log)
    assert ok
    rec = managed_record(b, s, "mail2")
    assert rec is not None and is_revoked(rec), rec


def test_revoke_dual_active_keys_together(env):
    s = env.config(retire_after="1h", extra_domain_lines=DUAL,
                   signer="files")
    b = env.bind
    run_ok(s, "rotate", "--domain", s.domain)
    check_active_pair(env, s, "mail1", "ed1")

    r = run(s, "revoke", "--domain", s.domain)
    assert r.code == 0, r.describe()
    assert WARNING % "mail1" in r.err and WARNING % "ed1" in r.err, \
        r.describe()
    check_active_pair(env, s, "mail2", "ed2")
    for sel in ("mail1", "ed1"):
        rec = managed_record(b, s, sel)
        assert rec is not None and is_revoked(rec), (sel, rec)


def test_revoke_retired_selector_only(env):
    s = env.config(retire_after="1h")
    b = env.bind
    run_ok(s, "rotate", "--domain", s.domain)
    run_ok(s, "rotate", "--domain", s.domain)
    before = signer_current(s)
    assert before[0] == "mail2"
    assert not is_revoked(managed_record(b, s, "mail1"))

    r = run(s, "revoke", "--domain", s.domain, "--selector", "mail1")
    assert r.code == 0, r.describe()
    assert WARNING % "mail1" in r.err, r.describe()
    assert is_revoked(managed_record(b, s, "mail1"))
    assert signer_current(s) == before, "revoking a retired key rotated"
    assert not is_revoked(managed_record(b, s, "mail2"))

    # Already revoked: nothing to do.
    r = run(s, "revoke", "--domain", s.domain, "--selector", "mail1")
    assert r.code == 0 and r.err == "", r.describe()


def test_revoke_usage_errors(env):
    s = env.config()
    r = run(s, "revoke")
    assert r.code == 64, r.describe()
    r = run(s, "revoke", "--domain", s.domain)
    assert r.code == 64 and "no active key" in r.err, r.describe()
    r = run(s, "rotate", "--domain", s.domain, "--selector", "mail1")
    assert r.code == 64, r.describe()
    r = run(s, "revoke", "--domain", "nowhere.test")
    assert r.code == 78, r.describe()
