"""The daemon (`dkimkeyd run`): automatic first rotation, readiness and
status through $NOTIFY_SOCKET, SIGTERM between steps, SIGHUP reloads (good
and broken configurations, domains added and removed), a domain with an
unreachable primary that must not delay the others, idle CPU, and the pid
file."""

import os
import signal
import socket
import subprocess
import time

from harness import (DKIMKEYD, dkim_roundtrip,
                     domain_status, managed_record, read_bytes, run,
                     signer_current, wait_until, zones)

ROTATE = "rotate_every = 1h"


# -- helpers ----------------------------------------------------------------

class Notify:
    """A service manager's notification socket: an AF_UNIX datagram socket
    bound to a path, or to an abstract name (address given as @name)."""

    def __init__(self, tmp, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "dkimkeyd-test-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(tmp, "notify.sock")
            self.sock.bind(self.address)
        self.sock.setblocking(False)
        self.messages = []

    def poll(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append(data.decode("utf-8", "replace"))

    def lines(self):
        return [ln for m in self.poll() for ln in m.split("\n")]

    def wait_for(self, line, deadline=20):
        return wait_until(lambda: line in self.lines(), deadline,
                          "%s on the notification socket (got %r)" % (
                              line, self.messages))

    def close(self):
        self.sock.close()


class Daemon:
    """`dkimkeyd -c CONF run ARGS` in the background, output to files."""

    def __init__(self, setup, *args, notify=None):
        n = len([f for f in os.listdir(setup.tmp) if f.startswith("out.")])
        self.out_path = os.path.join(setup.tmp, "out.%d" % n)
        self.err_path = os.path.join(setup.tmp, "err.%d" % n)
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.address
        self.args = [DKIMKEYD, "-c", setup.conf, "run"] + list(args)
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=o, stderr=e, env=env)
        self.pid = self.proc.pid

    def out(self):
        return (read_bytes(self.out_path) or b"").decode("utf-8", "replace")

    def err(self):
        return (read_bytes(self.err_path) or b"").decode("utf-8", "replace")

    def describe(self):
        return "`%s` (pid %d, exit %s)\n--- stdout:\n%s--- stderr:\n%s" % (
            " ".join(self.args), self.pid, self.proc.poll(), self.out(),
            self.err())

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait_exit(self, deadline=20):
        try:
            return self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError("daemon still running %ss after being "
                                 "told to stop: %s" % (deadline,
                                                       self.describe()))

    def stop(self):
        """Stop it by its PID, however it is doing (for finally)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)

    def cpu_ticks(self):
        """utime + stime of the process, in clock ticks."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def expect(self, text, deadline=30):
        return wait_until(lambda: text in self.out(), deadline,
                          "%r on the daemon's stdout:\n%s" % (
                              text, self.describe()))


def active_selector(setup, domain=None):
    """The selector whose key is active for domain, or None."""
    for k in domain_status(setup, domain)["keys"]:
        if k["state"] == "active":
            return k["selector"]
    return None


def wait_active(setup, domain=None, deadline=30, daemon=None):
    domain = domain or setup.domain

    def active():
        if daemon is not None and not daemon.alive():
            raise AssertionError("daemon exited: " + daemon.describe())
        return active_selector(setup, domain)
    return wait_until(active, deadline, "an active key for %s%s" % (
        domain, "" if daemon is None else "\n" + daemon.describe()))


def domain_text(setup, domain, provider, rotate=ROTATE):
    return "\n".join([
        "",
        "[domain %s]" % domain,
        "provider = %s" % provider,
        "signer = opendkim",
        "selectors = mail1 mail2",
        "algorithm = rsa-2048",
        "ttl = 2s",
        "retire_after = 3s",
        "propagation_timeout = 10s",
        "safety_margin = 1s",
        rotate,
        ""])


def provider_text(setup, name, zone, server, probe, timeout="2s"):
    return "\n".join([
        "",
        "[provider %s]" % name,
        "type = rfc2136",
        "server = %s" % server,
        "tsig_key_file = %s" % setup.tsig_key_file,
        "zone = %s" % zone,
        "probe_servers = %s" % probe,
        "timeout = %s" % timeout,
        ""])


def append_config(setup, text):
    with open(setup.conf, "a") as f:
        f.write(text)


def config_without_domain(setup, domain):
    """The configuration text with [domain D] (up to the next section)
    left out."""
    with open(setup.conf) as f:
        lines = f.read().split("\n")
    out, skip = [], False
    for ln in lines:
        if ln.startswith("["):
            skip = ln.strip() == "[domain %s]" % domain
        if not skip:
            out.append(ln)
    return "\n".join(out)


def write_text(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


# -- tests ------------------------------------------------------------------

def test_first_rotation_ready_status_idle_and_stop(env):
    s = env.config(extra_domain_lines=(ROTATE,))
    note = Notify(env.tmp)
    d = Daemon(s, notify=note)
    try:
        note.wait_for("READY=1")
        assert d.alive(), d.describe()
        # No key at all and rotate_every set: the first rotation at once.
        sel = wait_active(s, daemon=d)
        assert sel == "mail1", sel
        assert signer_current(s)[0] == "mail1"
        assert managed_record(env.bind, s, "mail1") is not None
        assert dkim_roundtrip(s, env.bind, s.domain, log=env.log)
        d.expect("event=active")
        wait_until(lambda: any(ln.startswith("STATUS=") and
                               "next step at" in ln
                               for ln in note.lines()), 10,
                   "STATUS with the next step (got %r)" % note.messages)

        # Nothing due for an hour: the daemon sleeps, it does not poll
        # (once it has made the next rotation's key ahead).
        wait_until(lambda: "event=active" in d.out(), 5, "activation")
        d.expect("event=pending")
        before = d.cpu_ticks()
        time.sleep(5)
        used = d.cpu_ticks() - before
        assert used <= 2, "idle daemon used %d clock ticks in 5s" % used
        assert d.alive(), d.describe()

        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0, d.describe()
        note.wait_for("STOPPING=1", 5)
        assert d.err() == "", d.describe()
        # The state is committed: a later look agrees with what was done.
        assert active_selector(s) == "mail1"
    finally:
        d.stop()
        note.close()


def test_sigterm_finishes_the_step_then_exits_0(env):
    s = env.config(extra_domain_lines=(ROTATE,))
    note = Notify(env.tmp, abstract=True)
    d = Daemon(s, notify=note)
    try:
        note.wait_for("READY=1")
        d.expect("event=created")
        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0, d.describe()
        note.wait_for("STOPPING=1", 5)
        assert d.err() == "", d.describe()
        # Stopped between steps, before the cache-drain wait: the key is
        # on its way, not active, and the state file reads back.
        st = domain_status(s)
        states = [k["state"] for k in st["keys"]]
        assert len(states) == 1 and states[0] in (
            "created", "published", "visible"), st
        assert signer_current_or_none(s) is None
    finally:
        d.stop()
        note.close()
    # A new daemon carries on from the committed state.
    d = Daemon(s)
    try:
        assert wait_active(s, daemon=d) == "mail1"
        assert dkim_roundtrip(s, env.bind, s.domain, log=env.log)
        out = d.out()
        assert "event=created" not in out, \
            "restart generated another key: " + d.describe()
    finally:
        d.stop()


def signer_current_or_none(s):
    try:
        return signer_current(s)
    except (AssertionError, OSError):
        return None


def test_run_once_starts_the_first_rotation(env):
    # cron and the daemon share the step code: rotate_every also makes
    # `run --once` start the first rotation, and later runs finish it.
    s = env.config(extra_domain_lines=(ROTATE,))
    r = run(s, "run", "--once")
    assert r.code == 0 and r.err == "", r.describe()
    assert "event=created" in r.out, r.describe()

    def done():
        r2 = run(s, "run", "--once")
        assert r2.code == 0 and r2.err == "", r2.describe()
        return active_selector(s)
    assert wait_until(done, 30, "run --once to activate") == "mail1"
    assert dkim_roundtrip(s, env.bind, s.domain, log=env.log)


@zones("example.test", "second.test")
def test_sighup_adds_a_domain_without_restart(env):
    s = env.config(extra_domain_lines=(ROTATE,))
    d = Daemon(s)
    try:
        wait_active(s, daemon=d)
        append_config(s, provider_text(s, "second", "second.test",
                                       env.bind.addr(), env.bind.addr()) +
                      domain_text(s, "second.test", "second"))
        d.signal(signal.SIGHUP)
        d.expect("second.test: now configured")
        assert wait_active(s, "second.test", daemon=d) == "mail1"
        assert dkim_roundtrip(s, env.bind, "second.test", log=env.log)
        assert d.alive(), d.describe()
        assert "reloaded " in d.out(), d.describe()
        assert d.err() == "", d.describe()
    finally:
        d.stop()


@zones("example.test", "second.test")
def test_sighup_broken_config_keeps_running_then_applies_fix(env):
    s = env.config(extra_domain_lines=(ROTATE,))
    d = Daemon(s)
    try:
        wait_active(s, daemon=d)
        good = read_bytes(s.conf).decode()
        lines = good.rstrip("\n").split("\n")
        bad = "\n".join(lines + ["no_such_key = 1"]) + "\n"
        bad_line = len(lines) + 1
        write_text(s.conf, bad)
        d.signal(signal.SIGHUP)
        where = "%s:%d:" % (s.conf, bad_line)
        wait_until(lambda: where in d.err(), 10,
                   "the reload error naming %s\n%s" % (where,
                                                       d.describe()))
        assert "previous configuration" in d.err(), d.describe()
        assert d.alive(), d.describe()

        # A valid configuration: example.test removed, second.test added.
        before = (env.bind.query_txt(s.selector_name("mail1")),
                  signer_current(s), read_bytes(s.state_file()))
        text = config_without_domain(s, "example.test").replace(
            "no_such_key = 1\n", "")
        text += provider_text(s, "second", "second.test", env.bind.addr(),
                              env.bind.addr())
        text += domain_text(s, "second.test", "second")
        write_text(s.conf, text)
        d.signal(signal.SIGHUP)
        d.expect("example.test: no longer configured; left as it is")
        assert wait_active(s, "second.test", daemon=d) == "mail1"
        after = (env.bind.query_txt(s.selector_name("mail1")),
                 signer_current(s), read_bytes(s.state_file()))
        assert before[0] == after[0], "record of removed domain changed"
        assert before[1] == after[1], "signer entry of removed domain " \
            "changed"
        assert before[2] == after[2], "state of removed domain changed"
        assert dkim_roundtrip(s, env.bind, s.domain, log=env.log)
    finally:
        d.stop()


@zones("example.test", "dead.test")
def test_unreachable_primary_does_not_delay_other_domain(env):
    # A primary that accepts connections and never answers: every UPDATE
    # to it takes the provider's whole timeout.
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    dead = "127.0.0.1:%d" % hole.getsockname()[1]
    s = env.config(extra_domain_lines=(ROTATE,))
    # The dead domain comes first in the file: it is looked at first.
    text = read_bytes(s.conf).decode()
    head, sep, rest = text.partition("[domain example.test]")
    text = head + provider_text(s, "dead", "dead.test", dead,
                                env.bind.addr(), timeout="3s").lstrip() + \
        domain_text(s, "dead.test", "dead").lstrip() + "\n" + sep + rest
    write_text(s.conf, text)
    d = Daemon(s)
    try:
        # Ordering, not time: the dead domain is tried once, fails after
        # its 3s timeout and backs off (30s at least).  The healthy domain
        # must become active within that back-off, i.e. before the dead
        # domain's second attempt: had it waited behind the dead one, a
        # second "retrying in" would precede its activation.
        wait_active(s, daemon=d, deadline=120)
        err = d.err()
        assert "dead.test" in err and "retrying in" in err, d.describe()
        assert err.count("retrying in") == 1, \
            "healthy domain active only after the dead domain was " \
            "retried:\n" + d.describe()
        assert env.bind.query_txt("mail1._domainkey.dead.test") == []
        assert dkim_roundtrip(s, env.bind, s.domain, log=env.log)
    finally:
        d.stop()
        hole.close()


def test_pidfile_written_removed_and_second_daemon_refused(env):
    s = env.config(extra_domain_lines=(ROTATE,))
    pidfile = os.path.join(env.tmp, "dkimkeyd.pid")
    d = Daemon(s, "--pidfile", pidfile)
    try:
        wait_until(lambda: (read_bytes(pidfile) or b"").strip() ==
                   str(d.pid).encode(), 10,
                   "the pid file to hold %d\n%s" % (d.pid, d.describe()))
        wait_active(s, daemon=d)
        r = run(s, "run", "--pidfile", pidfile, timeout=20)
        assert r.code == 75, r.describe()
        assert str(d.pid) in r.err, "refusal does not name the holder: " + \
            r.describe()
        assert d.alive(), d.describe()
        assert (read_bytes(pidfile) or b"").strip() == str(d.pid).encode()
        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0, d.describe()
        assert not os.path.exists(pidfile), "pid file left behind"
    finally:
        d.stop()
    # A stale pid file (no process holds it) does not stop a new daemon.
    with open(pidfile, "w") as f:
        f.write("999999\n")
    d = Daemon(s, "--pidfile", pidfile)
    try:
        wait_until(lambda: (read_bytes(pidfile) or b"").strip() ==
                   str(d.pid).encode(), 10,
                   "the stale pid file to be taken over\n" + d.describe())
    finally:
        d.stop()
    assert not os.path.exists(pidfile)



def _timed(setup, *args):
    t0 = time.monotonic()
    rc, out, err = run(setup, *args, timeout=120)
    return rc, out, err, time.monotonic() - t0


def test_domain_commands_stay_linear_at_20000_domains(env):
    # 20,000 domains without state: `status --domain` of the last one must
    # cost about what the first one costs (reading the configuration
    # dominates both), not 20,000 lookups of 20,000 names.
    s = env.config()
    n = 20000
    append_config(s, "".join(
        "\n[domain d%05d.scale.test]\nprovider = primary\n"
        "signer = opendkim\nselectors = mail1 mail2\n" % i
        for i in range(n)))
    times = {}
    for name, args in (
            ("configtest", ("configtest",)),
            ("first", ("status", "--domain", "d00000.scale.test")),
            ("last", ("status", "--domain", "d%05d.scale.test" % (n - 1))),
            ("LAST.", ("status", "--domain",
                       "D%05d.SCALE.TEST." % (n - 1)))):
        best = None
        for _ in range(3):
            rc, out, err, t = _timed(s, *args)
            assert rc == 0, "%s: exit %d\n%s%s" % (name, rc, out, err)
            best = t if best is None else min(best, t)
        times[name] = best
    assert "d%05d.scale.test" % (n - 1) in out, out
    # A quadratic lookup took 20x configtest at 20k; the allowance is wide
    # for a loaded machine.
    assert times["last"] < 3 * times["first"] + 0.2, times
    assert times["last"] < 4 * times["configtest"] + 0.2, times
