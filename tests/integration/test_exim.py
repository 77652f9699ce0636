"""Exim (Debian's exim4-daemon-heavy, on loopback) signs with what
dkimkeyd switched it to: a message sent in with swaks arrives at a
loopback SMTP sink signed, and python3-dkim verifies every signature
against the test BIND, after each rotation and for a dual-algorithm
domain; check and check --canary read back the lsearch file."""

import os
import uuid

from exim import Exim, Sink, open_for_exim
from harness import HarnessError, run, run_ok
from rspamd import crash_every_point, use_signer, verify_all

DUAL = ("ed25519_selectors = ed1 ed2",)


def setup_exim(env, extra=()):
    s = env.config(tables=False, extra_domain_lines=extra)
    lsearch = os.path.join(env.tmp, "exim-dkim.lsearch")
    use_signer(s, ["type = exim", "file = %s" % lsearch])
    with open(s.conf) as f:
        text = f.read()
    text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\nkey_group = "
                        "Debian-exim\n", 1)
    with open(s.conf, "w") as f:
        f.write(text)
    open_for_exim(env.tmp, s)
    sink = Sink().start()
    x = Exim(env.tmp, sink.port, lsearch)
    return s, x, sink


class Count:
    n = 0


def rotate_sends(env, s, x, sink, count, want):
    run_ok(s, "rotate", "--domain", s.domain)
    for c in (("check",), ("check", "--canary")):
        r = run(s, *c, "--domain", s.domain)
        assert r.code == 0, r.describe()
    x.send("a@" + s.domain, "alice@" + s.domain)
    count.n += 1
    msg = sink.wait(count.n)
    sigs = verify_all(env.bind, msg, log=env.log)
    assert [v[1] for v in sigs] == list(want), \
        "Exim signed with %r, expected selectors %r" % (sigs, want)
    assert all(v[0] == s.domain for v in sigs), sigs
    return sigs


def run_exim(env, extra, rounds):
    s, x, sink = setup_exim(env, extra)
    count = Count()
    try:
        x.start()
        for want, algs in rounds:
            sigs = rotate_sends(env, s, x, sink, count, want)
            assert [v[2] for v in sigs] == algs, sigs
        # A domain without a line goes out unsigned.
        x.send("a@other.test", "alice@other.test")
        count.n += 1
        assert b"DKIM-Signature" not in sink.wait(count.n)
    finally:
        x.stop()
        sink.stop()


def test_rsa_rotations(env):
    run_exim(env, (), ((["mail1"], ["rsa-sha256"]),
                       (["mail2"], ["rsa-sha256"])))


def test_dual_rotations(env):
    run_exim(env, DUAL, ((["mail1", "ed1"], ["rsa-sha256",
                                             "ed25519-sha256"]),
                         (["mail2", "ed2"], ["rsa-sha256",
                                             "ed25519-sha256"])))


def test_crash_every_point(env):
    """Killed at every crash point of a rotation and at random instants,
    then rerun: at every instant Exim signs every domain's mail with a key
    whose record is served (each signature verifies; a delivery deferred
    for an unreadable key fails too), and in the end with the new key
    only."""
    s, x, sink = setup_exim(env)

    def signs(d):
        token = "crash-%s" % uuid.uuid4().hex
        x.send("a@" + d, "alice@" + d, subject=token)
        try:
            return sink.find(token)
        except HarnessError as e:
            raise AssertionError("%s: Exim did not deliver: %s\n%s" % (
                d, e, x.log_tail()))
    try:
        x.start()
        n, k = crash_every_point(env, s, signs)
        env.log("exim: %d crash points, %d random kills" % (n, k))
        assert n >= 4, n
    finally:
        x.stop()
        sink.stop()


def test_canary_command_verifies_what_exim_signs(env):
    """check --canary with canary = contrib/canary/exim-canary: Exim's
    DKIM transport signs (RSA and Ed25519) a message that comes back to
    the canary, and dkimkeyd verifies both signatures against BIND; a
    key file swapped under the lsearch file's feet is CRITICAL."""
    from harness import REPO, free_port
    s = env.config(tables=False, extra_domain_lines=DUAL)
    lsearch = os.path.join(env.tmp, "exim-dkim.lsearch")
    back = free_port()
    x = Exim(env.tmp, back, lsearch)
    use_signer(s, ["type = exim", "file = %s" % lsearch,
                   "canary = %s -s 127.0.0.1:%d -l %d" % (
                       os.path.join(REPO, "contrib", "canary",
                                    "exim-canary"), x.port, back)])
    with open(s.conf) as f:
        text = f.read()
    with open(s.conf, "w") as f:
        f.write(text.replace("[dkimkeyd]\n", "[dkimkeyd]\nkey_group = "
                             "Debian-exim\n", 1))
    open_for_exim(env.tmp, s)
    x.start()
    try:
        run_ok(s, "rotate", "--domain", s.domain)
        r = run(s, "check", "--canary", "--domain", s.domain)
        assert r.code == 0, r.describe()
        # The RSA key file replaced by another key, in place.
        with open(lsearch) as f:
            line = [ln for ln in f if ln.startswith(s.domain + "/mail1:")]
        kf = line[0].split(":", 1)[1].strip()
        import subprocess
        subprocess.run(["openssl", "genpkey", "-algorithm", "rsa",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        kf + ".new"], check=True, capture_output=True,
                       timeout=60)
        st = os.stat(kf)
        os.chown(kf + ".new", st.st_uid, st.st_gid)
        os.chmod(kf + ".new", st.st_mode & 0o777)
        os.rename(kf + ".new", kf)
        r = run(s, "check", "--canary", "--domain", s.domain)
        assert r.code == 2, r.describe()
        assert "canary: the signer's signature (s=mail1) does not verify " \
            "with the record" in r.out, r.describe()
        assert "(s=ed1) does not verify" not in r.out, r.describe()
    finally:
        x.stop()
