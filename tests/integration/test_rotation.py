"""Rotations against a real BIND: first rotation, second rotation,
retirement, revocation and removal by `run --once`, selector reuse,
dry runs, other algorithms and NS discovery."""

import base64
import os
import re
import subprocess
import time

from harness import (check_status_schema, dkim_roundtrip, domain_status,
                     is_revoked, key_status, managed_record, read_bytes,
                     record_tags, rotate_and_verify, run, run_ok,
                     signer_current, snapshot_files, status_json,
                     wait_until)


def test_rotation_lifecycle(env):
    s = env.config()
    b = env.bind

    # First rotation from nothing: mail1 active, mail2 untouched.
    sel1, kf1 = rotate_and_verify(env, s, "mail1")
    assert managed_record(b, s, "mail2") is None
    st = status_json(s)
    check_status_schema(st)
    assert [d["domain"] for d in st["domains"]] == ["example.test"], st

    # Second rotation: mail2 active, mail1 retired and still published.
    rec1 = managed_record(b, s, "mail1")
    sel2, kf2 = rotate_and_verify(env, s, "mail2")
    assert kf2 != kf1
    assert managed_record(b, s, "mail1") == rec1, \
        "retired key's record changed (invariant 2)"
    assert os.path.isfile(kf1), "retired key's private key destroyed early"
    k1 = key_status(s, "mail1")
    assert k1["state"] == "retired" and isinstance(k1["retired"], int), k1
    assert k1["revoked"] is None and k1["removed"] is None, k1
    d = domain_status(s)
    assert d["next_at"] is not None and \
        d["next_at"] >= k1["retired"] + 3, \
        "next action %r at %r, before retire_after" % (d["next_action"],
                                                       d["next_at"])

    # mail1 is not free yet: exit 75 saying when it will be.
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 75, r.describe()
    assert re.search(r"\d\d:\d\d|\d+ ?s\b|\d{9,}", r.err), \
        "message does not say when the selector is free: " + r.describe()
    assert signer_current(s) == (sel2, kf2), "failed rotate moved signer"
    assert managed_record(b, s, "mail1") == rec1

    # Nothing is due before retire_after: run --once changes nothing.
    if time.time() < k1["retired"] + 2:
        run_ok(s, "run", "--once")
        assert managed_record(b, s, "mail1") == rec1, \
            "record revoked before retire_after"

    # After retire_after (3s): run --once revokes mail1 (p= empty).
    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(b, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "run --once to publish mail1 revoked")
    k1 = key_status(s, "mail1")
    assert k1["state"] == "revoked", k1
    assert k1["revoked"] >= k1["retired"] + 3, \
        "revoked %ds after retirement, retire_after is 3s" % (
            k1["revoked"] - k1["retired"])
    assert signer_current(s) == (sel2, kf2)
    assert managed_record(b, s, "mail2") is not None

    # After the revoked record's TTL (2s): deleted, private key destroyed.
    def removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None
    wait_until(removed, 20, "run --once to delete mail1")
    assert not os.path.exists(kf1), "private key %s not destroyed" % kf1
    k1 = key_status(s, "mail1")
    assert k1["state"] == "removed" and k1["removed"] >= k1["revoked"] + 2, \
        k1
    assert dkimkeyd_roundtrip_ok(env, s)

    # mail1 becomes free again once the removed record's TTL has passed:
    # rotate answers 75 until then, and rotates back to mail1 after.
    def rotated_back():
        r = run(s, "rotate", "--domain", "example.test")
        if r.code == 75:
            return False
        assert r.code == 0 and r.err == "", r.describe()
        return True
    wait_until(rotated_back, 20, "mail1 to be reusable", interval=0.5)
    sel3, kf3 = signer_current(s)
    assert sel3 == "mail1" and kf3 not in (kf1, kf2), (sel3, kf3)
    assert key_status(s, "mail2")["state"] == "retired"
    assert dkimkeyd_roundtrip_ok(env, s)


def dkimkeyd_roundtrip_ok(env, s):
    return dkim_roundtrip(s, env.bind, s.domain, log=env.log)


def _world(env, s):
    b = env.bind
    # A lock file is not state: only its presence may differ.
    files = {p: v for p, v in snapshot_files(s.state_dir, s.key_dir).items()
             if not os.path.basename(p).endswith(".lock")}
    return (files,
            read_bytes(s.key_table), read_bytes(s.signing_table),
            read_bytes(s.reloaded),
            b.txt_rrset(s.selector_name("mail1")),
            b.txt_rrset(s.selector_name("mail2")))


def test_dry_run_changes_nothing(env):
    s = env.config()
    before = _world(env, s)
    out = run_ok(s, "rotate", "--domain", "example.test", "--dry-run")
    assert "mail1" in out, "dry-run plan does not name mail1:\n" + out
    assert _world(env, s) == before, "--dry-run changed something"
    assert not os.path.exists(s.reloaded)

    rotate_and_verify(env, s, "mail1")
    before = _world(env, s)
    out = run_ok(s, "rotate", "--domain", "example.test", "--dry-run")
    assert "mail2" in out, "dry-run plan does not name mail2:\n" + out
    assert _world(env, s) == before, "--dry-run changed something"


def test_ed25519_rotation(env):
    s = env.config(algorithm="ed25519")
    sel, kf = rotate_and_verify(env, s, "mail1", algorithm="ed25519")
    t = record_tags(managed_record(env.bind, s, sel))
    assert len(base64.b64decode(t["p"])) == 32, t
    rotate_and_verify(env, s, "mail2", algorithm="ed25519")


def test_rsa4096_rotation(env):
    s = env.config(algorithm="rsa-4096")
    sel, kf = rotate_and_verify(env, s, "mail1", algorithm="rsa-4096")
    ttl, rrs = env.bind.txt_rrset(s.selector_name(sel))
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


def test_rotation_with_ns_discovery(env):
    s = env.config(discovery=True, tables=False)
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")

