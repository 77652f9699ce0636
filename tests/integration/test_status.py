"""`dkimkeyd status` (generation and compromise of each key), the message
of a rotation blocked by busy selectors, and the canary's signature check
against a record of another key of the same algorithm."""

import os
import subprocess

from harness import (check_status_schema, domain_status, key_status,
                     public_p, rotate_and_verify, run, run_ok,
                     signer_current, status_json)


def _keys_by_selector(setup):
    """{selector: newest key} from status --json."""
    keys = {}
    for k in domain_status(setup)["keys"]:
        keys[k["selector"]] = k
    return keys


def _check_new_fields(setup):
    st = status_json(setup)
    check_status_schema(st)
    for d in st["domains"]:
        for k in d["keys"]:
            assert isinstance(k.get("generation"), int) and \
                not isinstance(k["generation"], bool) and \
                k["generation"] >= 1, k
            assert "compromised" in k, "status key lacks 'compromised': " \
                "%r" % k
            assert k["compromised"] is None or (
                isinstance(k["compromised"], int) and
                not isinstance(k["compromised"], bool)), k


def _text_line(setup, selector, generation):
    """The line of status (text) for selector's key of generation."""
    out = run_ok(setup, "status", "--domain", setup.domain)
    lines = [ln for ln in out.splitlines()
             if ln.split() and ln.split()[0] == selector and
             " gen %d " % generation in ln]
    assert len(lines) == 1, "status shows %d lines for %s gen %d: %r" % (
        len(lines), selector, generation, out)
    return lines[0]


def test_status_generation_and_compromised(env):
    # retire_after 1h: only revoke can mark and revoke a key here.
    s = env.config(retire_after="1h")

    rotate_and_verify(env, s, "mail1")
    _check_new_fields(s)
    k1 = key_status(s, "mail1")
    assert k1["generation"] == 1, k1
    assert k1["compromised"] is None, k1
    line = _text_line(s, "mail1", 1)
    assert "compromised" not in line, line

    rotate_and_verify(env, s, "mail2")
    _check_new_fields(s)
    keys = _keys_by_selector(s)
    assert keys["mail1"]["generation"] == 1, keys
    assert keys["mail2"]["generation"] == 2, keys
    assert keys["mail1"]["compromised"] is None, keys
    assert keys["mail2"]["compromised"] is None, keys

    # revoke the active key: it is marked compromised, a third
    # generation takes its place.
    r = run(s, "revoke", "--domain", s.domain)
    assert r.code == 0, r.describe()
    _check_new_fields(s)
    st = domain_status(s)
    gen2 = [k for k in st["keys"] if k["generation"] == 2]
    assert len(gen2) == 1, st
    assert gen2[0]["selector"] == "mail2", gen2
    assert isinstance(gen2[0]["compromised"], int), gen2
    assert gen2[0]["active"] <= gen2[0]["compromised"], gen2
    assert gen2[0]["state"] == "revoked", gen2
    for k in st["keys"]:
        if k["generation"] != 2:
            assert k["compromised"] is None, \
                "only the revoked key is compromised: %r" % k
    k3 = key_status(s, "mail1")
    assert k3["generation"] == 3 and k3["state"] == "active", k3
    line = _text_line(s, "mail2", 2)
    assert "compromised" in line, line
    line = _text_line(s, "mail1", 3)
    assert "compromised" not in line, line


# The full names of the tests below contain "rotation" and "check", so
# that `run.py rotation` and `run.py check` run them too.

def test_rotation_blocked_names_the_busy_selectors(env):
    s = env.config(retire_after="1h")
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")
    k1 = key_status(s, "mail1")
    k2 = key_status(s, "mail2")
    for args in (("--dry-run",), ()):
        r = run(s, "rotate", "--domain", s.domain, *args)
        assert r.code == 75, r.describe()
        assert "no selector is free for a new key until" in r.err, \
            r.describe()
        assert "mail1 still holds key %s (retired; revoked after " \
            "retire_after 1h, then removed after its TTL 2s)" % \
            k1["key_id"] in r.err, r.describe()
        assert "mail2 holds the active key %s" % k2["key_id"] in r.err, \
            r.describe()


def _check_canary(s):
    r = run(s, "check", "--canary")
    assert "AddressSanitizer" not in r.err and "runtime error" not in \
        r.err, r.describe()
    return r


def _other_key_record(env, algorithm):
    path = os.path.join(env.tmp, "other-%s.pem" % os.urandom(3).hex())
    argv = ["openssl", "genpkey", "-algorithm", algorithm, "-out", path]
    if algorithm == "rsa":
        argv += ["-pkeyopt", "rsa_keygen_bits:2048"]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return "v=DKIM1; k=%s; p=%s" % (algorithm, public_p(path))


def _canary_against_other_key(env, alg, keyspec):
    s = env.config(algorithm=keyspec)
    rotate_and_verify(env, s, "mail1", algorithm=keyspec)
    r = _check_canary(s)
    assert r.code == 0 and r.out.startswith("DKIM OK - "), r.describe()
    sel, kf = signer_current(s)
    name = s.selector_name(sel)
    published = env.bind.query_txt(name)
    assert len(published) == 1, published
    # DNS now serves a valid record of another key of the same
    # algorithm: well-formed, so only the signature can tell.
    env.bind.set_txt(name, _other_key_record(env, alg))
    r = _check_canary(s)
    assert r.code == 2 and r.out.startswith("DKIM CRITICAL - "), \
        r.describe()
    for needle in ("canary: a signature by the signer's key %s (selector "
                   "%s) would not verify" % (kf, sel),
                   "%s serves another key at %s" % (env.bind.addr(),
                                                    name)):
        assert needle in r.out, "%r not in the output: %s" % (
            needle, r.describe())
    # The published record back: OK again.
    env.bind.set_txt(name, published[0])
    r = _check_canary(s)
    assert r.code == 0, r.describe()


def test_check_canary_other_rsa_key_is_critical(env):
    _canary_against_other_key(env, "rsa", "rsa-2048")


def test_check_canary_other_ed25519_key_is_critical(env):
    _canary_against_other_key(env, "ed25519", "ed25519")
