"""The real OpenDKIM milter signs with the key dkimkeyd switched it to:
after each rotation (reload = SIGUSR1 to its PID), the signature it
inserts verifies with python3-dkim against the test BIND."""

import os
import re
import shutil
import subprocess
import tempfile
import time

import dkim

from harness import REPO, dkim_dnsfunc, run
from opendkim_milter import Milter, use_milter

CANARY = os.path.join(REPO, "contrib", "canary", "opendkim-canary")


def _signed_by(env, m, domain):
    reply, sigs, signed = m.sign(domain)
    assert reply == "a", "milter reply %r (not accept), signatures %r" % (
        reply, sigs)
    assert len(sigs) == 1, sigs
    sel = re.search(r"\bs=([a-z0-9]+);", sigs[0]).group(1)
    assert dkim.verify(signed, dnsfunc=dkim_dnsfunc(env.bind)), \
        "OpenDKIM's signature does not verify against BIND: %s" % sigs[0]
    return sel


def test_real_milter_signs_after_first_and_second_rotation(env):
    s = env.config()
    m = use_milter(env, s)
    m.start()
    try:
        r = run(s, "rotate", "--domain", "example.test")
        assert r.code == 0 and r.err == "", r.describe()
        assert _signed_by(env, m, "example.test") == "mail1"
        r = run(s, "rotate", "--domain", "example.test")
        assert r.code == 0 and r.err == "", r.describe()
        # The same milter process, reloaded by the configured command.
        assert m.proc.poll() is None, "milter died"
        assert _signed_by(env, m, "example.test") == "mail2"
    finally:
        m.stop()


def _add_ed25519_key(env, s, selector="ed1"):
    """Append an Ed25519 key for example.test to the tables, after the RSA
    line dkimkeyd wrote: the layout a dual domain would need."""
    kf = os.path.join(env.tmp, "ed25519.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    kf], check=True, capture_output=True, timeout=30)
    name = "%s._domainkey.example.test" % selector
    with open(s.key_table, "a") as f:
        f.write("%s example.test:%s:%s\n" % (name, selector, kf))
    with open(s.signing_table, "a") as f:
        f.write("*@example.test %s\n" % name)


def test_real_milter_cannot_sign_rsa_and_ed25519_for_one_domain(env):
    """Why configtest refuses ed25519_selectors on an opendkim signer,
    shown on Debian 12's real milter with an RSA and an Ed25519 key for
    one domain (RSA line first): without MultipleSignatures it signs with
    the RSA key alone; with it it refuses the message; with
    SignatureAlgorithm ed25519-sha256 too it labels the RSA signature
    ed25519 and that one does not verify."""
    s = env.config(extra_domain_lines=("ed25519_selectors = ed1 ed2",))
    r = run(s, "configtest")
    assert r.code == 78, r.describe()
    assert re.search(r"dkimkeyd\.conf:\d+: \[domain example\.test\] has "
                     r"ed25519_selectors, but its signer opendkim is "
                     r"OpenDKIM", r.err), r.describe()
    s = env.config()
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    _add_ed25519_key(env, s)
    m = use_milter(env, s)
    m.start()
    try:
        assert _signed_by(env, m, "example.test") == "mail1"
    finally:
        m.stop()
    m = Milter(env.tmp, s.key_table, s.signing_table,
               extra=("MultipleSignatures yes",))
    m.start()
    try:
        reply, sigs, _ = m.sign("example.test")
        assert reply != "a" and sigs == [], (reply, sigs)
    finally:
        m.stop()
    m = Milter(env.tmp, s.key_table, s.signing_table,
               extra=("MultipleSignatures yes",
                      "SignatureAlgorithm ed25519-sha256"))
    m.start()
    try:
        reply, sigs, signed = m.sign("example.test")
        assert reply == "a" and len(sigs) == 2, (reply, sigs)
        assert all("a=ed25519-sha256" in x for x in sigs), sigs
        rsa = [x for x in sigs if re.search(r"\bs=mail1;", x)]
        assert len(rsa) == 1, sigs
        # python3-dkim checks the first signature: keep only the RSA one.
        only = ("DKIM-Signature:%s\r\n" % rsa[0].replace("\n", "\r\n")
                ).encode() + signed[signed.index(b"\r\nFrom: ") + 2:]
        assert not dkim.verify(only, dnsfunc=dkim_dnsfunc(env.bind))
    finally:
        m.stop()


def test_configtest_warns_where_require_safe_keys_refuses_the_keys(env):
    """OpenDKIM's RequireSafeKeys (on by default) refuses keys under a
    world-writable directory, sticky /tmp included: the real milter signs
    nothing with them, and configtest says so unless the signer section
    says require_safe_keys = no (as the harness, whose milter runs with
    RequireSafeKeys no)."""
    s = env.config()
    r = run(s, "configtest")
    assert r.code == 0 and r.err == "", r.describe()
    with open(s.conf) as f:
        text = f.read()
    with open(s.conf, "w") as f:
        f.write(text.replace("require_safe_keys = no\n", ""))
    r = run(s, "configtest")
    assert r.code == 0, r.describe()
    assert re.search(r"warning: .*dkimkeyd\.conf:\d+: \[signer opendkim\]: "
                     r"OpenDKIM's RequireSafeKeys .* /tmp is writable by "
                     r"every user \(sticky or not", r.err), r.describe()
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    m = Milter(env.tmp, s.key_table, s.signing_table,
               extra=("RequireSafeKeys yes",))
    with open(m.conf) as f:
        conf = f.read()
    with open(m.conf, "w") as f:
        f.write(conf.replace("RequireSafeKeys no\n", ""))
    m.start()
    try:
        try:
            reply, sigs, _ = m.sign("example.test")
        except RuntimeError:        # miltertest timed out waiting
            reply, sigs = None, []
        assert reply != "a" and sigs == [], (reply, sigs)
    finally:
        m.stop()

    # A key_dir only root can write, on a path only root can write: no
    # warning (dkimkeyd runs as root here).
    safe = tempfile.mkdtemp(prefix="dkimkeyd-test.", dir="/run")
    try:
        os.chmod(safe, 0o700)
        with open(s.conf, "w") as f:
            f.write(re.sub(r"(?m)^key_dir = .*$", "key_dir = %s" % safe,
                           text.replace("require_safe_keys = no\n", "")))
        r = run(s, "configtest")
        assert r.code == 0 and r.err == "", r.describe()
    finally:
        shutil.rmtree(safe, ignore_errors=True)


def _set_signer_line(s, key, value):
    """key = value in the [signer opendkim] section (replaced or added)."""
    with open(s.conf) as f:
        text = f.read()
    text = re.sub(r"(?m)^%s = .*\n" % key, "", text)
    text = text.replace("[signer opendkim]\n",
                        "[signer opendkim]\n%s = %s\n" % (key, value), 1)
    with open(s.conf, "w") as f:
        f.write(text)


def test_canary_command_proves_what_the_real_milter_signs(env):
    """check --canary with canary = contrib/canary/opendkim-canary: the
    real milter signs, and dkimkeyd verifies its signature against BIND.
    A milter that was not reloaded signs with the old selector, and one
    reloaded with a wrong key file signs with a key the record does not
    hold: both CRITICAL, though the tables (and the in-process canary)
    are right."""
    s = env.config()
    m = use_milter(env, s)
    _set_signer_line(s, "canary", "%s -s inet:%d@127.0.0.1" % (CANARY,
                                                               m.port))
    m.start()
    try:
        r = run(s, "configtest")
        assert r.code == 0 and r.err == "", r.describe()
        r = run(s, "rotate", "--domain", "example.test")
        assert r.code == 0 and r.err == "", r.describe()
        r = run(s, "check", "--canary", "--domain", "example.test")
        assert r.code == 0, r.describe()

        # The reload does nothing now: the milter keeps signing mail1.
        _set_signer_line(s, "reload", "/bin/true")
        r = run(s, "rotate", "--domain", "example.test")
        assert r.code == 0 and r.err == "", r.describe()
        r = run(s, "check", "--domain", "example.test")
        assert r.code == 0, "the tables are right: %s" % r.describe()
        r = run(s, "check", "--canary", "--domain", "example.test")
        assert r.code == 2, r.describe()
        assert "canary: the signer signs with selector mail1, which its " \
            "configuration does not name" in r.out, r.describe()
        assert "did not sign with selector mail2" in r.out, r.describe()

        # Reloaded by hand: the live signer is right again.
        subprocess.run(["/bin/sh", m.reload_script], check=True,
                       timeout=30)
        time.sleep(0.5)
        r = run(s, "check", "--canary", "--domain", "example.test")
        assert r.code == 0, r.describe()

        # mail2 paired with another key in the milter's table only.
        wrong = os.path.join(env.tmp, "wrong.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "rsa",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", wrong],
                       check=True, capture_output=True, timeout=60)
        with open(s.key_table) as f:
            kt = f.read()
        with open(s.key_table + ".milter", "w") as f:
            f.write(re.sub(r"(?m)^(mail2\._domainkey\.example\.test "
                           r"example\.test:mail2:).*$", r"\g<1>" + wrong,
                           kt))
        m.stop()
        with open(m.conf) as f:
            conf = f.read()
        with open(m.conf, "w") as f:
            f.write(conf.replace("refile:" + s.key_table + "\n",
                                 "refile:" + s.key_table + ".milter\n"))
        m.start()
        r = run(s, "check", "--canary", "--domain", "example.test")
        assert r.code == 2, r.describe()
        assert "canary: the signer's signature (s=mail2) does not verify " \
            "with the record" in r.out, r.describe()
    finally:
        m.stop()


def test_crash_every_point(env):
    """The kill-at-every-crash-point run of one rotation (rspamd.py's
    crash_every_point) with the real OpenDKIM milter as the live signer:
    reloaded by SIGUSR1 after each switch, it must sign every message
    with a key whose record BIND serves, whatever instant dkimkeyd was
    killed at, and with mail2 only once the reruns are done."""
    from harness import HarnessError
    from rspamd import crash_every_point
    s = env.config()
    m = use_milter(env, s)
    m.start()

    def signs(d):
        try:
            reply, sigs, signed = m.sign(d)
        except RuntimeError as e:
            # A domain not yet in the tables: the milter accepts it
            # unsigned before the body, which the script does not expect.
            raise HarnessError(str(e))
        assert m.proc.poll() is None, "milter died"
        if reply != "a":
            raise AssertionError("%s: milter reply %r" % (d, reply))
        return signed

    try:
        n, k = crash_every_point(env, s, signs)
        env.log("opendkim: %d crash points, %d random kills" % (n, k))
        assert n >= 4, n
    finally:
        m.stop()
