"""The real OpenDKIM milter (Debian's opendkim) on 127.0.0.1 for tests:
refile KeyTable and SigningTable written by dkimkeyd, reloaded by SIGUSR1
from the configured reload command, driven by miltertest; sign() returns
the message as OpenDKIM signed it, rebuilt for python3-dkim."""

import os
import re
import signal
import socket
import subprocess
import time

HEADERS = [("From", "a@{d}"), ("To", "b@example.org"),
           ("Subject", "signed by OpenDKIM"),
           ("Date", "Wed, 02 Dec 2026 15:00:00 +0000")]
BODY = "Hello from the real milter.\r\n"

LUA = r'''
local conn = mt.connect("inet:{port}@127.0.0.1")
assert(conn, "cannot connect to the milter")
mt.conninfo(conn, "localhost", "127.0.0.1")
mt.macro(conn, SMFIC_MAIL, "i", "T1")
mt.mailfrom(conn, "a@{d}")
mt.rcptto(conn, "b@example.org")
{headers}
mt.eoh(conn)
mt.bodystring(conn, "{body}")
mt.eom(conn)
print("reply " .. mt.getreply(conn))
local n = 0
while true do
  local v = mt.getheader(conn, "DKIM-Signature", n)
  if v == nil then break end
  io.write("sig ", (string.gsub(v, "\n", "\\n")), "\n")
  n = n + 1
end
mt.disconnect(conn)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Milter:
    def __init__(self, tmp, key_table, signing_table, extra=()):
        self.dir = os.path.join(tmp, "opendkim")
        os.makedirs(self.dir, exist_ok=True)
        self.port = _free_port()
        self.pidfile = os.path.join(self.dir, "opendkim.pid")
        self.conf = os.path.join(self.dir, "opendkim.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "Mode s", "Socket inet:%d@127.0.0.1" % self.port,
                "KeyTable refile:%s" % key_table,
                "SigningTable refile:%s" % signing_table,
                "InternalHosts 127.0.0.1", "RequireSafeKeys no",
                "Syslog no", "PidFile %s" % self.pidfile] + list(extra)) +
                "\n")
        # The signer's reload command: SIGUSR1 to the milter's PID.
        self.reload_script = os.path.join(self.dir, "reload.sh")
        with open(self.reload_script, "w") as f:
            f.write("#!/bin/sh\nexec kill -USR1 \"$(cat %s)\"\n" %
                    self.pidfile)
        os.chmod(self.reload_script, 0o755)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x",
                                      self.conf, "-P", self.pidfile],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=0.2).close()
                if os.path.exists(self.pidfile):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("opendkim exited %s" % self.proc.returncode)
            time.sleep(0.05)
        raise RuntimeError("opendkim not listening on %d" % self.port)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def sign(self, domain):
        """(milter reply letter, [DKIM-Signature values], message bytes
        with the signatures prepended as OpenDKIM would insert them)."""
        hdrs = [(n, v.format(d=domain)) for n, v in HEADERS]
        lua = LUA.replace("{port}", str(self.port)).replace(
            "{d}", domain).replace("{body}", BODY.replace(
                "\r\n", "\\r\\n")).replace("{headers}", "\n".join(
                    'mt.header(conn, "%s", "%s")' % (n, v) for n, v in hdrs))
        path = os.path.join(self.dir, "sign.lua")
        with open(path, "w") as f:
            f.write(lua)
        r = subprocess.run(["miltertest", "-s", path], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("miltertest: %s%s" % (r.stdout, r.stderr))
        reply, sigs = None, []
        for ln in r.stdout.splitlines():
            if ln.startswith("reply "):
                reply = chr(int(float(ln.split()[1])))
            elif ln.startswith("sig "):
                sigs.append(ln[4:].replace("\\n", "\n"))
        msg = "".join("%s: %s\r\n" % (n, v) for n, v in hdrs) + "\r\n" + BODY
        signed = "".join("DKIM-Signature:%s\r\n" % s.replace("\n", "\r\n")
                         for s in sigs) + msg
        return reply, sigs, signed.encode()


def use_milter(env, s):
    """A Milter over s's tables, and s's signer reloading it."""
    m = Milter(env.tmp, s.key_table, s.signing_table)
    with open(s.conf) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^reload = .*$", "reload = %s" % m.reload_script,
                      text)
    assert n == 1
    with open(s.conf, "w") as f:
        f.write(text)
    return m
