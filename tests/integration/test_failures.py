"""Failures and monitoring: check OK then CRITICAL after a change behind
dkimkeyd's back, a wrong TSIG secret (69), the server down (75, resumable),
a corrupt state file (65, no DNS write)."""

import base64
import fcntl
import os
import re
import subprocess
import time

from harness import (domain_status, key_status, managed_record, public_p,
                     read_bytes, rotate_and_verify, run, signer_current,
                     snapshot_files, wait_until)


def _check(s, expect_code, expect_word):
    r = run(s, "check", "--domain", s.domain)
    first = r.out.splitlines()[0] if r.out else ""
    assert r.code == expect_code, r.describe()
    assert first.startswith("DKIM " + expect_word), r.describe()
    assert " | " in first, "no perfdata in: %r" % first
    return r


def _foreign_key_record(env):
    path = os.path.join(env.tmp, "intruder.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", path], check=True,
                   capture_output=True, timeout=120)
    return "v=DKIM1; k=rsa; p=" + public_p(path)


def test_check_ok_then_critical_after_change(env):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    r = _check(s, 0, "OK")
    assert r.err == "", r.describe()
    rotate_and_verify(env, s, "mail2")
    _check(s, 0, "OK")

    env.bind.set_txt(s.selector_name("mail2"), _foreign_key_record(env))
    r = _check(s, 2, "CRITICAL")
    assert "127.0.0.1" in r.out, "CRITICAL does not name the server: " + \
        r.describe()
    assert "mail2" in r.out, "CRITICAL does not name the selector: " + \
        r.describe()

    # A record removed behind dkimkeyd's back is CRITICAL as well.
    env.bind.delete_txt(s.selector_name("mail2"))
    _check(s, 2, "CRITICAL")


def test_wrong_tsig_secret_exits_69(env):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    bad = base64.b64encode(os.urandom(32)).decode()
    with open(s.tsig_key_file) as f:
        text = f.read()
    text = re.sub(r'secret\s+"[^"]+"', 'secret "%s"' % bad, text)
    with open(s.tsig_key_file, "w") as f:
        f.write(text)
    os.chmod(s.tsig_key_file, 0o600)
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))
    reloaded = os.stat(s.reloaded).st_mtime_ns

    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 69, r.describe()
    assert "BADSIG" in r.err, "stderr does not name BADSIG: " + r.describe()
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed after a refused update"
    assert os.stat(s.reloaded).st_mtime_ns == reloaded, "signer reloaded"
    assert managed_record(env.bind, s, "mail2") is None
    assert key_status(s, "mail1")["state"] == "active"


def test_server_down_exits_75_and_resumes(env):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))
    env.bind.stop()

    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 75, r.describe()
    assert r.err != "", r.describe()
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed while the server was down"
    assert os.path.isfile(s.state_file()), "state file gone"
    assert key_status(s, "mail1")["state"] == "active"

    env.bind.start()
    assert managed_record(env.bind, s, "mail2") is None
    rotate_and_verify(env, s, "mail2", resumed=True)
    assert key_status(s, "mail1")["state"] == "retired"
    assert len([k for k in key_status_all(s) if k["state"] == "active"]) \
        == 1


def key_status_all(s):
    return domain_status(s)["keys"]


def test_corrupt_state_exits_65_without_dns_writes(env):
    s = env.config()
    b = env.bind
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")
    retired = key_status(s, "mail1")["retired"]
    # Make the revocation of mail1 due, so that only the corrupt state
    # stands between run --once and a DNS write.
    wait_until(lambda: time.time() >= retired + 4, 10,
               "mail1's retire_after to pass")
    names = [s.selector_name(x) for x in ("mail1", "mail2")]
    dns_before = [b.txt_rrset(n) for n in names]
    keys_before = snapshot_files(s.key_dir)
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))

    with open(s.state_file(), "rb") as f:
        data = f.read()
    with open(s.state_file(), "r+b") as f:
        f.truncate(len(data) // 2)

    for args in (["run", "--once"], ["rotate", "--domain", "example.test"]):
        r = run(s, *args)
        assert r.code == 65, r.describe()
        assert "example.test.state" in r.err, \
            "error does not name the state file: " + r.describe()
        assert [b.txt_rrset(n) for n in names] == dns_before, \
            "DNS changed with a corrupt state file"
        assert snapshot_files(s.key_dir) == keys_before
        assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
            tables
    assert signer_current(s)[0] == "mail2"


def test_lock_held_exits_75_naming_holder(env):
    s = env.config()
    path = os.path.join(s.state_dir, "example.test.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"pid 4242 (integration test)\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = run(s, "rotate", "--domain", "example.test")
        assert r.code == 75, r.describe()
        assert "4242" in r.err, "does not say who holds the lock: " + \
            r.describe()
        assert managed_record(env.bind, s, "mail1") is None
        assert not os.listdir(s.key_dir), "key made while locked"
    finally:
        os.close(fd)
    rotate_and_verify(env, s, "mail1")
