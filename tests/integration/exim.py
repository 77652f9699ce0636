"""A real Exim (Debian's exim4-daemon-heavy) on 127.0.0.1 for the signer
tests, and the loopback SMTP sink (python3-aiosmtpd) it delivers to.

Exim runs in the foreground with a test configuration (-C) in a
temporary directory: it accepts mail from 127.0.0.1 on a free port and
routes every recipient to the sink through an smtp transport carrying
the DKIM options contrib/exim/ documents, reading dkimkeyd's lsearch
file.  It makes no DNS query (no host lookups, no MX: the route is an IP
address).  Stopped by PID.
"""

import os
import pwd
import signal
import subprocess
import threading
import time

from harness import HarnessError, REPO, free_port, wait_until

EXIM = "/usr/sbin/exim4"
SWAKS = "/usr/bin/swaks"
EXIM_USER = "Debian-exim"


def transport_options(file):
    """The DKIM transport options of contrib/exim/, for file."""
    path = os.path.join(REPO, "contrib", "exim", "dkim-transport.conf")
    out = []
    with open(path) as f:
        for line in f:
            if line.lstrip().startswith("#") or not line.strip():
                continue
            out.append(line.rstrip("\n").replace(
                "/var/lib/dkimkeyd/exim/dkim.lsearch", file))
    return out


class Sink:
    """An SMTP server on 127.0.0.1 keeping every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.port = free_port()
        self.messages = []
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.messages.append(envelope.original_content)
                return "250 OK"

        self.ctl = Controller(Handler(), hostname="127.0.0.1",
                              port=self.port)

    def start(self):
        self.ctl.start()
        return self

    def stop(self):
        self.ctl.stop()

    def wait(self, n, deadline=30):
        """The nth message (1-based), waiting for it."""
        wait_until(lambda: len(self.messages) >= n,
                   time.monotonic() + deadline,
                   "message %d at the SMTP sink" % n)
        with self.lock:
            return self.messages[n - 1]

    def find(self, token, deadline=30):
        """The message whose text contains token, waiting for it."""
        token = token.encode()
        found = []

        def look():
            with self.lock:
                found[:] = [m for m in self.messages if token in m]
            return bool(found)
        wait_until(look, time.monotonic() + deadline,
                   "message %s at the SMTP sink" % token.decode())
        return found[0]


class Exim:
    def __init__(self, tmp, sink_port, lsearch_file):
        self.dir = os.path.join(tmp, "exim")
        self.spool = os.path.join(self.dir, "spool")
        self.logdir = os.path.join(self.dir, "log")
        for d in (self.dir, self.spool, self.logdir):
            os.makedirs(d, exist_ok=True)
        pw = pwd.getpwnam(EXIM_USER)
        for d in (self.spool, self.logdir):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "exim.conf")
        self.proc = None
        lines = [
            "primary_hostname = dkimkeyd.test",
            "exim_user = " + EXIM_USER,
            "exim_group = " + EXIM_USER,
            "spool_directory = " + self.spool,
            "log_file_path = %s/%%slog" % self.logdir,
            "pid_file_path = " + os.path.join(self.dir, "exim.pid"),
            "local_interfaces = 127.0.0.1",
            "daemon_smtp_ports = %d" % self.port,
            "host_lookup =",
            "rfc1413_hosts =",
            "keep_environment =",
            "acl_smtp_rcpt = acl_rcpt",
            "",
            "begin acl",
            "acl_rcpt:",
            "  accept hosts = 127.0.0.1",
            "  deny",
            "",
            "begin routers",
            "sink:",
            "  driver = manualroute",
            "  route_list = * 127.0.0.1",
            "  self = send",
            "  transport = dkim_smtp",
            "",
            "begin transports",
            "dkim_smtp:",
            "  driver = smtp",
            "  port = %d" % sink_port,
            "  allow_localhost",
            "  hosts_try_chunking =",
        ] + ["  " + x.strip() for x in transport_options(lsearch_file)] + [
            "",
            "begin retry",
            "* * F,1m,5s",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, deadline=20):
        self.out = open(os.path.join(self.dir, "stdout"), "ab")
        self.proc = subprocess.Popen(
            [EXIM, "-C", self.conf, "-bdf", "-oX", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
            start_new_session=True)
        try:
            wait_until(self._ready, time.monotonic() + deadline,
                       "exim listening on 127.0.0.1:%d" % self.port)
        except HarnessError:
            self.stop()
            raise HarnessError("exim did not start: %s" % self.log_tail())
        return self

    def _ready(self):
        import socket
        if self.proc.poll() is not None:
            raise HarnessError("exim exited with %s: %s" % (
                self.proc.returncode, self.log_tail()))
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1):
                return True
        except OSError:
            return False

    def send(self, sender, body_from, subject="dkimkeyd integration test"):
        """Submit a message from sender (From: header too) with swaks."""
        r = subprocess.run(
            [SWAKS, "--server", "127.0.0.1", "--port", str(self.port),
             "--from", sender, "--to", "bob@example.org",
             "--h-From", "Alice <%s>" % body_from,
             "--header", "Subject: " + subject,
             "--body", "Hello, this message is signed by Exim.",
             "--timeout", "20", "--silent", "2"],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise HarnessError("swaks failed (%d): %s %s %s" % (
                r.returncode, r.stdout[-800:], r.stderr[-800:],
                self.log_tail()))

    def log_tail(self, n=20):
        lines = []
        for name in ("mainlog", "paniclog", "rejectlog"):
            try:
                with open(os.path.join(self.logdir, name), "rb") as f:
                    lines += [name + ": " + x for x in f.read().decode(
                        errors="replace").splitlines()[-n:]]
            except OSError:
                pass
        try:
            with open(os.path.join(self.dir, "stdout"), "rb") as f:
                lines += f.read().decode(errors="replace").splitlines()[-n:]
        except OSError:
            pass
        return "\n".join(lines)

    def stop(self, deadline=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(deadline)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "out", None) is not None:
            self.out.close()
            self.out = None


def open_for_exim(tmp, setup):
    """Let Exim's user reach dkimkeyd's keys through key_group: the
    temporary directory traversable, key_dir 0750 with Exim's group."""
    gid = pwd.getpwnam(EXIM_USER).pw_gid
    os.chmod(tmp, 0o711)
    os.chown(setup.key_dir, -1, gid)
    os.chmod(setup.key_dir, 0o750)
