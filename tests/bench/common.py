"""Shared pieces of the benchmarks: a BIND serving large generated zones
with a statistics channel, dkimkeyd configuration writing, sd_notify
readiness, /proc readings and the results table.

Every figure is reported next to a reference measured in the same run
(a ratio), never against a fixed wall-clock number.  Only 127.0.0.1 is
contacted; every process started here is stopped by its PID.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402

DKIMKEYD = harness.DKIMKEYD


def log(msg):
    """Progress on stderr, so that a long run shows where it is."""
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


class BenchBind(harness.Bind):
    """A throwaway BIND (see harness.Bind) whose zones carry generated
    records, with a JSON statistics channel on loopback so that the
    UPDATE messages it received can be counted independently of
    dkimkeyd.

    zones: {zone name: extra zone-file text appended to the SOA/NS}.
    """

    def __init__(self, zones):
        self.extra = dict((z.rstrip(".").lower(), t)
                          for z, t in zones.items())
        self.stats_port = harness.free_port()
        super().__init__(tuple(self.extra))

    def _zone_text(self, z):
        return harness.Bind._zone_text(z) + self.extra.get(z, "")

    def _conf_text(self):
        return harness.Bind._conf_text(self) + (
            'statistics-channels {\n'
            '\tinet 127.0.0.1 port %d allow { 127.0.0.1; };\n'
            '};\n' % self.stats_port)

    def stats(self):
        url = "http://127.0.0.1:%d/json/v1/server" % self.stats_port
        # No proxy: the statistics channel is on loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as r:
            return json.loads(r.read().decode())

    def update_messages(self):
        """UPDATE messages received so far (BIND's opcode counter)."""
        return int(self.stats().get("opcodes", {}).get("UPDATE", 0))

    def log_count(self, needle):
        """Lines of the named log containing needle."""
        n = 0
        with open(self.log_path, "rb") as f:
            for line in f:
                if needle in line:
                    n += 1
        return n


def private_dirs(tmp):
    """state/ and keys/ under tmp, mode 0700 as dkimkeyd requires."""
    for d in ("state", "keys"):
        p = os.path.join(tmp, d)
        os.makedirs(p, mode=0o700, exist_ok=True)
        os.chmod(p, 0o700)
    return os.path.join(tmp, "state"), os.path.join(tmp, "keys")


def write_text(path, text, mode=0o644):
    harness.Bind._write(path, text, mode)


def dkimkeyd(conf, *args, timeout=1800):
    """Run dkimkeyd -c conf ARGS: (exit code, stdout, stderr, seconds)."""
    argv = [DKIMKEYD, "-c", conf] + [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


class Notify:
    """An sd_notify socket for a daemon started by the benchmark."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_for(self, word, deadline, proc):
        """Wait until a datagram has a line equal to word (READY=1)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise harness.HarnessError("daemon exited with status %s "
                                           "before %s" % (proc.returncode,
                                                          word))
            self.sock.settimeout(min(0.5, max(0.01,
                                              end - time.monotonic())))
            try:
                msg = self.sock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                continue
            if word in msg.split("\n"):
                return
        raise harness.HarnessError("no %s from the daemon within %ss" % (
            word, deadline))

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise harness.HarnessError("no VmRSS for pid %d" % pid)


def proc_cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # The command name may hold spaces: fields start after its ')'.
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def stop_process(p, deadline=10):
    """SIGTERM p (a Popen we started), SIGKILL after deadline."""
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=deadline)


class Table:
    """Rows of (measurement, value, reference, ratio, target, verdict)."""

    HEAD = ("measurement", "value", "reference (same run)", "ratio",
            "target", "")

    def __init__(self):
        self.rows = []
        self.notes = []

    def add(self, what, value, ref="", ratio="", target="", ok=None):
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append((what, value, ref, ratio, target, verdict))

    def note(self, text):
        self.notes.append(text)

    def render(self):
        rows = [self.HEAD] + self.rows
        w = [max(len(str(r[i])) for r in rows) for i in range(len(
            self.HEAD))]
        out = []
        for n, r in enumerate(rows):
            out.append("  ".join(str(c).ljust(w[i]) for i, c in
                                 enumerate(r)).rstrip())
            if n == 0:
                out.append("  ".join("-" * x for x in w).rstrip())
        for t in self.notes:
            out.append("* " + t)
        return "\n".join(out) + "\n"
