"""The activation gate and `check` judge a server's answer by one rule:
a record with the key dkimkeyd published but other h=, s= or t= tags is
not the published record.  The gate does not activate it; check reports
it (WARNING: the key still verifies); both accept the exact record."""

import os
import subprocess

from harness import key_status, read_tables, run, signer_current

CRASH_BIN = os.environ.get("DKIMKEYD_CRASH_BIN", os.path.join(
    os.path.dirname(__file__), "..", "..", "build-crash", "dkimkeyd"))


def _published_not_probed(env, s):
    """rotate killed just before its first probe: mail1 published."""
    e = dict(os.environ, DKIMKEYD_CRASH="before-probe")
    p = subprocess.run([CRASH_BIN, "-c", s.conf, "rotate", "--domain",
                        "example.test"], env=e, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0, "the crash point was not reached: %s %s" % (
        p.stdout, p.stderr)
    ks = key_status(s, "mail1")
    assert ks is not None and ks["state"] == "published", ks


def test_gate_and_check_refuse_the_same_key_with_other_tags(env):
    s = env.config(propagation_timeout="3s")
    _published_not_probed(env, s)
    name = s.selector_name("mail1")
    exact = env.bind.query_txt(name)[0]
    assert "t=y" not in exact, exact
    env.bind.set_txt(name, exact.replace("k=rsa;", "k=rsa; t=y;"))

    r = run(s, "check")
    assert r.code == 1, r.describe()
    assert "tags other than dkimkeyd published" in r.out, r.describe()

    r = run(s, "rotate", "--domain", "example.test", timeout=60)
    assert r.code == 75, "the gate accepted a record with other tags: " + \
        r.describe()
    assert "serves a different record (same key" in r.err, r.describe()
    ks = key_status(s, "mail1")
    assert ks["state"] == "published" and ks["active"] is None, ks
    kt, stt = read_tables(s)
    assert not any(d == "example.test" for d, _, _ in kt.values()), kt

    # The exact record again: both accept it.
    env.bind.set_txt(name, exact)
    r = run(s, "rotate", "--domain", "example.test", timeout=60)
    assert r.code == 0, r.describe()
    assert key_status(s, "mail1")["state"] == "active"
    assert signer_current(s)[0] == "mail1"
    r = run(s, "check")
    assert r.code == 0, r.describe()


def test_check_judges_a_files_signer_by_key_not_path(env):
    """The files signer keeps its own copy of the key: check compares
    what the key is (its key id), so a healthy domain is OK; another key
    in that file is CRITICAL."""
    s = env.config()
    sigdir = os.path.join(env.tmp, "signer-files")
    os.makedirs(sigdir, mode=0o700)
    with open(s.conf) as f:
        text = f.read()
    text = text.replace(
        "[signer opendkim]\ntype = opendkim\n",
        "[signer files]\ntype = files\ndir = %s\n\n"
        "[signer opendkim]\ntype = opendkim\n" % sigdir)
    text = text.replace("signer = opendkim", "signer = files")
    with open(s.conf, "w") as f:
        f.write(text)
    r = run(s, "rotate", "--domain", "example.test", timeout=60)
    assert r.code == 0, r.describe()
    r = run(s, "check")
    assert r.code == 0, "a healthy files-signer domain: " + r.describe()

    # Another key in the signer's file: not the active key.
    other = os.path.join(env.tmp, "other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    other], check=True, capture_output=True)
    copies = [n for n in os.listdir(sigdir) if n.endswith(".pem")]
    assert copies, os.listdir(sigdir)
    for n in copies:
        path = os.path.join(sigdir, n)
        with open(other, "rb") as src:
            data = src.read()
        os.chmod(path, 0o600)
        with open(path, "wb") as dst:
            dst.write(data)
    r = run(s, "check")
    assert r.code == 2, r.describe()
    assert "the active key is" in r.out, r.describe()
