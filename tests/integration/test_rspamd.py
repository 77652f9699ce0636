"""rspamd (Debian's, on loopback) signs with what dkimkeyd switched it to:
after each rotation (RSA, Ed25519, dual-algorithm) rspamd signs a message
and python3-dkim verifies every signature against the test BIND; no
signature uses the previous selector; check and check --canary read back
what rspamd is configured with."""

import os
import re
import time

from harness import MESSAGE, REPO, run, run_ok
from rspamd import (Rspamd, crash_every_point, signatures, use_signer,
                    verify_all)

DUAL = ("ed25519_selectors = ed1 ed2",)


def setup_rspamd(env, **kw):
    # The previous key stays published for the whole test: rspamd's old
    # workers may still sign with it for a while after a reload, and a
    # rotate slowed by load would otherwise go on to revoke it.
    kw.setdefault("retire_after", "1h")
    s = env.config(tables=False, **kw)
    inc = os.path.join(env.tmp, "rspamd-dkimkeyd.conf")
    r = Rspamd(env.tmp, env.bind.port, inc)
    keys = os.path.join(env.tmp, "rspamd-keys")
    os.makedirs(keys, mode=0o700)
    use_signer(s, ["type = rspamd", "file = %s" % inc,
                   "key_dir = %s" % keys,
                   "reload = %s" % r.reload_command()])
    return s, r


def rotate_signs(env, s, r, want, old=()):
    """rotate; then rspamd, reloaded, signs with exactly the selectors
    want (in order).  While its new workers start, the old ones may still
    sign with the selectors old; every signature at every instant
    verifies, and once want is seen the old selectors are never again."""
    run_ok(s, "rotate", "--domain", s.domain)
    deadline = time.monotonic() + 90
    seen = 0
    while True:
        msg = r.sign("a@" + s.domain, MESSAGE % (s.domain.encode(),
                                                 s.domain.encode()))
        if not old and not signatures(msg) and seen == 0:
            # Not signed yet: rspamd is still loading the first entry.
            assert time.monotonic() < deadline, \
                "rspamd does not sign, 90s after the switch to %r" % want
            time.sleep(0.5)
            continue
        sigs = verify_all(env.bind, msg, log=env.log)
        assert all(x[0] == s.domain for x in sigs), sigs
        sels = [x[1] for x in sigs]
        if sels == list(want):
            seen += 1
            if seen == 3:
                return sigs
            continue
        assert seen == 0, "rspamd signed with %r after it had switched " \
            "to %r" % (sigs, want)
        assert sels == list(old), \
            "rspamd signed with %r, expected %r (or %r before the " \
            "reload)" % (sigs, want, old)
        assert time.monotonic() < deadline, \
            "rspamd still signs with %r, 90s after the switch to %r" % (
                sels, want)
        time.sleep(0.5)


def check_ok(s):
    for args in (("check",), ("check", "--canary")):
        c = run(s, *args, "--domain", s.domain)
        assert c.code == 0, "%s: %s" % (" ".join(args), c.describe())


def test_rsa_rotations(env):
    s, r = setup_rspamd(env)
    r.start()
    try:
        sigs = rotate_signs(env, s, r, ["mail1"])
        assert sigs[0][2] == "rsa-sha256", sigs
        check_ok(s)
        rotate_signs(env, s, r, ["mail2"], ["mail1"])
        check_ok(s)
        # The file names dkimkeyd's own key: no copy for RSA.
        with open(os.path.join(env.tmp, "rspamd-dkimkeyd.conf")) as f:
            text = f.read()
        assert s.key_dir + "/" in text, text
        assert os.listdir(os.path.join(env.tmp, "rspamd-keys")) == [], \
            os.listdir(os.path.join(env.tmp, "rspamd-keys"))
    finally:
        r.stop()


def test_ed25519_rotations(env):
    s, r = setup_rspamd(env, algorithm="ed25519")
    r.start()
    try:
        sigs = rotate_signs(env, s, r, ["mail1"])
        assert sigs[0][2] == "ed25519-sha256", sigs
        check_ok(s)
        kd = os.path.join(env.tmp, "rspamd-keys", s.domain)
        first = os.listdir(kd)
        assert len(first) == 1 and first[0].endswith(".ed25519"), first
        assert os.stat(os.path.join(kd, first[0])).st_mode & 0o077 == 0
        rotate_signs(env, s, r, ["mail2"], ["mail1"])
        check_ok(s)
        # The previous copy stays for rspamd's old workers; the new one
        # is beside it.
        now = sorted(os.listdir(kd))
        assert len(now) == 2 and first[0] in now, (first, now)
    finally:
        r.stop()


def test_dual_rotations(env):
    s, r = setup_rspamd(env, extra_domain_lines=DUAL)
    r.start()
    try:
        sigs = rotate_signs(env, s, r, ["mail1", "ed1"])
        assert [x[2] for x in sigs] == ["rsa-sha256", "ed25519-sha256"], \
            sigs
        check_ok(s)
        rotate_signs(env, s, r, ["mail2", "ed2"], ["mail1", "ed1"])
        check_ok(s)
    finally:
        r.stop()


def test_canary_command_verifies_what_rspamd_signs(env):
    """check --canary with canary = contrib/canary/rspamd-canary: rspamd
    signs (RSA and Ed25519), dkimkeyd verifies both signatures against
    BIND; an rspamd not reloaded after a switch still signs with the old
    selectors: CRITICAL, though its file is right."""
    s, r = setup_rspamd(env, extra_domain_lines=DUAL)
    canary = "canary = %s -h 127.0.0.1:%d" % (
        os.path.join(REPO, "contrib", "canary", "rspamd-canary"), r.port)
    with open(s.conf) as f:
        text = f.read()
    with open(s.conf, "w") as f:
        f.write(text.replace("[signer opendkim]\n",
                             "[signer opendkim]\n%s\n" % canary, 1))
    r.start()
    try:
        rotate_signs(env, s, r, ["mail1", "ed1"])
        c = run(s, "check", "--canary", "--domain", s.domain)
        assert c.code == 0, c.describe()
        with open(s.conf) as f:
            text = f.read()
        with open(s.conf, "w") as f:
            f.write(re.sub(r"(?m)^reload = .*$", "reload = /bin/true", text))
        run_ok(s, "rotate", "--domain", s.domain)
        c = run(s, "check", "--domain", s.domain)
        assert c.code == 0, "the file is right: %s" % c.describe()
        c = run(s, "check", "--canary", "--domain", s.domain)
        assert c.code == 2, c.describe()
        assert "canary: the signer signs with selector mail1, which its " \
            "configuration does not name" in c.out, c.describe()
        assert "did not sign with selector ed2" in c.out, c.describe()
    finally:
        r.stop()


def test_other_settings_kept(env):
    """The include adds domain entries only: a domain dkimkeyd does not
    manage is not signed with its keys, and the operator's settings
    (here: no signing of unauthenticated outside mail) still apply."""
    s, r = setup_rspamd(env)
    r.start()
    try:
        run_ok(s, "rotate", "--domain", s.domain)
        other = r.sign("a@other.test", MESSAGE % (b"other.test",
                                                  b"other.test"))
        assert signatures(other) == [], signatures(other)
        c = run(s, "check", "--domain", s.domain)
        assert c.code == 0, c.describe()
    finally:
        r.stop()


def test_crash_every_point(env):
    """Killed at every crash point of a rotation and at random instants,
    then rerun: at every instant rspamd signs every domain with a key whose
    record is served (each signature verifies), and in the end with the
    new key only."""
    s, r = setup_rspamd(env)
    r.start()
    try:
        n, k = crash_every_point(
            env, s, lambda d: r.sign("a@" + d, MESSAGE % (d.encode(),
                                                          d.encode())))
        env.log("rspamd: %d crash points, %d random kills" % (n, k))
        assert n >= 4, n
    finally:
        r.stop()
