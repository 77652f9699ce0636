"""A throwaway PostgreSQL (Debian's postgresql-15) for the integration tests.

initdb in a temporary directory, run as the unprivileged user nobody (the
server refuses to run as root), listening on 127.0.0.1 on a free port and
on a socket in the temporary directory; stopped by its PID.  The superuser
(pgadmin) connects over the socket without a password (local trust, for
the harness only); dkimkeyd connects over TCP as the role dkimkeyd with a
password (scram-sha-256), written to a conninfo file of mode 0600.
"""

import atexit
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile

from harness import KEEP, HarnessError, free_port, wait_until

PGBIN = os.environ.get("DKIMKEYD_PGBIN", "/usr/lib/postgresql/15/bin")
PSQL = "/usr/bin/psql"
USER = "nobody"

_live = set()


def _stop_all():
    for p in list(_live):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


def _die_with_parent():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, Linux only
        pass


class Postgres:
    """PostgreSQL on 127.0.0.1:port with a database and role dkimkeyd."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="dkimkeyd-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.password = secrets.token_hex(16)
        self.proc = None
        self._log = None
        pw = pwd.getpwnam(USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.mkdir(self.sock, 0o700)
        for d in (self.dir, self.sock):
            os.chown(d, self.uid, self.gid)
        os.chmod(self.dir, 0o700)
        r = subprocess.run(
            [os.path.join(PGBIN, "initdb"), "-D", self.data, "-U", "pgadmin",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
             "--no-instructions", "--locale=C"],
            capture_output=True, text=True, timeout=120, user=self.uid,
            group=self.gid, cwd=self.dir)
        if r.returncode != 0:
            raise HarnessError("initdb failed: %s%s" % (r.stdout, r.stderr))

    # -- process control ------------------------------------------------

    def start(self, deadline=30):
        if self.proc is not None:
            raise HarnessError("postgres already running")
        self._log = open(self.log_path, "ab")
        os.chown(self.log_path, self.uid, self.gid)
        self.proc = subprocess.Popen(
            [os.path.join(PGBIN, "postgres"), "-D", self.data,
             "-p", str(self.port), "-k", self.sock,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "log_statement=none",
             "-c", "shared_buffers=16MB", "-c", "max_connections=40"],
            stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.dir, user=self.uid,
            group=self.gid, preexec_fn=_die_with_parent)
        _live.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("postgres exited with status %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            r = subprocess.run([PSQL, "-h", self.sock, "-p", str(self.port),
                                "-U", "pgadmin", "-d", "postgres", "-Atc",
                                "SELECT 1"], capture_output=True, text=True,
                               timeout=10)
            return r.returncode == 0 and r.stdout.strip() == "1"

        try:
            wait_until(ready, deadline, "postgres on port %d" % self.port,
                       interval=0.2)
        except HarnessError as e:
            self.stop()
            raise HarnessError("%s\n%s" % (e, self.log_tail()))
        return self

    def stop(self, deadline=20):
        """Fast shutdown (SIGINT) by PID: sessions are cut, data kept."""
        p = self.proc
        if p is None:
            return
        self.proc = None
        try:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=deadline)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=deadline)
        finally:
            _live.discard(self)
            if self._log is not None:
                self._log.close()
                self._log = None

    def restart(self):
        self.stop()
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no postgres log)"
        return "postgres log (last %d lines):\n%s" % (n, "\n".join(lines[-n:]))

    # -- SQL --------------------------------------------------------------

    def psql(self, sql, db="dkimkeyd", user="pgadmin"):
        """Run sql as the superuser over the socket; rows as lists."""
        r = subprocess.run([PSQL, "-h", self.sock, "-p", str(self.port),
                            "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1",
                            "-At", "-F", "\x1f", "-R", "\x1e", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise HarnessError("psql %r failed: %s" % (sql, r.stderr))
        # Unit and record separators: state text has tabs and newlines.
        out = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
        return [rec.split("\x1f") for rec in out.split("\x1e") if rec != ""]

    def create_db(self):
        """Role and database dkimkeyd (no schema: `db init` makes it)."""
        self.psql("CREATE ROLE dkimkeyd LOGIN PASSWORD '%s'" % self.password,
                  db="postgres")
        self.psql("CREATE DATABASE dkimkeyd OWNER dkimkeyd", db="postgres")
        return self

    def conninfo(self):
        return ("host=127.0.0.1 port=%d dbname=dkimkeyd user=dkimkeyd "
                "password=%s connect_timeout=3" % (self.port, self.password))

    def write_conninfo(self, path, mode=0o600):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(self.conninfo() + "\n")
        os.chmod(path, mode)
        return path


def use_postgres(setup, pg, lease_time="60s", conninfo_mode=0o600):
    """Switch setup's configuration to backend = postgresql on pg."""
    path = os.path.join(setup.tmp, "conninfo")
    pg.write_conninfo(path, conninfo_mode)
    with open(setup.conf) as f:
        text = f.read()
    add = ("backend = postgresql\nconninfo_file = %s\nlease_time = %s\n" % (
        path, lease_time))
    text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\n" + add, 1)
    with open(setup.conf, "w") as f:
        f.write(text)
    setup.conninfo_file = path
    return setup
