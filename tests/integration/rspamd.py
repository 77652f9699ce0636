"""A real rspamd (Debian's) on 127.0.0.1 for the signer tests.

Debian's /etc/rspamd/rspamd.conf with LOCAL_CONFDIR, RUNDIR, DBDIR and
LOGDIR in a temporary directory: local.d/dkim_signing.conf holds the
operator's settings and the one include line the README documents for
dkimkeyd's file; every module that fetches remote maps or lists is
disabled, and the resolver is the test BIND, so nothing leaves
127.0.0.0/8.  Stopped by PID.
"""

import os
import re
import signal
import subprocess
import time

from harness import HarnessError, free_port, wait_until

RSPAMD = "/usr/bin/rspamd"
RSPAMC = "/usr/bin/rspamc"
RSPAMADM = "/usr/bin/rspamadm"

# Modules that fetch maps, feeds or lists from the network, or query
# outside DNS lists: off.
REMOTE_MODULES = (
    "rbl", "surbl", "fuzzy_check", "phishing", "asn", "rspamd_update",
    "multimap", "whitelist", "mime_types", "mid", "reputation", "dcc",
    "antivirus", "external_services", "clickhouse", "elastic", "neural",
    "metric_exporter", "metadata_exporter", "history_redis", "greylist",
    "ratelimit", "replies", "bimi", "emails", "spamassassin", "mx_check",
    "url_redirector", "p0f", "trie", "maillist", "hfilter", "dmarc",
    "spf", "dkim", "arc", "aws_s3", "force_actions", "clustering",
    "ip_score", "dynamic_conf", "maps_stats", "fuzzy_collect",
)

INCLUDE = '.include(try=true,priority=1,duplicate=merge) "%s"'


class Rspamd:
    def __init__(self, tmp, dns_port, include_file):
        self.dir = os.path.join(tmp, "rspamd")
        self.etc = os.path.join(self.dir, "etc")
        self.local_d = os.path.join(self.etc, "local.d")
        self.rundir = os.path.join(self.dir, "run")
        self.dbdir = os.path.join(self.dir, "db")
        self.logdir = os.path.join(self.dir, "log")
        for d in (self.local_d, self.rundir, self.dbdir, self.logdir):
            os.makedirs(d, exist_ok=True)
        self.port = free_port()
        self.cport = free_port()
        self.pport = free_port()
        self.include_file = include_file
        self.proc = None
        self.socket = os.path.join(self.dbdir, "rspamd.sock")
        # rspamd -f writes no pid file: the test writes the main pid.
        self.pidfile = os.path.join(self.dir, "main.pid")
        self._write_conf(dns_port)

    def _w(self, name, text):
        with open(os.path.join(self.local_d, name), "w") as f:
            f.write(text)

    def _write_conf(self, dns_port):
        self._w("options.inc",
                'dns { nameserver = ["127.0.0.1:%d"]; timeout = 1s; '
                'retransmits = 1; }\n'
                'local_addrs = "127.0.0.0/8";\n'
                'hs_cache_dir = "%s";\n' % (dns_port, self.dbdir))
        self._w("logging.inc", 'type = "file";\nfilename = "%s";\n'
                'level = "info";\n' % os.path.join(self.logdir,
                                                   "rspamd.log"))
        self._w("worker-normal.inc",
                'bind_socket = "127.0.0.1:%d";\ncount = 1;\n' % self.port)
        self._w("worker-controller.inc",
                'bind_socket = "127.0.0.1:%d";\ncount = 1;\n' % self.cport)
        self._w("worker-proxy.inc",
                'bind_socket = "127.0.0.1:%d";\ncount = 1;\n'
                'milter = false;\n' % self.pport)
        self._w("redis.conf", "")
        for m in REMOTE_MODULES:
            self._w(m + ".conf", "enabled = false;\n")
        # The operator's own settings stay, and the line the README
        # documents brings dkimkeyd's domain entries in.
        self._w("dkim_signing.conf",
                "allow_username_mismatch = true;\n"
                "use_esld = false;\n"
                "try_fallback = false;\n"
                "check_pubkey = false;\n"
                "sign_local = true;\n"
                "sign_authenticated = true;\n"
                + INCLUDE % self.include_file + "\n")

    def start(self, deadline=60):
        cmd = [RSPAMD, "-f", "-u", "root", "-g", "root", "-i",
               "-c", "/etc/rspamd/rspamd.conf"] + self.vars()
        self.out = open(os.path.join(self.dir, "stdout"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.out,
                                     start_new_session=True)
        with open(self.pidfile, "w") as f:
            f.write("%d\n" % self.proc.pid)
        try:
            wait_until(self._ready, time.monotonic() + deadline,
                       "rspamd listening on 127.0.0.1:%d" % self.port,
                       interval=0.3)
        except HarnessError:
            self.stop()
            raise HarnessError("rspamd did not start: %s" % self.log_tail())
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise HarnessError("rspamd exited with %s: %s" % (
                self.proc.returncode, self.log_tail()))
        r = subprocess.run([RSPAMC, "-h", "127.0.0.1:%d" % self.port,
                            "-t", "2", "stat"], capture_output=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        r2 = subprocess.run([RSPAMC, "-h", "127.0.0.1:%d" % self.cport,
                             "-t", "2", "stat"], capture_output=True,
                            timeout=10, stdin=subprocess.DEVNULL)
        return r2.returncode == 0 and os.path.exists(self.socket) and \
            r.returncode in (0, 1)

    def reload_command(self):
        """contrib/rspamd's reload script for this instance (configtest,
        then SIGHUP to the main process), through a wrapper that gives
        it this instance's variables (a configuration line is short)."""
        from harness import REPO
        wrapper = os.path.join(self.dir, "reload")
        # rspamadm configtest starts a resolver from /etc/resolv.conf,
        # whatever the configuration says (seen with strace: a TCP
        # connect to the system's nameserver): run it in a network
        # namespace of its own, where nothing leaves the machine.
        with open(wrapper, "w") as f:
            f.write("exec /usr/bin/unshare -n /bin/sh %s %s %s\n" % (
                os.path.join(REPO, "contrib", "rspamd",
                             "dkimkeyd-rspamd-reload"),
                self.pidfile,
                " ".join(self.vars())))
        return "/bin/sh " + wrapper

    def vars(self):
        return ["--var=LOCAL_CONFDIR=" + self.etc,
                "--var=RUNDIR=" + self.rundir,
                "--var=DBDIR=" + self.dbdir,
                "--var=LOGDIR=" + self.logdir]

    def sign(self, sender, message):
        """The message as rspamd returns it (--mime), signatures added."""
        r = subprocess.run([RSPAMC, "-h", "127.0.0.1:%d" % self.port,
                            "-t", "10", "--ip", "127.0.0.1", "--user",
                            sender, "--from", sender, "--mime"],
                           input=message, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise HarnessError("rspamc failed (%d): %s %s" % (
                r.returncode, r.stdout[-500:], r.stderr[-500:]))
        return r.stdout

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.logdir, "rspamd.log"), "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        try:
            with open(os.path.join(self.dir, "stdout"), "rb") as f:
                lines += f.read().decode(errors="replace").splitlines()
        except OSError:
            pass
        return "\n".join(lines[-n:])

    def log_has(self, pattern):
        try:
            with open(os.path.join(self.logdir, "rspamd.log"), "rb") as f:
                return re.search(pattern, f.read().decode(
                    errors="replace")) is not None
        except OSError:
            return False

    def stop(self, deadline=15):
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


# -- shared by the rspamd and Exim tests -----------------------------------

def use_signer(setup, lines):
    """Replace the [signer opendkim] section write_config wrote by the
    given section lines (named "opendkim" still, so that the domain's
    signer = line stays right)."""
    with open(setup.conf) as f:
        text = f.read()
    start = text.index("[signer opendkim]\n")
    end = text.index("\n\n", start)
    text = text[:start] + "\n".join(["[signer opendkim]"] + list(lines)) + \
        text[end:]
    with open(setup.conf, "w") as f:
        f.write(text)


def crlf(msg):
    return msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def signatures(msg):
    """[(d, s, a)] of every DKIM-Signature of msg, in header order."""
    import email.parser
    import email.policy
    m = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        msg, headersonly=True)
    out = []
    for v in m.get_all("DKIM-Signature") or []:
        tags = {}
        for part in re.sub(r"\s+", "", str(v)).split(";"):
            if "=" in part:
                k, _, val = part.partition("=")
                tags[k] = val
        out.append((tags.get("d"), tags.get("s"), tags.get("a")))
    return out


def verify_all(bind, msg, log=None):
    """Verify every DKIM-Signature of msg against bind (python3-dkim);
    returns [(d, s, a)] and raises AssertionError naming the first that
    fails."""
    import dkim
    from harness import dkim_dnsfunc
    msg = crlf(msg)
    sigs = signatures(msg)
    if not sigs:
        raise AssertionError("message carries no DKIM-Signature:\n%s" %
                             msg[:2000].decode(errors="replace"))
    for i, sig in enumerate(sigs):
        d = dkim.DKIM(msg)
        if not d.verify(idx=i, dnsfunc=dkim_dnsfunc(bind)):
            if log is not None:
                log("signature %d %r does not verify" % (i, sig))
            raise AssertionError("DKIM-Signature d=%s s=%s a=%s does not "
                                 "verify against the test BIND" % sig)
    return sigs


# -- kill at every crash point of one rotation, for a real signer ----------

# retire_after outlasts the run: each rotation ends at the activation of
# mail2, and the previous key stays published meanwhile, as a real
# retire_after keeps it for mail in flight.  A short one let a rotate
# slowed by load go on to revoke mail1 while rspamd's old workers, still
# finishing after the reload, signed with it.
CRASH_DOMAIN_LINES = ("selectors = mail1 mail2", "ttl = 2s",
                      "retire_after = 1h", "propagation_timeout = 5s",
                      "safety_margin = 0s", "rotate_every = 0")


def add_domains(setup, domains, extra=()):
    """Append a [domain] section per name, signed by the section
    use_signer replaced."""
    with open(setup.conf, "a") as f:
        for d in domains:
            f.write("\n".join(["", "[domain %s]" % d, "provider = primary",
                               "signer = opendkim"] +
                              list(CRASH_DOMAIN_LINES) + list(extra)) +
                    "\n")


def _dk(setup, binary, args, crash=None, trace=None, kill_after=None,
        timeout=90):
    import random  # noqa: F401 - kill_after is chosen by the caller
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DKIMKEYD_CRASH")}
    if crash:
        env["DKIMKEYD_CRASH"] = crash
    if trace:
        env["DKIMKEYD_CRASH_TRACE"] = trace
    p = subprocess.Popen([binary, "-c", setup.conf] + list(args),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, text=True)
    try:
        out, err = p.communicate(timeout=kill_after if kill_after else
                                 timeout)
    except subprocess.TimeoutExpired:
        if not kill_after:
            p.kill()
            p.communicate()
            raise AssertionError("dkimkeyd %s still running after %ss" % (
                " ".join(args), timeout))
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


def _active(setup, domain, sel):
    from test_crash import newest, read_state
    k = newest(read_state(os.path.join(setup.state_dir, domain +
                                       ".state")), sel)
    return k is not None and k["active"] and not k["retired"]


def crash_every_point(env, setup, signs, labels=8, random_kills=4,
                      switch_wait=90):
    """One rotation (mail1 -> mail2) of a domain per (crash point,
    occurrence) a traced rotation reaches, plus random_kills at random
    instants, each killed there (SIGKILL) and finished by a rerun; while
    they run, a thread has the live signer sign for every domain, and
    every signature must verify against the test BIND (invariant 1: the
    signer never signs with a key whose record is not served).
    signs(domain) returns a message the real signer signed for domain."""
    import concurrent.futures
    import random
    import threading
    from test_crash import CRASH_BIN
    from harness import DKIMKEYD
    if not os.access(CRASH_BIN, os.X_OK):
        raise HarnessError("crash-point binary %s not found: make crash" %
                           CRASH_BIN)
    zone = env.bind.zones[0]

    def rotate(d, **kw):
        return _dk(setup, CRASH_BIN, ["rotate", "--domain", d], **kw)

    def rotate_ok(d):
        code, out, err = _dk(setup, DKIMKEYD, ["rotate", "--domain", d])
        assert code == 0 and err == "", "rotate %s: exit %d\n%s\n%s" % (
            d, code, out, err)

    # The trace: which points one rotation from mail1 to mail2 reaches.
    trace_dom = "trace." + zone
    add_domains(setup, [trace_dom])
    rotate_ok(trace_dom)
    tfile = os.path.join(env.tmp, "crash.trace")
    t0 = time.monotonic()
    code, out, err = rotate(trace_dom, trace=tfile)
    took = time.monotonic() - t0
    assert code == 0, "traced rotate: exit %d\n%s\n%s" % (code, out, err)
    seen, specs = {}, []
    with open(tfile) as f:
        for name in f.read().split():
            seen[name] = seen.get(name, 0) + 1
            specs.append("%s:%d" % (name, seen[name]))
    rng = random.Random(int(os.environ.get("DKIMKEYD_CRASH_SEED",
                                           random.randrange(1 << 30))))
    kills = [("point", s) for s in specs] + \
        [("random", rng.uniform(0.05, took)) for _ in range(random_kills)]
    doms = ["c%d.%s" % (i, zone) for i in range(len(kills))]
    add_domains(setup, doms)
    failures = []
    stop = threading.Event()
    live = set()

    def watcher():
        while not stop.is_set():
            for d in sorted(live):
                try:
                    msg = signs(d)
                except HarnessError:
                    continue    # the signer busy restarting: no mail
                try:
                    sigs = verify_all(env.bind, msg)
                    assert all(x[0] == d for x in sigs), sigs
                except Exception as e:  # noqa: BLE001 - reported below
                    failures.append("%s: %s" % (d, e))
            stop.wait(0.5)

    def signed(d):
        """signs(d), or None while the signer is busy restarting (rspamd's
        workers after a reload: rspamc sees EOF)."""
        try:
            return signs(d)
        except HarnessError:
            return None

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(rotate_ok, doms))
        # rspamd signs a new domain once its reload has finished.
        deadline = time.monotonic() + switch_wait
        for d in doms + [trace_dom]:
            while not signatures(signed(d) or b""):
                assert time.monotonic() < deadline, "%s not signed" % d
                time.sleep(0.5)
        live.update(doms + [trace_dom])
        th = threading.Thread(target=watcher, daemon=True)
        th.start()

        def one(i):
            d = doms[i]
            kind, what = kills[i]
            if kind == "point":
                code, out, err = rotate(d, crash=what)
            else:
                code, out, err = rotate(d, kill_after=what)
            for _ in range(3):
                if _active(setup, d, "mail2"):
                    break
                rotate_ok(d)
            assert _active(setup, d, "mail2"), \
                "%s: mail2 not active after the reruns (%s %s)" % (
                    d, kind, what)
            return d

        try:
            done = list(pool.map(one, range(len(kills))))
        finally:
            time.sleep(1)
            stop.set()
            th.join(60)
    assert not failures, "%d signatures failed, first: %s" % (
        len(failures), failures[0])
    # After the reruns, each domain signs with mail2 only (rspamd's old
    # workers may need the reload to finish first).
    deadline = time.monotonic() + switch_wait
    for d in done + [trace_dom]:
        while True:
            msg = signed(d)
            sels = [x[1] for x in verify_all(env.bind, msg)] if msg else []
            if sels == ["mail2"]:
                break
            assert time.monotonic() < deadline, \
                "%s still signed with %r after the switch" % (d, sels)
            time.sleep(0.5)
    return len(specs), random_kills
