"""The powerdns provider against a real pdns_server (sqlite3 backend, HTTP
API on loopback): first and second rotation, retirement, revocation and
removal; the gate probes pdns itself; python3-dkim verifies each key
against it; a record dkimkeyd did not write is left alone; a refused API
key exits 69; the API key appears in no output, argv or environment; bad
section keys are refused with file:line."""

import os
import re
import subprocess
import time

import harness
from harness import (FOREIGN_RECORD, FOREIGN_SELECTOR, dkim_roundtrip,
                     is_revoked, key_status, managed_record,
                     read_bytes, rotate_and_verify, run, run_ok,
                     signer_current, snapshot_files, wait_until)
import pdns
from pdns import PdnsEnv

# The HTTP providers' crash points around each API write.
API_WRITE_POINTS = ("before-api-write", "after-api-write")


def _setup(env, **kw):
    p = pdns.start(env)
    return PdnsEnv(env, p), pdns.write_config(env, p, **kw)


def _check_foreign(penv):
    name = "%s._domainkey.example.test" % FOREIGN_SELECTOR
    have = penv.bind.query_txt(name)
    assert have == [FOREIGN_RECORD], \
        "foreign record %s on pdns changed: %r" % (name, have)


def _roundtrip(penv, s):
    assert dkim_roundtrip(s, penv.bind, s.domain, log=penv.log), \
        "message signed with the active key does not verify against pdns"


def test_powerdns_rotation_lifecycle(env):
    k, s = _setup(env)
    b = k.bind

    sel1, kf1 = rotate_and_verify(k, s, "mail1")
    _roundtrip(k, s)
    # What the API holds: one quoted record, strings of <= 255 octets.
    ttl, content = b.rrset(s.selector_name("mail1"))
    assert ttl == 2 and len(content) == 1, (ttl, content)
    assert content[0].startswith('"v=DKIM1'), content
    assert all(len(x) <= 255 for x in re.findall(r'"([^"]*)"', content[0]))

    rec1 = managed_record(b, s, "mail1")
    sel2, kf2 = rotate_and_verify(k, s, "mail2")
    assert kf2 != kf1
    assert managed_record(b, s, "mail1") == rec1, \
        "retired key's record changed on pdns (invariant 2)"
    assert key_status(s, "mail1")["state"] == "retired"
    _roundtrip(k, s)

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(b, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "run --once to publish mail1 revoked on pdns",
               interval=0.5)
    assert key_status(s, "mail1")["state"] == "revoked"
    assert signer_current(s) == (sel2, kf2)

    def removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None
    wait_until(removed, 20, "run --once to delete mail1 on pdns",
               interval=0.5)
    assert b.rrset(s.selector_name("mail1")) == (None, [])
    assert not os.path.exists(kf1), "private key %s not destroyed" % kf1
    assert key_status(s, "mail1")["state"] == "removed"
    _roundtrip(k, s)

    # Third rotation reuses mail1 (removed, TTL passed), RSA record again.
    time.sleep(s.ttl + 1)
    rotate_and_verify(k, s, "mail1")
    _roundtrip(k, s)
    _check_foreign(k)
    r = _check(s)
    assert r.code == 0, r.describe()


def _check(s):
    return run(s, "check", "--domain", s.domain)


def test_powerdns_zone_found_from_the_api(env):
    k, s = _setup(env, zone=False)
    rotate_and_verify(k, s, "mail1")
    _roundtrip(k, s)
    _check_foreign(k)


def test_powerdns_leaves_a_foreign_record_alone(env):
    k, s = _setup(env)
    foreign = ("v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALz"
               "SOMEONEELSExxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxwIDAQAB")
    k.bind.set_txt(s.selector_name("mail1"), foreign)
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "mail1._domainkey.example.test" in r.err and \
        "did not write" in r.err, r.describe()
    assert k.bind.query_txt(s.selector_name("mail1")) == [foreign], \
        "the foreign record was changed"
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed: something was activated"
    assert not os.path.exists(s.reloaded), "signer reloaded"
    _check_foreign(k)


def test_powerdns_wrong_token_exits_69(env):
    k, s = _setup(env, token="not-the-api-key")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "powerdns" in r.err and "401" in r.err, r.describe()
    assert "not-the-api-key" not in r.err + r.out, "token in output"
    assert managed_record(k.bind, s, "mail1") is None
    assert not os.path.exists(s.reloaded), "signer reloaded"


def test_powerdns_token_file_mode_exits_77(env):
    k, s = _setup(env)
    os.chmod(s.token_file, 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77, r.describe()
    assert s.token_file in r.err and "chmod" in r.err, r.describe()
    assert k.bind.api_key not in r.err + r.out
    os.chmod(s.token_file, 0o640)
    rotate_and_verify(k, s, "mail1")


def test_powerdns_token_file_symlink_and_fifo_refused(env):
    k, s = _setup(env)
    real = s.token_file + ".real"
    os.rename(s.token_file, real)
    os.symlink(real, s.token_file)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77 and "symbolic link" in r.err, r.describe()
    os.unlink(s.token_file)
    os.mkfifo(s.token_file, 0o600)
    r = run(s, "rotate", "--domain", s.domain, timeout=20)
    assert r.code == 78 and "not a regular file" in r.err, r.describe()
    assert k.bind.api_key not in r.err + r.out
    assert managed_record(k.bind, s, "mail1") is None


def test_powerdns_bad_section_keys_exit_78(env):
    k, s = _setup(env)
    with open(s.conf) as f:
        good = f.read()
    bad = [("api_url = %s" % k.bind.api_url(), "api_url = ftp://x",
            "api_url"),
           ("timeout = 3s", "timeout = 3s\nmax_requests_per_second = 0",
            "max_requests_per_second"),
           ("timeout = 3s", "timeout = 3s\nserver_id = a/b", "server_id"),
           ("timeout = 3s", "timeout = 3s\nca_file = relative.pem",
            "ca_file"),
           ("timeout = 3s", "timeout = 3s\nbogus = 1", "bogus"),
           ("timeout = 3s", "timeout = never", "timeout")]
    for old, new, word in bad:
        text = good.replace(old, new, 1)
        harness.Bind._write(s.conf, text, 0o644)
        line = text.splitlines().index(new.splitlines()[-1]) + 1
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 78, r.describe()
        assert "%s:%d:" % (s.conf, line) in r.err and word in r.err, \
            r.describe()
    harness.Bind._write(s.conf, good.replace(
        "token_file = %s\n" % s.token_file, ""), 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "token_file" in r.err, r.describe()


def _proc_text(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_powerdns_api_key_never_leaks(env):
    """The API key appears in no output, log, state file, argv or
    environment of dkimkeyd or of the processes it starts."""
    k, s = _setup(env)
    secret = k.bind.api_key.encode()
    rotate_and_verify(k, s, "mail1")
    outs = []
    # The daemon, caught while running: its argv and environment, and
    # those of its children.
    metrics = os.path.join(env.tmp, "metrics.prom")
    p = subprocess.Popen([harness.DKIMKEYD, "-c", s.conf, "run"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    seen = []
    try:
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            pids = [p.pid]
            for d in os.listdir("/proc"):
                if d.isdigit():
                    st = _proc_text(int(d), "stat").split(b") ", 1)
                    if len(st) == 2 and \
                            st[1].split()[1] == str(p.pid).encode():
                        pids.append(int(d))
            for pid in pids:
                for what in ("cmdline", "environ"):
                    seen.append(_proc_text(pid, what))
            time.sleep(0.2)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    outs += [out, err]
    for args in (("rotate", "--domain", s.domain), ("status", "--json"),
                 ("check", "--domain", s.domain), ("check", "-v"),
                 ("run", "--once")):
        r = run(s, *args)
        outs += [r.out.encode(), r.err.encode()]
    # A refused token and a bad mode: the messages name the file only.
    os.chmod(s.token_file, 0o604)
    r = run(s, "rotate", "--domain", s.domain)
    outs += [r.out.encode(), r.err.encode()]
    os.chmod(s.token_file, 0o600)
    for path, data in snapshot_files(s.state_dir, env.tmp).items():
        if os.path.abspath(path) == os.path.abspath(s.token_file):
            continue
        outs.append(data if isinstance(data, bytes) else b"")
    assert seen, "daemon's /proc entries never read"
    for i, blob in enumerate(outs + seen):
        assert secret not in blob, "API key found in output #%d" % i
    if os.path.exists(metrics):
        assert secret not in read_bytes(metrics)


def test_powerdns_unreachable_api_exits_75(env):
    k, s = _setup(env)
    port = harness.free_port()
    with open(s.conf) as f:
        text = f.read()
    harness.Bind._write(s.conf, text.replace(
        k.bind.api_url(), "http://127.0.0.1:%d" % port), 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    assert "powerdns" in r.err, r.describe()
    assert managed_record(k.bind, s, "mail1") is None



def test_powerdns_crash_at_every_point_and_occurrence(env):
    """The kill-at-every-point suite of test_crash, with the records on
    pdns through the powerdns provider, and kills around every API write
    too (after the read, before the PATCH; after the PATCH's answer,
    before the commit): the same invariants after every kill and rerun
    (one TXT RR per selector, nothing activated before pdns serves it,
    a rerun finishes the work), a signer in the loop verifying against
    pdns."""
    import test_crash
    p = pdns.start(env)
    p.key_text = ""     # no TSIG: write_conf's key file stays unused

    class Shim:
        tmp = env.tmp
        bind = p
        log = env.log

    token = os.path.join(env.tmp, "pdns.token")
    harness.Bind._write(token, p.api_key + "\n", 0o600)
    orig = test_crash.write_conf

    def write_conf(e, flows, **kw):
        conf = orig(e, flows, **kw)
        with open(conf) as f:
            lines = f.read().splitlines()
        i = lines.index("[provider primary]")
        j = lines.index("", i)
        lines[i:j] = ["[provider primary]", "type = powerdns",
                      "api_url = %s" % p.api_url(),
                      "token_file = %s" % token,
                      "zone = %s" % p.zones[0],
                      "probe_servers = %s" % p.addr(),
                      "timeout = 5s"]
        harness.Bind._write(conf, "\n".join(lines) + "\n", 0o644)
        return conf

    # pdns's sqlite backend answers concurrent writes with "database
    # is locked" (HTTP 500): fewer domains at a time than for BIND.
    workers = test_crash.WORKERS
    test_crash.write_conf = write_conf
    test_crash.WORKERS = 3
    try:
        test_crash.every_point(Shim(), test_crash.Flow, "p",
                               test_crash.POINTS + API_WRITE_POINTS)
    finally:
        test_crash.write_conf = orig
        test_crash.WORKERS = workers
    _check_foreign(PdnsEnv(env, p))
