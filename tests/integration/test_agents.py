"""Several MTA hosts ([domain] hosts =) against a real PostgreSQL 15 and
BIND: three `dkimkeyd agent --host mxN` processes, each with its own
signer directory and key directory, and a scheduler.  The scheduler
declares a key active only once every agent reported serving it, dated by
the last host's switch; an agent stopped holds the rotation up (exit 75,
the old key stays published, `check` CRITICAL naming the host) until it
comes back.  Shared private keys travel sealed under kek_file; a tampered
sealed row fails authentication (65) and is never written or used.  Every
host's signing key verified with python3-dkim against BIND."""

import base64
import functools
import json
import os
import secrets
import signal
import subprocess
import time

from harness import (DKIMKEYD, REPO, dkim_sign_verify, files_signer_keys,
                     key_status, read_bytes, run, run_ok, wait_until)
from pg import Postgres, use_postgres

HOSTS = ("mx1", "mx2", "mx3")
PROCS = []


class Agent:
    """`dkimkeyd -c CONF agent --host NAME` in the background."""

    def __init__(self, host):
        self.host = host
        self.proc = None
        self.n = 0

    def start(self, binary=DKIMKEYD, crash=None):
        """crash: a crash point of binary (a `make crash` build)."""
        self.n += 1
        tag = os.path.join(self.host.dir, "agent%d" % self.n)
        self.out_path, self.err_path = tag + ".out", tag + ".err"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DKIMKEYD_") and k != "NOTIFY_SOCKET"}
        if crash is not None:
            env["DKIMKEYD_CRASH"] = crash
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.proc = subprocess.Popen(
                [binary, "-c", self.host.conf, "agent", "--host",
                 self.host.name], stdin=subprocess.DEVNULL, stdout=o,
                stderr=e, env=env)
        PROCS.append(self)
        return self

    def out(self):
        return (read_bytes(self.out_path) or b"").decode("utf-8", "replace")

    def err(self):
        return (read_bytes(self.err_path) or b"").decode("utf-8", "replace")

    def describe(self):
        return "agent %s (exit %s)\n--- stdout:\n%s--- stderr:\n%s" % (
            self.host.name, self.proc.poll(), self.out(), self.err())

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class Host:
    """One MTA host: its own configuration, key_dir and files signer."""

    def __init__(self, s, name):
        self.name = name
        self.dir = os.path.join(s.tmp, name)
        self.key_dir = os.path.join(self.dir, "keys")
        self.signer_dir = os.path.join(self.dir, "signer")
        self.reloaded = os.path.join(self.dir, "reloaded")
        for d in (self.dir, self.key_dir, os.path.join(self.dir, "state")):
            os.makedirs(d, mode=0o700, exist_ok=True)
        os.makedirs(self.signer_dir, mode=0o755, exist_ok=True)
        with open(s.conf) as f:
            text = f.read()
        # The same domains; this host's directories, no DNS credentials.
        text = text.replace("state_dir = %s" % s.state_dir,
                            "state_dir = %s/state" % self.dir)
        text = text.replace("key_dir = %s" % s.key_dir,
                            "key_dir = %s" % self.key_dir)
        text = text.replace("dir = %s" % s.signer_dir,
                            "dir = %s" % self.signer_dir)
        text = text.replace("/usr/bin/touch %s" % s.reloaded,
                            "/usr/bin/touch %s" % self.reloaded)
        text = text.replace("tsig_key_file = %s" % s.tsig_key_file,
                            "tsig_key_file = %s/absent.key" % self.dir)
        self.conf = os.path.join(self.dir, "dkimkeyd.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        self.agent = Agent(self)
        self.signer = s.signer

    def serves(self, domain):
        """(selector, keyfile) of the host's files signer index."""
        class _S:
            pass
        o = _S()
        o.signer_dir = self.signer_dir
        keys = files_signer_keys(o, domain)
        assert len(keys) <= 1, keys
        return keys[0] if keys else None


def with_fleet(agent_timeout="6s", start=True, per_host=False):
    """A scheduler configuration with hosts = mx1 mx2 mx3 on a started
    PostgreSQL, a KEK, and one Host (agent started unless start=False)
    per name."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(env):
            pg = Postgres().start().create_db()
            try:
                lines = ["hosts = %s" % " ".join(HOSTS)]
                if per_host:
                    lines.append("key_scope = per-host")
                s = env.config(signer="files", extra_domain_lines=lines,
                               selectors="{host}-a {host}-b" if per_host
                               else "mail1 mail2")
                use_postgres(s, pg)
                s.kek_file = os.path.join(s.tmp, "kek")
                fd = os.open(s.kek_file, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(base64.b64encode(secrets.token_bytes(32))
                            .decode() + "\n")
                with open(s.conf) as f:
                    text = f.read()
                text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\nkek_file = "
                                    "%s\nagent_timeout = %s\n" % (
                                        s.kek_file, agent_timeout), 1)
                with open(s.conf, "w") as f:
                    f.write(text)
                run_ok(s, "db", "init")
                s.hosts = {h: Host(s, h) for h in HOSTS}
                if start:
                    for h in s.hosts.values():
                        h.agent.start()
                return fn(env, pg, s)
            finally:
                for p in PROCS:
                    p.stop()
                del PROCS[:]
                pg.cleanup()
        return wrapper
    return deco


def verify_host(env, s, host, selector):
    """The host's signer serves selector with a key that signs mail
    python3-dkim verifies against BIND; returns its key file."""
    got = host.serves(s.domain)
    assert got is not None and got[0] == selector, \
        "%s serves %r, expected %s\n%s" % (host.name, got, selector,
                                          host.agent.describe())
    kf = got[1]
    assert os.stat(kf).st_mode & 0o077 == 0, "%s: mode %o" % (
        kf, os.stat(kf).st_mode & 0o777)
    ok, _ = dkim_sign_verify(env.bind, s.domain, selector, kf, log=env.log)
    assert ok, "mail signed on %s with %s does not verify" % (host.name, kf)
    return kf


def acks(pg, domain):
    return {r[0]: (r[1], int(r[2])) for r in pg.psql(
        "SELECT host, keys, floor(extract(epoch FROM acked_at))::bigint FROM "
        "dk_ack WHERE domain = '%s' AND code = 0" % domain)}


def key_id(s, selector):
    return key_status(s, selector)["key_id"]


@with_fleet()
def test_key_is_active_only_once_every_host_serves_it(env, pg, s):
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    assert "every host (3) serves it" in r.out, r.describe()
    kid = key_id(s, "mail1")
    files = set()
    for h in s.hosts.values():
        kf = verify_host(env, s, h, "mail1")
        files.add(open(kf, "rb").read())
        assert "serves mail1:%s event=served" % kid in h.agent.out(), \
            h.agent.describe()
    assert len(files) == 1, "hosts serve different keys in shared scope"
    # Acked by all three; active from the last host's switch.
    a = acks(pg, s.domain)
    assert set(a) == set(HOSTS), a
    assert all(v[0] == "mail1:" + kid for v in a.values()), a
    ks = key_status(s, "mail1")
    assert ks["state"] == "active", ks
    assert ks["active"] >= max(v[1] for v in a.values()), (ks, a)
    # The database holds the key sealed only.
    sealed = pg.psql("SELECT sealed FROM dk_key_sealed WHERE domain = '%s' "
                     "AND key_id = '%s'" % (s.domain, kid))
    assert len(sealed) == 1 and sealed[0][0].startswith("v1:"), sealed
    pem = open(os.path.join(s.key_dir, "%s.mail1.%s.pem" % (
        s.domain, kid))).read()
    body = "".join(pem.strip().splitlines()[1:-1])
    assert body[:40] not in sealed[0][0] and "PRIVATE" not in sealed[0][0]
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()

    # The next rotation: the old key retires when the last host switched.
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    kid2 = key_id(s, "mail2")
    for h in s.hosts.values():
        verify_host(env, s, h, "mail2")
        # The old private key is gone from every host.
        assert not os.path.exists(os.path.join(h.key_dir, "%s.mail1.%s.pem"
                                               % (s.domain, kid))), h.name
    old, new = key_status(s, "mail1"), key_status(s, "mail2")
    assert old["state"] == "retired" and new["state"] == "active", (old, new)
    assert old["retired"] == new["active"], (old, new)
    a = acks(pg, s.domain)
    assert all(v[0] == "mail2:" + kid2 for v in a.values()), a
    assert new["active"] >= max(v[1] for v in a.values()), (new, a)


@with_fleet(agent_timeout="4s")
def test_a_stopped_agent_holds_the_rotation_until_it_returns(env, pg, s):
    run_ok(s, "rotate", "--domain", s.domain)
    kid1 = key_id(s, "mail1")
    mx2 = s.hosts["mx2"]
    mx2.agent.kill()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    assert "host mx2" in r.err and "agent_timeout" in r.err, r.describe()
    # The old key stays active and published; mx2 still signs with it,
    # and its mail verifies.
    old, new = key_status(s, "mail1"), key_status(s, "mail2")
    assert old["state"] == "active" and old["key_id"] == kid1, old
    assert new["state"] == "visible", new
    verify_host(env, s, mx2, "mail1")
    for name in ("mx1", "mx3"):
        verify_host(env, s, s.hosts[name], "mail2")
    # Monitoring names the host.
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 2, r.describe()
    assert "mx2" in r.out and "CRITICAL" in r.out, r.describe()
    assert "mx1" not in r.out and "mx3" not in r.out, r.describe()
    r = run(s, "check", "--domain", s.domain, "--json")
    probs = json.dumps(json.loads(r.out))
    assert "host mx2" in probs, probs
    # A one-shot run says so too: 75.
    r = run(s, "run", "--once")
    assert r.code == 75 and "host mx2" in r.err, r.describe()
    assert key_status(s, "mail1")["state"] == "active"

    # The agent comes back (its first heartbeat sent): the rotation
    # completes.
    mx2.agent.start()
    wait_until(lambda: "running" in mx2.agent.out(), 30, "mx2's agent")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    for h in s.hosts.values():
        verify_host(env, s, h, "mail2")
    old, new = key_status(s, "mail1"), key_status(s, "mail2")
    assert old["state"] == "retired" and new["state"] == "active", (old, new)
    a = acks(pg, s.domain)
    # retire_after counts from the last host's switch: mx2's.
    assert old["retired"] >= a["mx2"][1], (old, a)
    wait_until(lambda: run(s, "check", "--domain", s.domain).code == 0, 20,
               "check to be OK again")


@with_fleet(agent_timeout="3s", start=False)
def test_a_tampered_sealed_key_fails_authentication_65(env, pg, s):
    # Nobody serves yet: the rotation waits out agent_timeout (75).
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    kid = key_id(s, "mail1")
    row = pg.psql("SELECT sealed FROM dk_key_sealed WHERE key_id = '%s'" %
                  kid)
    sealed = row[0][0]
    raw = bytearray(base64.b64decode(sealed[3:]))
    raw[len(raw) // 2] ^= 0x40
    pg.psql("UPDATE dk_key_sealed SET sealed = '%s' WHERE key_id = '%s'" % (
        "v1:" + base64.b64encode(bytes(raw)).decode(), kid))
    mx1 = s.hosts["mx1"]
    r = run(mx1.conf, "agent", "--host", "mx1", "--once")
    assert r.code == 65, r.describe()
    assert s.domain in r.err and "fails authentication" in r.err, \
        r.describe()
    # Nothing written, nothing activated on the host.
    assert os.listdir(mx1.key_dir) == [], os.listdir(mx1.key_dir)
    assert mx1.serves(s.domain) is None
    assert not os.path.exists(mx1.reloaded)
    # The scheduler refuses the row too, naming the domain.
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 65, r.describe()
    assert s.domain in r.err and "fails authentication" in r.err, \
        r.describe()
    assert key_status(s, "mail1")["state"] == "visible"
    # check: CRITICAL, naming the host's error.
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 2 and "mx1" in r.out, r.describe()


@with_fleet(start=False)
def test_configtest_host_checks_an_agents_configuration(env, pg, s):
    mx1 = s.hosts["mx1"]
    # An agent's host has no DNS credentials: configtest as a scheduler
    # wants them, configtest --host as the agent does not.
    r = run(mx1.conf, "configtest")
    assert r.code == 78 and "absent.key" in r.err, r.describe()
    r = run(mx1.conf, "configtest", "--host", "mx1")
    assert r.code == 0 and r.err == "", r.describe()
    r = run(mx1.conf, "configtest", "--host", "mx9")
    assert r.code == 0 and "no [domain] names host mx9" in r.err, \
        r.describe()
    # Its secrets are still checked.
    os.chmod(s.kek_file, 0o644)
    r = run(mx1.conf, "configtest", "--host", "mx1")
    assert r.code == 77 and s.kek_file in r.err, r.describe()
    os.chmod(s.kek_file, 0o600)
    r = run(s, "configtest", "--host", "mx1", "--once")
    assert r.code == 64, r.describe()


@with_fleet(start=False)
def test_agent_refuses_a_second_agent_for_the_same_host(env, pg, s):
    mx1 = s.hosts["mx1"]
    mx1.agent.start()
    wait_until(lambda: pg.psql("SELECT count(*) FROM dk_agent WHERE host = "
                               "'mx1'") == [["1"]], 20, "mx1's heartbeat")
    r = run(mx1.conf, "agent", "--host", "mx1", "--once")
    assert r.code == 75 and "one agent per host" in r.err, r.describe()
    # Stopped (SIGTERM), it gives the host up: the next starts at once.
    mx1.agent.stop()
    assert mx1.agent.proc.returncode == 0, mx1.agent.describe()
    r = run(mx1.conf, "agent", "--host", "mx1", "--once")
    assert r.code == 0 and r.err == "", r.describe()
    mx1.agent.start()
    wait_until(lambda: "running" in mx1.agent.out(), 20, "mx1's agent")
    assert mx1.agent.proc.poll() is None, mx1.agent.describe()
    r = run(mx1.conf, "agent", "--host", "MX 1")
    assert r.code == 64, r.describe()
    r = run(mx1.conf, "agent")
    assert r.code == 64 and "--host" in r.err, r.describe()


@with_fleet(start=False)
def test_db_init_upgrades_a_version_1_schema_keeping_the_state(env, pg, s):
    # A database as version 1 left it, with a domain's state in it.
    pg.psql("DROP TABLE dk_key_sealed, dk_assign, dk_ack, dk_agent, "
            "dk_keyreq")
    pg.psql("DELETE FROM dk_schema_version WHERE version > 1")
    pg.psql("INSERT INTO dk_state (domain, version, state, updated_by) "
            "VALUES ('kept.example', 7, 'x', 'test')")
    r = run(s, "agent", "--host", "mx1", "--once")
    assert r.code == 78 and "db init" in r.err, r.describe()
    out = run_ok(s, "db", "init")
    assert "from version 1 to 3" in out, out
    assert pg.psql("SELECT version, state FROM dk_state WHERE domain = "
                   "'kept.example'") == [["7", "x"]]
    assert "up to date (version 3)" in run_ok(s, "db", "init")


@with_fleet(per_host=True)
def test_per_host_keys_never_leave_their_host(env, pg, s):
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe() + "".join(
        h.agent.describe() for h in s.hosts.values())
    ids = {}
    for name, h in s.hosts.items():
        sel = name + "-a"
        kf = verify_host(env, s, h, sel)
        ids[name] = key_status(s, sel)["key_id"]
        assert ks_state(s, sel) == "active"
        assert "made a rsa-2048 key for %s" % sel in h.agent.out(), \
            h.agent.describe()
        # The private key is on its host, nowhere else.
        mine = "%s.%s.%s.pem" % (s.domain, sel, ids[name])
        assert os.path.exists(os.path.join(h.key_dir, mine))
        for other in s.hosts.values():
            if other is not h:
                assert mine not in os.listdir(other.key_dir), other.name
        assert open(kf, "rb").read() == open(os.path.join(
            h.key_dir, mine), "rb").read()
    assert len(set(ids.values())) == 3, ids
    assert os.listdir(s.key_dir) == [], os.listdir(s.key_dir)
    assert pg.psql("SELECT count(*) FROM dk_key_sealed") == [["0"]]
    # Each host acked its own key; check is OK.
    a = acks(pg, s.domain)
    assert {h: v[0] for h, v in a.items()} == {
        h: "%s-a:%s" % (h, ids[h]) for h in HOSTS}, a
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()

    # Next rotation: every host to its -b, its old key destroyed there.
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    for name, h in s.hosts.items():
        verify_host(env, s, h, name + "-b")
        assert ks_state(s, name + "-a") == "retired"
        assert not os.path.exists(os.path.join(h.key_dir, "%s.%s-a.%s.pem"
                                               % (s.domain, name,
                                                  ids[name])))


@with_fleet(per_host=True, start=False)
def test_per_host_rotation_waits_for_a_host_to_make_its_key(env, pg, s):
    for name in ("mx1", "mx3"):
        s.hosts[name].agent.start()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    assert "host mx2" in r.err and "has not made its key" in r.err, \
        r.describe()
    # Nothing of mx2's reached DNS; nobody was switched.
    assert env.bind.query_txt("mx2-a._domainkey." + s.domain) == []
    for h in s.hosts.values():
        assert h.serves(s.domain) is None, h.name
    s.hosts["mx2"].agent.start()
    wait_until(lambda: pg.psql("SELECT count(*) FROM dk_agent WHERE host = "
                               "'mx2'") == [["1"]], 30, "mx2's heartbeat")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    for name, h in s.hosts.items():
        verify_host(env, s, h, name + "-a")


@with_fleet(per_host=True, agent_timeout="60s", start=False)
def test_per_host_damaged_key_journal_is_dropped(env, pg, s):
    """A key journal an agent finds damaged (here one long word where the
    key id belongs) is dropped and a fresh key made: it never overruns
    the agent's buffers (the sanitizer build aborted on this) nor stops
    the agent."""
    for name in ("mx1", "mx3"):
        s.hosts[name].agent.start()
    mx2 = s.hosts["mx2"]
    journal = os.path.join(mx2.key_dir, "%s.mx2-a.keyreq" % s.domain)
    with open(journal, "w") as f:
        f.write("1 %s\n" % ("z" * 64))
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    mx2.agent.start()
    wait_until(lambda: pg.psql("SELECT count(*) FROM dk_agent WHERE host = "
                               "'mx2'") == [["1"]], 30, "mx2's heartbeat")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    assert mx2.agent.proc.poll() is None, mx2.agent.describe()
    assert "AddressSanitizer" not in mx2.agent.err(), mx2.agent.describe()
    verify_host(env, s, mx2, "mx2-a")
    assert not os.path.exists(journal), os.listdir(mx2.key_dir)


CRASH_BIN = os.environ.get("DKIMKEYD_CRASH_BIN",
                           os.path.join(REPO, "build-crash", "dkimkeyd"))


def pems(h, selector):
    """The key files of selector in host h's key_dir."""
    return sorted(f for f in os.listdir(h.key_dir)
                  if ".%s." % selector in f and f.endswith(".pem"))


@with_fleet(per_host=True, agent_timeout="60s", start=False)
def test_per_host_agent_killed_after_saving_its_key_leaves_no_orphan(
        env, pg, s):
    if not os.access(CRASH_BIN, os.X_OK):
        raise AssertionError("%s: no crash build (make crash)" % CRASH_BIN)
    for name in ("mx1", "mx3"):
        s.hosts[name].agent.start()
    mx2 = s.hosts["mx2"]
    # Killed right after it saved its key, before it reported it.
    mx2.agent.start(binary=CRASH_BIN, crash="agent-key-saved")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    mx2.agent.proc.wait(timeout=120)
    assert mx2.agent.proc.returncode == -signal.SIGKILL, \
        mx2.agent.describe()
    left = pems(mx2, "mx2-a")
    assert len(left) == 1, left
    assert pg.psql("SELECT count(*) FROM dk_keyreq WHERE host = 'mx2' AND "
                   "key_id IS NULL") == [["1"]]
    # Restarted: the key it saved is the one it reports, no second one.
    mx2.agent.start()
    wait_until(lambda: "reuses the key it made for mx2-a" in
               mx2.agent.out(), 60, "mx2 reusing its key")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    verify_host(env, s, mx2, "mx2-a")
    kid = key_status(s, "mx2-a")["key_id"]
    assert pems(mx2, "mx2-a") == left == [
        "%s.mx2-a.%s.pem" % (s.domain, kid)], (left, kid)
    assert [f for f in os.listdir(mx2.key_dir) if f.endswith(".keyreq")] \
        == [], os.listdir(mx2.key_dir)
    # Two rotations more: -b, then -a again; the answered requests of the
    # first generation are gone, one row per selector stays.
    for sel in ("b", "a"):
        # -a is free again once its retired key is removed.
        def rotated():
            r = run(s, "rotate", "--domain", s.domain)
            assert r.code in (0, 75), r.describe()
            return r.code == 0
        wait_until(rotated, 60, "the rotation to -%s" % sel, interval=1)
        for name, h in s.hosts.items():
            verify_host(env, s, h, "%s-%s" % (name, sel))
    rows = pg.psql("SELECT selector, count(*) FROM dk_keyreq GROUP BY "
                   "selector ORDER BY selector")
    assert rows == [[h + x, "1"] for h in HOSTS for x in ("-a", "-b")], rows
    for h in s.hosts.values():
        assert len(pems(h, h.name + "-a")) == 1, os.listdir(h.key_dir)


@with_fleet(per_host=True, agent_timeout="8s", start=False)
def test_per_host_check_names_a_host_that_cannot_make_its_key(env, pg, s):
    # mx2's configuration lost the domain: it is asked, and refuses.
    mx2 = s.hosts["mx2"]
    with open(mx2.conf) as f:
        text = f.read()
    with open(mx2.conf, "w") as f:
        f.write(text.replace("[domain %s]" % s.domain, "[domain other.test]"))
    for h in s.hosts.values():
        h.agent.start()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "host mx2 cannot make its key for mx2-a" in \
        r.err, r.describe() + mx2.agent.describe()
    assert env.bind.query_txt("mx1-a._domainkey." + s.domain) == []
    # check names the host: CRITICAL once agent_timeout has passed.
    wait_until(lambda: run(s, "check", "--domain", s.domain).code == 2, 30,
               "check CRITICAL")
    r = run(s, "check", "--domain", s.domain)
    assert "host mx2 cannot make its key for mx2-a" in r.out and \
        "no [domain %s]" % s.domain in r.out, r.describe()
    assert "host mx1" not in r.out and "host mx3" not in r.out, r.describe()
    # Fixed and restarted, mx2 makes it; check is OK again.
    mx2.agent.stop()
    with open(mx2.conf, "w") as f:
        f.write(text)
    mx2.agent.start()
    # The agent answers the request again when it starts.
    wait_until(lambda: pg.psql("SELECT count(*) FROM dk_keyreq WHERE host = "
                               "'mx2' AND key_id IS NOT NULL") == [["1"]],
               60, "mx2's key:\n" + mx2.agent.describe())
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe()
    for name, h in s.hosts.items():
        verify_host(env, s, h, name + "-a")
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()


def public_key(bits):
    """(key id, p= base64) of a fresh RSA key of bits, as dkimkeyd names
    it: the first 16 hex digits of SHA-256 over the DER public key."""
    import hashlib
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                          "-pkeyopt", "rsa_keygen_bits:%d" % bits],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"],
                         input=pem, check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()[:16], \
        base64.b64encode(der).decode()


# Keys are made one host after another, each in seconds on a loaded
# machine: agent_timeout leaves room for that.
@with_fleet(per_host=True, agent_timeout="8s", start=False)
def test_per_host_forged_public_key_is_refused_65(env, pg, s):
    # No agent runs: the scheduler's request for mx1-a stays unanswered.
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75 and "host mx1" in r.err, r.describe()
    assert pg.psql("SELECT host, selector FROM dk_keyreq WHERE key_id IS "
                   "NULL") == [["mx1", "mx1-a"]]
    owner = "mx1-a._domainkey." + s.domain
    good_id, good_pub = public_key(2048)
    weak_id, weak_pub = public_key(1024)
    forged = [
        # A key id that is not the public key's.
        ("0123456789abcdef", good_pub, "is key %s, not 0123456789abcdef"
         % good_id),
        # A key weaker than the rsa-2048 asked for.
        (weak_id, weak_pub, "of 1024 bits, not rsa-2048"),
        # Not a public key at all.
        ("0123456789abcdef", base64.b64encode(b"junk").decode(), "mx1-a"),
    ]
    for kid, pub, why in forged:
        pg.psql("UPDATE dk_keyreq SET key_id = '%s', pubkey = '%s', "
                "made_at = now() WHERE host = 'mx1'" % (kid, pub))
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 65 and why in r.err and \
            "not publishing or activating it" in r.err, r.describe()
        # Nothing entered the state or DNS.
        st = run_ok(s, "status", "--domain", s.domain, "--json")
        assert kid not in st, st
        assert env.bind.query_txt(owner) == []
    # The forged answer removed, the host is asked again and makes it.
    pg.psql("DELETE FROM dk_keyreq WHERE host = 'mx1'")
    for h in s.hosts.values():
        h.agent.start()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe() + "".join(
        h.agent.describe() for h in s.hosts.values())
    for name, h in s.hosts.items():
        verify_host(env, s, h, name + "-a")
    assert key_id(s, "mx1-a") not in (good_id, weak_id)


# -- the restricted roles of contrib/postgresql/roles.sql --------------------

ROLES_SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "..", "contrib", "postgresql", "roles.sql")


def roles_sql(pg, user, *assignments):
    r = subprocess.run(
        ["/usr/bin/psql", "-h", pg.sock, "-p", str(pg.port), "-U", user,
         "-d", "dkimkeyd", "-f", ROLES_SQL] + [
            a for kv in assignments for a in ("-v", kv)],
        capture_output=True, text=True, timeout=60)
    return r


def as_role(pg, role, sql):
    return subprocess.run(
        ["/usr/bin/psql", "-h", pg.sock, "-p", str(pg.port), "-U", role,
         "-d", "dkimkeyd", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
        capture_output=True, text=True, timeout=60)


def restricted_roles(pg, s):
    """The scheduler as roles.sql's restricted role, every host's agent as
    its own role (step agent), each with its own conninfo_file."""
    def conninfo(path, role, pw):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pg.conninfo().replace("user=dkimkeyd ", "user=%s " % role)
                    .replace(pg.password, pw) + "\n")

    pw = "r" + pg.password
    roles = ["dkimkeyd_run"] + ["dkimkeyd_" + h for h in HOSTS]
    for role in roles:
        pg.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, pw),
                db="postgres")
    r = roles_sql(pg, "dkimkeyd", "owner=dkimkeyd", "sched=dkimkeyd_run",
                  "step=grants")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stdout + r.stderr
    # Without host (or agent), step agent stops, granting nothing.
    r = roles_sql(pg, "dkimkeyd", "agent=dkimkeyd_mx1", "step=agent")
    assert r.returncode != 0 and "needs -v host" in r.stderr, \
        r.stdout + r.stderr
    for h in HOSTS:
        r = roles_sql(pg, "dkimkeyd", "owner=dkimkeyd", "agent=dkimkeyd_" + h,
                      "host=" + h, "step=agent")
        assert r.returncode == 0 and "ERROR" not in r.stderr, \
            r.stdout + r.stderr
    conninfo(s.conninfo_file, "dkimkeyd_run", pw)
    for name, h in s.hosts.items():
        path = os.path.join(h.dir, "conninfo")
        conninfo(path, "dkimkeyd_" + name, pw)
        with open(h.conf) as f:
            text = f.read()
        with open(h.conf, "w") as f:
            f.write(text.replace("conninfo_file = %s" % s.conninfo_file,
                                 "conninfo_file = %s" % path))
    # A second run of both steps (after an upgrade) is fine.
    r = roles_sql(pg, "dkimkeyd", "owner=dkimkeyd", "sched=dkimkeyd_run",
                  "step=grants")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stdout + r.stderr
    r = roles_sql(pg, "dkimkeyd", "agent=dkimkeyd_mx1", "host=mx1",
                  "step=agent")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stdout + r.stderr


def assert_agent_confined(pg, s, host="mx1", other="mx2"):
    role = "dkimkeyd_" + host
    # The agents are connected as their own roles.
    assert pg.psql("SELECT string_agg(DISTINCT usename::text, ' ' ORDER BY "
                   "usename::text) FROM pg_stat_activity WHERE usename::text "
                   "LIKE 'dkimkeyd%'") == [[" ".join(
                       "dkimkeyd_" + h for h in HOSTS)]]
    # Another host's rows: invisible, and not writable.
    for t in ("dk_assign", "dk_ack", "dk_agent", "dk_keyreq"):
        r = as_role(pg, role, "SELECT count(*) FROM %s WHERE host = '%s'"
                    % (t, other))
        assert r.returncode == 0 and r.stdout.strip() == "0", (t, r.stderr)
    r = as_role(pg, role, "UPDATE dk_ack SET code = 99 WHERE host = '%s'"
                % other)
    assert r.returncode == 0, r.stderr      # no row of its own matched
    for sql in ("INSERT INTO dk_ack (domain, host, keys) VALUES "
                "('%s', '%s', 'x:y')" % (s.domain, other),
                "INSERT INTO dk_agent (host, holder) VALUES ('%s', 'x')"
                % other,
                "UPDATE dk_ack SET host = '%s' WHERE host = '%s'"
                % (other, host)):
        r = as_role(pg, role, sql)
        assert r.returncode != 0 and "row-level security" in r.stderr, \
            (sql, r.stdout, r.stderr)
    # Neither the state, the leases nor assignments are its to write.
    for sql in ("SELECT count(*) FROM dk_state", "DELETE FROM dk_lease",
                "UPDATE dk_assign SET keys = 'x'",
                "INSERT INTO dk_key_sealed (domain, selector, key_id, "
                "sealed) VALUES ('x', 'y', 'z', 'w')",
                "DELETE FROM dk_keyreq"):
        r = as_role(pg, role, sql)
        assert r.returncode != 0 and "permission denied" in r.stderr, \
            (sql, r.stdout, r.stderr)
    # The other hosts' acks are where they were.
    assert pg.psql("SELECT count(*) FROM dk_ack WHERE host = '%s' AND "
                   "code = 0" % other) == [["1"]]


@with_fleet(start=False)
def test_agents_and_scheduler_as_the_restricted_roles_of_roles_sql(env, pg,
                                                                   s):
    restricted_roles(pg, s)
    for h in s.hosts.values():
        h.agent.start()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe() + "".join(
        h.agent.describe() for h in s.hosts.values())
    for h in s.hosts.values():
        verify_host(env, s, h, "mail1")
    assert_agent_confined(pg, s)
    # Sealed keys: only of the domains assigned to the host.
    pg.psql("INSERT INTO dk_key_sealed (domain, selector, key_id, sealed) "
            "VALUES ('other.example', 'mail1', '00', 'x')")
    r = as_role(pg, "dkimkeyd_mx1", "SELECT DISTINCT domain FROM "
                "dk_key_sealed")
    assert r.returncode == 0 and r.stdout.split() == [s.domain], \
        (r.stdout, r.stderr)


@with_fleet(per_host=True, start=False)
def test_per_host_agents_as_the_restricted_roles_of_roles_sql(env, pg, s):
    restricted_roles(pg, s)
    for h in s.hosts.values():
        h.agent.start()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 0 and r.err == "", r.describe() + "".join(
        h.agent.describe() for h in s.hosts.values())
    for name, h in s.hosts.items():
        verify_host(env, s, h, name + "-a")
    assert_agent_confined(pg, s)
    # A host cannot answer another host's key request.
    r = as_role(pg, "dkimkeyd_mx1", "UPDATE dk_keyreq SET pubkey = 'x' "
                "WHERE host = 'mx2'")
    assert r.returncode == 0, r.stderr
    assert pg.psql("SELECT count(*) FROM dk_keyreq WHERE pubkey = 'x'") == \
        [["0"]]


def ks_state(s, selector):
    return key_status(s, selector)["state"]
