"""backend = postgresql against a real PostgreSQL 15 (tests/integration/pg.py):
the schema's migrations, import and export, a rotation verified with
python3-dkim, two schedulers on one database (no step twice: UPDATEs per
record counted in BIND's log), a scheduler killed mid-rotation and taken
over after its leases expire, the database restarted mid-rotation, a
commit on a stale version and one after the lease was lost, and the
conninfo file's mode, and status naming the lease holder."""

import functools
import json
import os
import re
import signal
import subprocess
import time

from harness import (DKIMKEYD, dkim_roundtrip, read_bytes, run, run_ok,
                     rotate_and_verify, wait_until)
from pg import Postgres, use_postgres

CRASH_BIN = os.environ.get("DKIMKEYD_CRASH_BIN", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build-crash",
    "dkimkeyd"))

PROCS = []


# -- helpers ----------------------------------------------------------------

class Sched:
    """`dkimkeyd -c CONF ARGS` in the background (stopped by PID)."""

    def __init__(self, setup, *args, binary=DKIMKEYD, extra_env=None,
                 tag=None):
        tag = tag or "s%d" % len(PROCS)
        self.out_path = os.path.join(setup.tmp, "%s.out" % tag)
        self.err_path = os.path.join(setup.tmp, "%s.err" % tag)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DKIMKEYD_CRASH") and
               k != "DKIMKEYD_PAUSE" and k != "NOTIFY_SOCKET"}
        env.update(extra_env or {})
        self.args = [binary, "-c", setup.conf] + list(args)
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=o, stderr=e, env=env)
        self.pid = self.proc.pid
        PROCS.append(self)

    def out(self):
        return (read_bytes(self.out_path) or b"").decode("utf-8", "replace")

    def err(self):
        return (read_bytes(self.err_path) or b"").decode("utf-8", "replace")

    def describe(self):
        return "`%s` (pid %d, exit %s)\n--- stdout:\n%s--- stderr:\n%s" % (
            " ".join(self.args), self.pid, self.proc.poll(), self.out(),
            self.err())

    def stopped(self):
        """In the stopped state (SIGSTOP by DKIMKEYD_PAUSE)."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "T"
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


def with_pg(fn):
    """Give the test a started PostgreSQL with role and database dkimkeyd;
    stop it and every background dkimkeyd afterwards."""
    @functools.wraps(fn)
    def wrapper(env):
        pg = Postgres().start().create_db()
        try:
            return fn(env, pg)
        finally:
            for p in PROCS:
                p.stop()
            del PROCS[:]
            pg.cleanup()
    return wrapper


def names(n):
    return ["d%02d.example.test" % i for i in range(n)]


def many_domains(env, pg, n, lease_time="60s", rotate=True):
    """n domains below example.test on one BIND, backend = postgresql."""
    doms = names(n)
    extra = ["rotate_every = 1h"] if rotate else []
    s = env.config(domain=doms[0], extra_domain_lines=extra)
    with open(s.conf) as f:
        text = f.read()
    block = text[text.index("[domain %s]" % doms[0]):]
    for d in doms[1:]:
        text += "\n" + block.replace("[domain %s]" % doms[0],
                                     "[domain %s]" % d)
    with open(s.conf, "w") as f:
        f.write(text)
    use_postgres(s, pg, lease_time=lease_time)
    run_ok(s, "db", "init")
    s.domains = doms
    return s


def adds_per_record(bind):
    """{owner: how many RRs an UPDATE added there} from BIND's log."""
    with open(bind.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    counts = {}
    for m in re.finditer(r"updating zone '[^']*': adding an RR at '([^']*)'",
                         log):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def active_everywhere(setup):
    r = run(setup, "status", "--json")
    if r.code != 0:
        return False
    doms = json.loads(r.out)["domains"]
    return len(doms) == len(setup.domains) and all(
        any(k["state"] == "active" for k in d["keys"]) for d in doms)


def state_row(pg, domain):
    rows = pg.psql("SELECT version, state FROM dk_state WHERE domain = '%s'"
                   % domain)
    return (int(rows[0][0]), rows[0][1]) if rows else (0, None)


def wait_stopped(proc, deadline=60):
    wait_until(lambda: proc.stopped() or proc.proc.poll() is not None,
               deadline, "the paused dkimkeyd to stop itself")
    assert proc.stopped(), "exited instead of pausing: " + proc.describe()


def paused(setup, point, *command):
    """command run by the crash-point build as scheduler "a", stopped
    (SIGSTOP) at point until the test sends SIGCONT."""
    a = Sched(setup, *command, binary=CRASH_BIN, tag="a",
              extra_env={"DKIMKEYD_PAUSE": point})
    wait_stopped(a)
    return a


def check_one_add_each(env, setup):
    adds = adds_per_record(env.bind)
    for d in setup.domains:
        owner = "mail1._domainkey." + d
        assert adds.get(owner) == 1, \
            "%s: %s UPDATE additions (expected exactly 1): %r" % (
                owner, adds.get(owner), adds)


# -- schema, import, export ------------------------------------------------

@with_pg
def test_db_init_creates_the_schema_and_is_idempotent(env, pg):
    s = use_postgres(env.config(), pg)
    r = run(s, "db", "init")
    assert r.code == 0 and r.err == "", r.describe()
    assert "from version 0 to 3" in r.out, r.describe()
    tables = {t[1] for t in pg.psql(r"\dt")}
    assert {"dk_state", "dk_lease", "dk_schema_version", "dk_key_sealed",
            "dk_assign", "dk_ack", "dk_agent", "dk_keyreq"} <= tables, tables
    r = run(s, "db", "init")
    assert r.code == 0 and r.err == "", r.describe()
    assert "up to date (version 3)" in r.out, r.describe()
    assert pg.psql("SELECT version FROM dk_schema_version ORDER BY 1") == \
        [["1"], ["2"], ["3"]]
    # Before init, every other command says what to do.
    pg.psql("DROP TABLE dk_schema_version, dk_state, dk_lease")
    r = run(s, "status")
    assert r.code == 78 and "db init" in r.err, r.describe()


@with_pg
def test_import_export_round_trip_and_never_overwrite(env, pg):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    with open(s.state_file(), "rb") as f:
        original = f.read()
    before = run_ok(s, "status", "--json")
    use_postgres(s, pg)
    run_ok(s, "db", "init")
    out = run_ok(s, "db", "import", "--dir", s.state_dir)
    assert "imported 1 domain" in out, out
    # The same state, now read from the database.
    assert run_ok(s, "status", "--json") == before
    version, text = state_row(pg, s.domain)
    assert version == 1 and text.encode() == original, (version, text)
    # A second import refuses and changes nothing.
    r = run(s, "db", "import", "--dir", s.state_dir)
    assert r.code == 73 and s.domain in r.err and \
        "not overwriting" in r.err, r.describe()
    assert state_row(pg, s.domain) == (1, text)
    # Export into an empty directory: the same bytes.
    out_dir = os.path.join(s.tmp, "exported")
    out = run_ok(s, "db", "export", "--dir", out_dir)
    assert "exported 1 domain" in out, out
    with open(os.path.join(out_dir, s.domain + ".state"), "rb") as f:
        assert f.read() == original
    # Export over an existing file refuses, leaving it as it was.
    with open(os.path.join(out_dir, s.domain + ".state"), "wb") as f:
        f.write(b"mine\n")
    r = run(s, "db", "export", "--dir", out_dir)
    assert r.code == 73 and "not overwriting" in r.err, r.describe()
    with open(os.path.join(out_dir, s.domain + ".state"), "rb") as f:
        assert f.read() == b"mine\n"


# -- rotation and schedulers -----------------------------------------------

@with_pg
def test_rotation_on_postgresql_verifies_with_python_dkim(env, pg):
    s = use_postgres(env.config(), pg)
    run_ok(s, "db", "init")
    sel, _ = rotate_and_verify(env, s, "mail1")
    assert not os.path.exists(s.state_file()), \
        "a state file was written with backend = postgresql"
    version, text = state_row(pg, s.domain)
    assert version >= 4 and "key: mail1" in text, (version, text)
    # A second rotation from the database's state.
    rotate_and_verify(env, s, "mail2")
    assert state_row(pg, s.domain)[0] > version
    assert pg.psql("SELECT count(*) FROM dk_lease") == [["0"]], \
        "a finished command left its lease behind"
    env.check_foreign()


@with_pg
def test_two_schedulers_rotate_20_domains_no_step_twice(env, pg):
    s = many_domains(env, pg, 20, lease_time="5s")
    a = Sched(s, "run", tag="a")
    b = Sched(s, "run", tag="b")
    try:
        wait_until(lambda: active_everywhere(s), 120,
                   "20 domains active:\n%s\n%s" % (a.describe(),
                                                    b.describe()))
    except Exception:
        raise AssertionError("not all active:\n%s\n%s" % (a.describe(),
                                                          b.describe()))
    assert a.proc.poll() is None and b.proc.poll() is None, \
        a.describe() + b.describe()
    check_one_add_each(env, s)
    for d in s.domains:
        assert dkim_roundtrip(s, env.bind, d, log=env.log), d
    # Every step was committed by exactly one of them.
    for d in s.domains:
        n = (a.out().count(d + ": generated"),
             b.out().count(d + ": generated"))
        assert sum(n) == 1, "%s generated %r times (a, b)" % (d, n)
    env.check_foreign()


@with_pg
def test_scheduler_killed_mid_rotation_is_taken_over_after_lease(env, pg):
    s = many_domains(env, pg, 20, lease_time="3s")
    # a dies by SIGKILL right after its 15th commit: mid-rotation, with
    # the leases of the domains it was working on still in the table.
    a = Sched(s, "run", binary=CRASH_BIN, tag="a",
              extra_env={"DKIMKEYD_CRASH": "after-commit:15"})
    a.proc.wait(timeout=60)
    assert a.proc.returncode == -signal.SIGKILL, a.describe()
    held = pg.psql("SELECT domain FROM dk_lease WHERE expires_at > now()")
    assert held, "the killed scheduler held no lease"
    t_kill = time.monotonic()
    b = Sched(s, "run", tag="b")
    wait_until(lambda: active_everywhere(s), 120,
               "20 domains active after the takeover:\n%s" % b.describe())
    assert "leased to" in b.out(), \
        "b never met the dead scheduler's leases:\n" + b.describe()
    taken = [d for (d,) in held
             if (d + ": generated") in a.out() and
             ("%s: signer" % ("mail1._domainkey." + d)) in b.out()]
    assert taken, "no domain a started was finished by b:\n%s\n%s" % (
        a.out(), b.out())
    assert time.monotonic() - t_kill >= 1
    check_one_add_each(env, s)
    for d in s.domains:
        assert dkim_roundtrip(s, env.bind, d, log=env.log), d


@with_pg
def test_postgres_restarted_mid_rotation_nothing_lost(env, pg):
    s = many_domains(env, pg, 5, lease_time="10s")
    a = Sched(s, "run", tag="a")
    wait_until(lambda: "event=published" in a.out(), 60,
               "a first publication:\n" + a.describe())
    pg.restart()
    wait_until(lambda: active_everywhere(s), 150,
               "5 domains active after the restart:\n" + a.describe())
    assert a.proc.poll() is None, a.describe()
    for d in s.domains:
        version, text = state_row(pg, d)
        assert version >= 4 and "active:" in text, (d, version)
        assert dkim_roundtrip(s, env.bind, d, log=env.log), d
    # Each record was added at most twice (a publication whose commit
    # the restart cut off is repeated: intent before action).
    for owner, n in adds_per_record(env.bind).items():
        assert n <= 2, (owner, n)


# -- commits that must fail ------------------------------------------------

@with_pg
def test_commit_on_a_stale_version_fails_cleanly(env, pg):
    s = use_postgres(env.config(), pg, lease_time="60s")
    run_ok(s, "db", "init")
    a = paused(s, "before-commit:2", "rotate", "--domain", s.domain)
    # A writer that ignores leases (a restored dump, a hand edit).
    pg.psql("UPDATE dk_state SET version = version + 1")
    version, text = state_row(pg, s.domain)
    os.kill(a.pid, signal.SIGCONT)
    a.proc.wait(timeout=60)
    assert a.proc.returncode == 75, a.describe()
    assert "changed in the database since it was read" in a.err(), \
        a.describe()
    assert state_row(pg, s.domain) == (version, text), \
        "the stale commit changed the row"
    # The next command carries on from the database's state.
    rotate_and_verify(env, s, "mail1", resumed=True)


@with_pg
def test_commit_after_the_lease_was_taken_over_fails_cleanly(env, pg):
    s = use_postgres(env.config(extra_domain_lines=["rotate_every = 1h"]),
                     pg, lease_time="5s")
    run_ok(s, "db", "init")
    a = paused(s, "before-commit:2", "rotate", "--domain", s.domain)
    v0, _ = state_row(pg, s.domain)
    time.sleep(6)       # a's lease expires while it is stopped
    b = run(s, "run", "--once")
    assert b.code == 0, b.describe()
    version, text = state_row(pg, s.domain)
    assert version > v0, "b took no step"
    os.kill(a.pid, signal.SIGCONT)
    a.proc.wait(timeout=60)
    assert a.proc.returncode == 75, a.describe()
    assert "lease lost" in a.err(), a.describe()
    assert state_row(pg, s.domain) == (version, text), \
        "a commit without the lease changed the row"


@with_pg
def test_conninfo_file_readable_by_others_is_refused_77(env, pg):
    s = use_postgres(env.config(), pg, conninfo_mode=0o644)
    for args in (("configtest",), ("db", "init"), ("run", "--once"),
                 ("status",)):
        r = run(s, *args)
        assert r.code == 77, r.describe()
        assert s.conninfo_file in r.err, r.describe()
        assert pg.password not in r.err + r.out, "password in the output"
    os.chmod(s.conninfo_file, 0o640)
    run_ok(s, "db", "init")
    run_ok(s, "configtest")
    assert pg.psql("SELECT count(*) FROM dk_schema_version") == [["3"]]


# -- status ----------------------------------------------------------------

@with_pg
def test_status_shows_the_lease_holder(env, pg):
    s = use_postgres(env.config(), pg, lease_time="60s")
    run_ok(s, "db", "init")
    a = paused(s, "before-commit:2", "rotate", "--domain", s.domain)
    rows = pg.psql("SELECT holder, token FROM dk_lease WHERE domain = '%s'"
                   % s.domain)
    assert len(rows) == 1, rows
    holder, token = rows[0][0], int(rows[0][1])
    out = run_ok(s, "status")
    assert "leased to %s until " % holder in out, out
    assert "(token %d)" % token in out, out
    doms = json.loads(run_ok(s, "status", "--json"))["domains"]
    lease = [d for d in doms if d["domain"] == s.domain][0].get("lease")
    assert lease and lease["holder"] == holder and \
        lease["token"] == token and lease["expires"] > time.time(), lease
    os.kill(a.pid, signal.SIGCONT)
    a.proc.wait(timeout=120)
    assert a.proc.returncode == 0, a.describe()
    # The finished command gave its lease back: nobody holds the domain.
    out = run_ok(s, "status")
    assert "leased to" not in out, out
    doms = json.loads(run_ok(s, "status", "--json"))["domains"]
    assert all("lease" not in d for d in doms), doms


# -- the restricted role (contrib/postgresql/roles.sql) ---------------------

ROLES_SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "..", "contrib", "postgresql", "roles.sql")


@with_pg
def test_scheduler_as_the_restricted_role_of_roles_sql(env, pg):
    s = use_postgres(env.config(), pg, lease_time="60s")
    run_ok(s, "db", "init")          # as the owner, dkimkeyd
    pw = "r" + pg.password
    # The database and its owner exist (the harness made them, as step
    # roles would): create the restricted login, apply the grants.
    pg.psql("CREATE ROLE dkimkeyd_run LOGIN PASSWORD '%s'" % pw, db="postgres")
    r = subprocess.run(
        ["/usr/bin/psql", "-h", pg.sock, "-p", str(pg.port), "-U", "dkimkeyd",
         "-d", "dkimkeyd", "-v", "ON_ERROR_STOP=1", "-v", "owner=dkimkeyd",
         "-v", "sched=dkimkeyd_run", "--set", "step=grants", "-f",
         ROLES_SQL], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(s.conninfo_file, "w") as f:
        f.write(pg.conninfo().replace("user=dkimkeyd ", "user=dkimkeyd_run ")
                .replace(pg.password, pw) + "\n")
    rotate_and_verify(env, s, "mail1")
    out = run_ok(s, "status")
    assert s.domain in out, out
    # The restricted role cannot drop, truncate or delete state.
    for sql in ("DROP TABLE dk_lease", "TRUNCATE dk_state",
                "DELETE FROM dk_state", "UPDATE dk_schema_version SET "
                "version = 99", "CREATE TABLE x (i int)"):
        q = subprocess.run(
            ["/usr/bin/psql", "-h", pg.sock, "-p", str(pg.port), "-U",
             "dkimkeyd_run", "-d", "dkimkeyd", "-v", "ON_ERROR_STOP=1",
             "-c", sql], capture_output=True, text=True, timeout=60)
        assert q.returncode != 0 and ("permission denied" in q.stderr or
                                      "must be owner" in q.stderr), \
            (sql, q.stdout, q.stderr)
    assert pg.psql("SELECT count(*) FROM dk_state") == [["1"]]


# -- fencing at the DNS write ----------------------------------------------

def fenced_at_the_update(env, pg, *command):
    """command (DOMAIN: the test's domain), stopped right before its UPDATE while the database is
    down for longer than lease_time, carries on with the database still
    down: it cannot confirm its lease, so it sends nothing (BIND's log)
    and exits 75; once the database is back the rotation completes."""
    s = use_postgres(env.config(extra_domain_lines=["rotate_every = 1h"]),
                     pg, lease_time="3s")
    run_ok(s, "db", "init")
    owner = "mail1._domainkey." + s.domain
    command = [s.domain if w == "DOMAIN" else w for w in command]
    a = paused(s, "before-publish", *command)
    assert owner not in adds_per_record(env.bind)
    pg.stop()
    time.sleep(5)       # past lease_time (3s): the lease has run out
    os.kill(a.pid, signal.SIGCONT)
    a.proc.wait(timeout=120)
    assert a.proc.returncode == 75, a.describe()
    assert owner not in adds_per_record(env.bind), \
        "an UPDATE went out without a confirmed lease:\n" + a.describe()
    pg.start()
    # Waits longer than lease_time inside one command keep the lease.
    rotate_and_verify(env, s, "mail1", resumed=True)
    assert adds_per_record(env.bind).get(owner) == 1


@with_pg
def test_database_down_past_lease_time_rotate_sends_no_update(env, pg):
    fenced_at_the_update(env, pg, "rotate", "--domain", "DOMAIN")


@with_pg
def test_database_down_past_lease_time_run_sends_no_update(env, pg):
    fenced_at_the_update(env, pg, "run", "--once")
