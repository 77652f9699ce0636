"""Crash safety: SIGKILL at every named crash point and at random instants
during a full rotation and retirement, a kill during key generation, and a
full disk under the state write.

These tests run the crash-point build (make crash: build-crash/dkimkeyd,
named by DKIMKEYD_CRASH_BIN).  DKIMKEYD_CRASH=point:N kills it the Nth time
it reaches the point; DKIMKEYD_CRASH_TRACE=FILE lists the points reached.

The scenario, per domain: rotate to mail1, rotate to mail2, `run --once`
until mail1 is revoked, `run --once` until it is removed.  Many domains
(subdomains of the test zone, each with its own OpenDKIM tables) run it
side by side so that every (point, occurrence) gets its own crash within
the time budget.  After every command the test checks, for that domain:

- at most one TXT RR at each managed selector name, and after a completed
  command exactly the record the state promises;
- the SigningTable points only to a key whose record the test BIND serves
  (p= equal to the key file's public key);
- after a completed command: no temporary files in the state, key or
  table directories, no orphaned key file, every key file loads, and a
  message signed with the key the tables point to verifies (python3-dkim).

Meanwhile a signer thread signs a message for every domain every second
through the key its SigningTable points to and verifies it against the
test BIND; every verification must pass.

The same scenario in CNAME delegation mode (mode = cname, the TXT in an
operator zone, cname_provider keeping the customer's CNAMEs) is killed at
every point and occurrence as well; there the checks add, at every
instant: each customer CNAME is absent or points at its selector's
target, the selector the signer uses has its CNAME and its target serves
the key (the chain a verifier follows), and a CNAME leads to a missing
record only while that key is being removed.

DKIMKEYD_CRASH_SEED fixes the random kills' seed (printed otherwise).
"""

import concurrent.futures
import errno
import json
import os
import random
import signal
import subprocess
import threading
import time

import dkim

from harness import (FOREIGN_KEYTABLE, FOREIGN_SIGNINGTABLE, REPO, Bind,
                     HarnessError, Setup, dkim_roundtrip, dkim_sign_verify,
                     public_p, read_bytes, record_tags, signer_current,
                     zones)
from test_cname import OPERATOR, TARGET, _cname_of, _txt_at

CRASH_BIN = os.environ.get("DKIMKEYD_CRASH_BIN",
                           os.path.join(REPO, "build-crash", "dkimkeyd"))
SELECTORS = ("mail1", "mail2")
TS = ("created", "published", "visible", "active", "retired", "revoked",
      "removed")
WORKERS = 16          # domains driven at the same time
RANDOM_KILLS = 50     # at least this many random kills

# (name, command, goal, due): due means "wait for status next_at first".
PHASES = (
    ("rotate-mail1", "rotate", lambda f: f.goal_active("mail1"), False),
    ("rotate-mail2", "rotate", lambda f: f.goal_active("mail2"), False),
    ("revoke-mail1", "run", lambda f: f.goal_ts("mail1", "revoked"), True),
    ("remove-mail1", "run", lambda f: f.goal_ts("mail1", "removed"), True),
)


def _need_binary():
    if not os.access(CRASH_BIN, os.X_OK):
        raise HarnessError("crash-point binary %s not found: build it with "
                           "`make crash` or set DKIMKEYD_CRASH_BIN" %
                           CRASH_BIN)


# -- state file ------------------------------------------------------------

def read_state(path):
    """Keys of a state file as dicts (timestamps as int), oldest first;
    None when there is no state file."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return parse_state(text)


def parse_state(text):
    keys, cur = [], None
    for line in text.splitlines():
        if line.startswith("key: "):
            sel, kid = line[5:].split()[:2]
            cur = {"selector": sel, "key_id": kid}
            keys.append(cur)
        elif line.strip() == "end":
            cur = None
        elif cur is not None and line.startswith("  ") and ":" in line:
            k, _, v = line.strip().partition(":")
            v = v.split("#", 1)[0].strip()
            cur[k] = int(v) if k in TS else v
    for k in keys:
        for t in TS:
            k.setdefault(t, 0)
    return keys


def newest(keys, sel):
    found = None
    for k in keys or ():
        if k["selector"] == sel:
            found = k
    return found


def kstate(k):
    for t in reversed(TS):
        if k[t]:
            return t
    return "created"


# -- one domain's world ----------------------------------------------------

class Flow:
    """One domain driven through the scenario with the crash-point
    binary, checking the invariants after every command."""

    def __init__(self, env, label, conf, spec=None):
        self.env = env
        self.bind = env.bind
        self.domain = "%s.%s" % (label, env.bind.zones[0])
        self.conf = conf
        self.spec = spec            # (phase, point, occurrence) or None
        self.s = Setup(env.tmp, self.domain)
        tdir = os.path.join(env.tmp, "tables", label)
        self.table_dir = tdir
        self.s.key_table = os.path.join(tdir, "KeyTable")
        self.s.signing_table = os.path.join(tdir, "SigningTable")
        self.s.reloaded = os.path.join(tdir, "reloaded")
        self.kills = 0
        self.commands = 0
        self.signed = 0
        self.live = False
        self.history = []
        self.last_text = ""

    # config text and table files for this domain
    def conf_text(self, algorithm="rsa-2048"):
        os.makedirs(self.table_dir, mode=0o755, exist_ok=True)
        Bind._write(self.s.key_table, FOREIGN_KEYTABLE, 0o644)
        Bind._write(self.s.signing_table, FOREIGN_SIGNINGTABLE, 0o644)
        label = self.domain.split(".")[0]
        return "\n".join([
            "[signer s-%s]" % label,
            "type = opendkim",
            "key_table = %s" % self.s.key_table,
            "signing_table = %s" % self.s.signing_table,
            "reload = /usr/bin/touch %s" % self.s.reloaded,
            "",
            "[domain %s]" % self.domain,
            "provider = primary",
            "signer = s-%s" % label,
            "selectors = mail1 mail2",
            "algorithm = %s" % algorithm,
            "ttl = 2s",
            "retire_after = 2s",
            "propagation_timeout = 5s",
            "safety_margin = 0s",
            "rotate_every = 0",
            "", ""])

    def note(self, msg):
        self.history.append(msg)

    def fail(self, msg):
        raise AssertionError("%s: %s\n  history: %s" % (
            self.domain, msg, "; ".join(self.history[-12:])))

    # -- running dkimkeyd ---------------------------------------------------

    def argv(self, command):
        if command == "rotate":
            args = ["rotate", "--domain", self.domain]
        elif command == "run":
            args = ["run", "--once", "--domain", self.domain]
        else:
            args = list(command)
        return [CRASH_BIN, "-c", self.conf] + args

    def environ(self, crash=None, trace=None):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("DKIMKEYD_CRASH")}
        if crash:
            e["DKIMKEYD_CRASH"] = crash
        if trace:
            e["DKIMKEYD_CRASH_TRACE"] = trace
        return e

    def start(self, command, crash=None, trace=None):
        """Popen of dkimkeyd COMMAND (its output in temp files)."""
        self.commands += 1
        base = os.path.join(self.env.tmp, "out.%s.%d" % (self.domain,
                                                          self.commands))
        out, err = open(base, "w+"), open(base + ".err", "w+")
        p = subprocess.Popen(self.argv(command), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err,
                             env=self.environ(crash, trace))
        p.outfile, p.errfile = out, err
        p.t0 = time.monotonic()
        return p

    def finish(self, p, timeout=60):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("dkimkeyd still running after %ss" % timeout)
        p.elapsed = time.monotonic() - p.t0
        for fh, attr in ((p.outfile, "text"), (p.errfile, "err")):
            fh.seek(0)
            setattr(p, attr, fh.read())
            fh.close()
            os.unlink(fh.name)
        return p

    def cmd(self, command, crash=None, trace=None):
        return self.finish(self.start(command, crash, trace))

    def describe(self, p, what):
        return "%s: exit %s after %.1fs\n--- stdout:\n%s\n--- stderr:\n%s" \
            % (what, p.returncode, p.elapsed, p.text.rstrip(),
               p.err.rstrip())

    # -- the scenario ---------------------------------------------------------

    # backend = postgresql: the Postgres the flows' state lives in.
    pg = None

    def keys(self):
        if Flow.pg is None:
            return read_state(self.s.state_file())
        rows = Flow.pg.psql("SELECT state FROM dk_state WHERE domain = '%s'"
                            % self.domain)
        return parse_state(rows[0][0]) if rows else None

    def goal_active(self, sel):
        k = newest(self.keys(), sel)
        return k is not None and k["active"] and not k["retired"]

    def goal_ts(self, sel, ts):
        k = newest(self.keys(), sel)
        return k is not None and k[ts] != 0

    def wait_due(self):
        """Sleep until the domain's next step is due (status next_at), so
        that the step's crash points are reached by the next command."""
        p = self.cmd(("status", "--domain", self.domain, "--json"))
        if p.returncode != 0:
            self.fail(self.describe(p, "status --json"))
        st = json.loads(p.text)
        d = [x for x in st["domains"] if x["domain"] == self.domain][0]
        if d["next_at"] is not None:
            while time.time() < d["next_at"] + 0.05:
                time.sleep(0.05)

    def phase(self, name, command, goal, due, crash=None, kill_at=None,
              trace=None):
        """Run one phase: first (optionally) a command that dies, by the
        crash point `crash` or by SIGKILL after kill_at seconds, then the
        same command again until the phase's goal is reached (goal None:
        no reruns).  Returns the completed commands' durations."""
        durations = []
        if crash is not None or kill_at is not None:
            if due:
                self.wait_due()
            p = self.start(command, crash=crash)
            if kill_at is not None:
                try:
                    p.wait(timeout=kill_at)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
            self.finish(p)
            if crash is not None and p.returncode != -signal.SIGKILL:
                self.fail(self.describe(p, "%s with DKIMKEYD_CRASH=%s "
                                        "did not die by SIGKILL" % (
                                            name, crash)))
            if p.returncode == -signal.SIGKILL:
                self.kills += 1
                self.note("%s killed (%s)" % (
                    name, crash or "after %.3fs" % kill_at))
            elif p.returncode != 0 or p.err != "":
                self.fail(self.describe(p, name))
            else:
                self.note("%s finished before the kill" % name)
            self.observe(completed=p.returncode == 0)
        if goal is None:
            return durations
        tries = leased = 0
        while not goal(self):
            tries += 1
            if tries > 4:
                self.fail("%s: goal not reached after %d clean runs" % (
                    name, tries - 1))
            if due:
                self.wait_due()
            p = self.cmd(command, trace=trace)
            # PostgreSQL: the killed command's lease runs out first.
            if Flow.pg is not None and p.returncode == 75 and \
                    "leased to" in p.err and leased < 120:
                leased += 1
                tries -= 1
                time.sleep(0.5)
                continue
            if p.returncode != 0 or p.err != "":
                self.fail(self.describe(p, name + " (rerun)"))
            durations.append(p.elapsed)
            self.note("%s ran (%.1fs)" % (name, p.elapsed))
            self.last_text = p.text
            self.observe(completed=True)
        self.observe(completed=True)
        return durations

    # -- invariants -------------------------------------------------------

    def records(self, sel):
        recs = self.bind.query_txt(self.s.selector_name(sel))
        if len(recs) > 1:
            self.fail("invariant 3: %d TXT RRs at %s: %r" % (
                len(recs), self.s.selector_name(sel), recs))
        return recs

    def signer_entry(self):
        """(selector, keyfile) the on-disk tables use, or None."""
        kt = read_bytes(self.s.key_table) or b""
        stt = read_bytes(self.s.signing_table) or b""
        if ("*@" + self.domain).encode() not in stt:
            return None
        try:
            return signer_current(self.s)
        except AssertionError as e:
            self.fail("signer tables inconsistent: %s\nKeyTable:\n%s\n"
                      "SigningTable:\n%s" % (e, kt.decode(), stt.decode()))

    def observe(self, completed):
        recs = {sel: self.records(sel) for sel in SELECTORS}
        # Invariant 1 as the signer sees it: the tables never name a key
        # whose record the (only) authoritative server does not serve.
        cur = self.signer_entry()
        if cur is not None:
            sel, kf = cur
            if not os.path.isfile(kf):
                self.fail("SigningTable uses %s, key file %s is missing" %
                          (sel, kf))
            # The record may have been read just before a concurrent
            # change: read it again when it differs.
            want = public_p(kf)
            got = [record_tags(r).get("p") for r in recs.get(sel, [])]
            if got != [want]:
                got = [record_tags(r).get("p") for r in self.records(sel)]
            if got != [want]:
                self.fail("invariant 1: SigningTable uses %s (%s) but %s "
                          "serves p=%r" % (sel, kf, self.s.selector_name(
                              sel), got))
        if completed:
            self.check_completed(cur)

    def check_completed(self, cur):
        keys = self.keys()
        if keys is None:
            keys = []
        # DNS holds exactly what the state promises.
        for sel in SELECTORS:
            k = newest(keys, sel)
            recs = self.records(sel)
            st = kstate(k) if k is not None else None
            if st in (None, "removed", "created"):
                if st == "created" or not recs:
                    continue
                self.fail("%s is %s in the state but DNS has %r" % (
                    sel, st, recs))
            if len(recs) != 1:
                self.fail("%s is %s in the state; DNS has %r" % (
                    sel, st, recs))
            p = record_tags(recs[0]).get("p")
            want = "" if st == "revoked" else k["public"]
            if p != want:
                self.fail("%s is %s; DNS serves p=%r, expected %r" % (
                    sel, st, p, want))
        # The tables name the active key, and nothing when none is.
        act = [k for k in keys if k["active"] and not k["retired"]]
        if len(act) > 1:
            self.fail("two active keys: %r" % act)
        if act and (cur is None or cur != (act[0]["selector"],
                                           act[0]["file"])):
            self.fail("state says %s (%s) is active, tables say %r" % (
                act[0]["selector"], act[0]["file"], cur))
        # Temp files.
        self.check_no_temp()
        # Orphans: every key file is a live key of the state; removed
        # keys' files are gone; every key file is complete.
        files = set()
        for fn in os.listdir(self.s.key_dir):
            if fn.startswith(self.domain + ".") and fn.endswith(".pem"):
                files.add(os.path.join(self.s.key_dir, fn))
        live = {k["file"] for k in keys if not k["removed"]}
        dead = {k["file"] for k in keys if k["removed"]}
        if files - live:
            self.fail("orphaned key files: %r" % sorted(files - live))
        if files & dead:
            self.fail("removed keys' files still exist: %r" %
                      sorted(files & dead))
        if live - files:
            self.fail("key files of live keys missing: %r" %
                      sorted(live - files))
        for f in files:
            r = subprocess.run(["openssl", "pkey", "-noout", "-in", f],
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                self.fail("key file %s does not load: %s" % (
                    f, r.stderr.decode().strip()))
        for path, lines in ((self.s.key_table, FOREIGN_KEYTABLE),
                            (self.s.signing_table, FOREIGN_SIGNINGTABLE)):
            have = (read_bytes(path) or b"").decode().splitlines()
            for line in lines.splitlines():
                if line not in have:
                    self.fail("%s lost the line %r" % (path, line))
        if cur is not None and not self.roundtrip():
            self.fail("a message signed with %s (%s) does not verify" %
                      cur)

    def roundtrip(self):
        """Does a message signed with the tables' key verify?"""
        return dkim_roundtrip(self.s, self.bind, self.domain,
                              log=self.note)

    def dkim_txt(self, name):
        """The TXT records a verifier finds at name."""
        recs = self.bind.query_txt(name)
        if len(recs) > 1:
            raise AssertionError("%d TXT RRs at %s" % (len(recs), name))
        return recs

    def sign_verify(self, sel, kf):
        """Sign a message with key file kf as sel and verify it through
        dkim_txt; raises AssertionError when it does not verify."""
        try:
            with open(kf, "rb") as fh:
                pem = fh.read()
        except FileNotFoundError:
            raise AssertionError("the SigningTable's key %s is gone" % kf)
        msg = (b"From: a@%s\r\nTo: b@example.org\r\nSubject: s\r\n\r\n"
               b"body\r\n") % self.domain.encode()
        sig = dkim.sign(msg, sel.encode(), self.domain.encode(), pem,
                        include_headers=[b"from", b"to", b"subject"])

        def dnsfunc(name, timeout=5):
            if isinstance(name, bytes):
                name = name.decode("ascii")
            txts = self.dkim_txt(name)
            return txts[0].encode("ascii") if txts else None
        if not dkim.verify(sig + msg, dnsfunc=dnsfunc):
            raise AssertionError("message signed with %s (%s) does not "
                                 "verify against %s" % (sel, kf,
                                                        self.bind.addr()))

    def check_no_temp(self):
        bad = []
        for fn in os.listdir(self.s.state_dir):
            if self.domain in fn and (".tmp" in fn or fn.startswith(".")):
                bad.append(os.path.join(self.s.state_dir, fn))
        for fn in os.listdir(self.s.key_dir):
            if self.domain in fn and (".tmp" in fn or fn.startswith(".")):
                bad.append(os.path.join(self.s.key_dir, fn))
        for fn in os.listdir(self.table_dir):
            if ".tmp" in fn or fn.startswith("."):
                bad.append(os.path.join(self.table_dir, fn))
        if bad:
            self.fail("temporary files left behind: %r" % bad)

    def scenario(self, crash_phase=None, crash=None, kills=None, rng=None):
        """The whole scenario.  crash: kill the first command of
        crash_phase at that crash point; kills: {phase: expected
        duration} for kills at random instants (several per phase)."""
        self.observe(completed=True)
        for name, command, goal, due in PHASES:
            if kills is not None:
                # Up to three kills at random instants, then clean runs.
                for _ in range(rng.randint(1, 3)):
                    if goal(self):
                        break
                    self.phase(name, command, None, due,
                               kill_at=rng.uniform(0, kills[name]))
            self.phase(name, command, goal, due,
                       crash=crash if name == crash_phase else None)


class CnameFlow(Flow):
    """A cname-mode domain (a subdomain of the customer zone): its TXT
    records live at TARGET in the operator's zone, and cname_provider
    points the customer's selector names at them."""

    def conf_text(self, algorithm="rsa-2048"):
        return Flow.conf_text(self, algorithm).rstrip("\n") + "\n" + \
            "\n".join(["mode = cname", "cname_target = " + TARGET,
                       "cname_provider = customer", "", ""])

    def target(self, sel):
        return TARGET.format(selector=sel, domain=self.domain)

    def cname(self, sel):
        """The customer's CNAME at sel's name: its target or None."""
        t = _cname_of(self.env, self.s.selector_name(sel))
        if t not in (None, self.target(sel)):
            self.fail("%s is a CNAME to %s, expected %s or none" % (
                self.s.selector_name(sel), t, self.target(sel)))
        return t

    def records(self, sel):
        # The key's record is at the target, never at the customer's
        # name (where the CNAME is).
        if _txt_at(self.env, self.s.selector_name(sel)):
            self.fail("TXT written at the customer's name %s" %
                      self.s.selector_name(sel))
        recs = _txt_at(self.env, self.target(sel))
        if len(recs) > 1:
            self.fail("invariant 3: %d TXT RRs at %s: %r" % (
                len(recs), self.target(sel), recs))
        return recs

    def dkim_txt(self, name, depth=4):
        # As a resolver: the TXT at the name, else where its CNAME leads
        # (BIND answers a CNAME into another zone with the CNAME alone).
        recs = Flow.dkim_txt(self, name)
        if recs or depth == 0:
            return recs
        t = _cname_of(self.env, name)
        return self.dkim_txt(t, depth - 1) if t else []

    def roundtrip(self):
        try:
            self.sign_verify(*signer_current(self.s))
        except AssertionError as e:
            self.note(str(e))
            return False
        return True

    def observe(self, completed):
        keys = self.keys() or []
        cnames = {sel: self.cname(sel) for sel in SELECTORS}
        # The chain a verifier follows: the signer's selector has its
        # CNAME (its record at the target is checked by Flow.observe).
        cur = self.signer_entry()
        if cur is not None and cnames[cur[0]] is None:
            self.fail("the signer uses %s (%s) but %s has no CNAME" % (
                cur[0], cur[1], self.s.selector_name(cur[0])))
        for sel in SELECTORS:
            k = newest(keys, sel)
            st = kstate(k) if k is not None else None
            # The CNAME goes in after the record and stays when the
            # record is deleted: it leads nowhere only from removal on.
            if cnames[sel] is not None and not self.records(sel) and \
                    st not in ("revoked", "removed"):
                self.fail("%s CNAME %s, which has no record, while %s is "
                          "%s" % (self.s.selector_name(sel), cnames[sel],
                                  sel, st))
            # A key is published only once its CNAME is in.
            if completed and cnames[sel] is None and st not in (
                    None, "created"):
                self.fail("%s is %s in the state but %s has no CNAME" % (
                    sel, st, self.s.selector_name(sel)))
        Flow.observe(self, completed)


# -- the signer in the loop ------------------------------------------------

class Signer(threading.Thread):
    """Signs a message for every live flow every second through the key
    its SigningTable points to, and verifies it against the test BIND."""

    def __init__(self, flows):
        super().__init__(daemon=True)
        self.flows = flows
        self.stop = threading.Event()
        self.failures = []
        self.transient = 0
        self.ok = 0
        self.pems = {}

    def tables(self, f):
        # A reader may land between the KeyTable and the SigningTable
        # rename of a concurrent switch: look again a moment later.
        for i in range(4):
            stt = read_bytes(f.s.signing_table) or b""
            if ("*@" + f.domain).encode() not in stt:
                return None
            try:
                return signer_current(f.s)
            except AssertionError as e:
                if i == 3:
                    raise AssertionError("tables stay inconsistent: %s" %
                                         e)
                self.transient += 1
                time.sleep(0.03)

    def sign_one(self, f):
        cur = self.tables(f)
        if cur is None:
            return
        f.sign_verify(*cur)
        f.signed += 1
        self.ok += 1

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            for f in list(self.flows):
                if not f.live:
                    continue
                try:
                    self.sign_one(f)
                except Exception as e:  # noqa: BLE001 - all are failures
                    self.failures.append("%s: %s (history: %s)" % (
                        f.domain, e, "; ".join(f.history[-6:])))
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


# -- drivers ---------------------------------------------------------------

def write_conf(env, flows, algorithm="rsa-2048", state_dir=None,
               cname=False):
    """One configuration holding every flow's domain; cname: the
    records go into OPERATOR, and provider customer writes the CNAMEs
    in the customer zone (the test zone)."""
    s = Setup(env.tmp, env.bind.zones[0])
    for d in (state_dir or s.state_dir, s.key_dir):
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
    Bind._write(s.tsig_key_file, env.bind.key_text, 0o600)
    text = "\n".join([
        "; dkimkeyd crash-safety test configuration",
        "[dkimkeyd]",
        "state_dir = %s" % (state_dir or s.state_dir),
        "key_dir = %s" % s.key_dir,
        "",
        "[provider primary]",
        "type = rfc2136",
        "server = %s" % env.bind.addr(),
        "tsig_key_file = %s" % s.tsig_key_file,
        "zone = %s" % (OPERATOR if cname else env.bind.zones[0]),
        "probe_servers = %s" % env.bind.addr(),
        "timeout = 2s",
        "", ""])
    if cname:
        text += "\n".join([
            "[provider customer]",
            "type = rfc2136",
            "server = %s" % env.bind.addr(),
            "tsig_key_file = %s" % s.tsig_key_file,
            "zone = %s" % env.bind.zones[0],
            "probe_servers = %s" % env.bind.addr(),
            "timeout = 2s",
            "", ""])
    text += "".join(f.conf_text(algorithm) for f in flows)
    if Flow.pg is not None:
        ci = Flow.pg.write_conninfo(os.path.join(env.tmp, "conninfo"))
        text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\nbackend = "
                            "postgresql\nconninfo_file = %s\nlease_time = "
                            "30s\n" % ci, 1)
    Bind._write(s.conf, text, 0o644)
    if state_dir:
        for f in flows:
            f.s.state_dir = state_dir
    return s.conf


def run_flows(flows, job):
    """Run job(flow) for every flow, WORKERS at a time, with the signer
    thread signing through each flow's tables meanwhile."""
    signer = Signer(flows)
    signer.start()
    errors = []

    def one(f):
        f.live = True
        try:
            job(f)
        finally:
            f.live = False

    try:
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
            futs = {ex.submit(one, f): f for f in flows}
            for fut in concurrent.futures.as_completed(futs):
                e = fut.exception()
                if e is not None:
                    errors.append(e)
    finally:
        signer.stop.set()
        signer.join(10)
    if errors:
        raise AssertionError("%d of %d domains failed; first: %s" % (
            len(errors), len(flows), errors[0]))
    if signer.failures:
        raise AssertionError("signer in the loop: %d of %d signed messages "
                             "failed; first: %s" % (
                                 len(signer.failures),
                                 len(signer.failures) + signer.ok,
                                 signer.failures[0]))
    return signer


def reference(env, cls=Flow):
    """The scenario once without kills (domains of class cls), tracing
    the crash points each phase's command reaches: ([(phase, point,
    occurrence)], {phase: duration})."""
    f = cls(env, "ref", None)
    f.conf = write_conf(env, [f], cname=cls is CnameFlow)
    pairs, durations = [], {}
    f.observe(completed=True)
    for name, command, goal, due in PHASES:
        trace = os.path.join(env.tmp, "trace." + name)
        d = f.phase(name, command, goal, due, trace=trace)
        if len(d) != 1:
            raise AssertionError("reference run: %s took %d commands" % (
                name, len(d)))
        durations[name] = d[0]
        seen = {}
        with open(trace) as fh:
            for point in fh.read().split():
                seen[point] = seen.get(point, 0) + 1
                pairs.append((name, point, seen[point]))
    return pairs, durations


POINTS = ("before-key-save", "after-key-save", "before-commit",
          "after-commit", "before-publish", "after-publish",
          "before-activate", "after-activate", "before-revoke",
          "after-revoke", "before-remove", "after-remove", "after-destroy")


def every_point(env, cls, label, points):
    """Trace the scenario with domains of class cls, then kill one
    domain (labelNN) at each (phase, point, occurrence) reached."""
    _need_binary()
    pairs, _ = reference(env, cls)
    points_seen = sorted({p for _, p, _ in pairs})
    for want in points:
        assert want in points_seen, "crash point %s never reached: %r" % (
            want, points_seen)
    flows = [cls(env, "%s%02d" % (label, i), None, spec)
             for i, spec in enumerate(pairs)]
    conf = write_conf(env, flows, cname=cls is CnameFlow)
    for f in flows:
        f.conf = conf

    def job(f):
        phase, point, n = f.spec
        f.scenario(crash_phase=phase, crash="%s:%d" % (point, n))
    signer = run_flows(flows, job)
    kills = sum(f.kills for f in flows)
    assert kills == len(pairs), (kills, len(pairs))
    assert all(f.signed > 0 for f in flows), \
        "the signer thread never signed for %r" % [
            f.domain for f in flows if f.signed == 0]
    print("crash%s: %d crash points x occurrences killed (%d distinct "
          "points, %s), %d messages signed and verified meanwhile, %d "
          "transient table reads" % (
              " (cname mode)" if cls is CnameFlow else "",
              len(pairs), len(points_seen), ", ".join(
                  "%s %d" % (ph, len([1 for x in pairs if x[0] == ph]))
                  for ph, _, _, _ in PHASES),
              signer.ok, signer.transient), flush=True)


def test_crash_at_every_point_and_occurrence(env):
    every_point(env, Flow, "c", POINTS)


def test_crash_at_every_point_and_occurrence_on_postgresql(env):
    """The same kills with backend = postgresql: the state in a real
    PostgreSQL, every commit a compare-and-swap under a lease; a killed
    command's lease is taken over by the next command once it expires."""
    from pg import Postgres
    pg = Postgres().start().create_db()
    Flow.pg = pg
    try:
        s = Setup(env.tmp, env.bind.zones[0])
        write_conf(env, [])
        r = subprocess.run([CRASH_BIN, "-c", s.conf, "db", "init"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        every_point(env, Flow, "p", POINTS)
    finally:
        Flow.pg = None
        pg.cleanup()


@zones("example.test", OPERATOR)
def test_crash_cname_at_every_point_and_occurrence(env):
    # The TSIG key writes the customer's CNAMEs (cname_provider).
    env.bind.allow_update_types("CNAME")
    every_point(env, CnameFlow, "n", POINTS + ("before-cname",
                                               "after-cname"))


def test_crash_at_random_instants(env):
    _need_binary()
    seed = int(os.environ.get("DKIMKEYD_CRASH_SEED") or
               int.from_bytes(os.urandom(4), "big"))
    print("crash: random kills with DKIMKEYD_CRASH_SEED=%d" % seed,
          flush=True)
    env.log("DKIMKEYD_CRASH_SEED=%d" % seed)
    _, durations = reference(env)
    # Over the whole command, a little past its usual end as well.
    kills_at = {k: v * 1.1 for k, v in durations.items()}
    total, batch, signed = 0, 0, 0
    while total < RANDOM_KILLS:
        batch += 1
        assert batch <= 4, "only %d random kills in %d batches" % (
            total, batch - 1)
        flows = [Flow(env, "r%d%02d" % (batch, i), None)
                 for i in range(WORKERS)]
        conf = write_conf(env, flows)
        rngs = {}
        for i, f in enumerate(flows):
            f.conf = conf
            rngs[f] = random.Random(seed * 1000 + batch * 100 + i)

        def job(f):
            f.scenario(kills=kills_at, rng=rngs[f])
        signer = run_flows(flows, job)
        total += sum(f.kills for f in flows)
        signed += signer.ok
    print("crash: %d random kills (seed %d), %d messages signed and "
          "verified meanwhile" % (total, seed, signed), flush=True)


def test_kill_during_key_generation(env):
    _need_binary()
    rng = random.Random(int(os.environ.get("DKIMKEYD_CRASH_SEED") or
                            int.from_bytes(os.urandom(4), "big")))
    f = Flow(env, "gen", None)
    f.conf = write_conf(env, [f], algorithm="rsa-4096")
    kills = 0
    for sel in SELECTORS:
        for _ in range(4):
            p = f.start("rotate")
            try:
                p.wait(timeout=rng.uniform(0.05, 0.3))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
            f.finish(p)
            if p.returncode == -signal.SIGKILL:
                kills += 1
            elif p.returncode != 0 or p.err != "":
                f.fail(f.describe(p, "rotate"))
            f.observe(completed=p.returncode == 0)
            # Whatever the kill left: every key file is whole.
            for fn in os.listdir(f.s.key_dir):
                path = os.path.join(f.s.key_dir, fn)
                if fn.endswith(".pem"):
                    r = subprocess.run(["openssl", "pkey", "-noout", "-in",
                                        path], capture_output=True,
                                       timeout=30)
                    assert r.returncode == 0, \
                        "partial key file %s: %s" % (path, r.stderr)
            if f.goal_active(sel):
                break
        tries = 0
        while not f.goal_active(sel):
            tries += 1
            assert tries <= 3, "rotate to %s did not complete" % sel
            k = newest(f.keys(), sel)
            resumed = k is not None and not k["active"]
            p = f.cmd("rotate")
            assert p.returncode == 0 and p.err == "", \
                f.describe(p, "rotate")
            # A kill before the commit leaves no key or a whole orphan.
            assert resumed or "generated" in p.text or \
                "adopting" in p.text, p.text
            f.observe(completed=True)
        k = newest(f.keys(), sel)
        assert k["algorithm"] == "rsa-4096", k
        assert public_p(k["file"]) == k["public"], k
        ok, _ = dkim_sign_verify(env.bind, f.domain, sel, k["file"])
        assert ok, "rsa-4096 key %s does not verify" % k["file"]
    assert kills >= 4, "only %d kills during key generation" % kills
    print("crash: %d kills during RSA-4096 key generation" % kills,
          flush=True)


def _fill(path):
    """Fill the file system holding path; returns the filler's path."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # Also the last partial page.
        try:
            while os.write(fd, b"\0"):
                pass
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    finally:
        os.close(fd)
    return filler


def test_disk_full_during_state_write(env):
    _need_binary()
    mnt = os.path.join(env.tmp, "statefs")
    os.makedirs(mnt, mode=0o700)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=64k,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        print("crash: SKIPPED disk-full test: cannot mount a tmpfs (%s)" %
              r.stderr.strip(), flush=True)
        return
    try:
        _disk_full(env, mnt)
    finally:
        subprocess.run(["umount", mnt], capture_output=True, timeout=30)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", mnt], capture_output=True,
                           timeout=30)


def _dns(f):
    return [f.bind.txt_rrset(f.s.selector_name(x)) for x in SELECTORS]


def _disk_full(env, mnt):
    f = Flow(env, "full", None)
    f.conf = write_conf(env, [f], state_dir=mnt)
    f.phase("rotate-mail1", "rotate", lambda x: x.goal_active("mail1"),
            False)
    sf = f.s.state_file()

    # 1. The first commit of a rotation fails: exit 74, the state file
    # byte-identical, no DNS write at all; the key left behind is adopted
    # by the rerun.
    filler = _fill(mnt)
    state0, dns0 = read_bytes(sf), _dns(f)
    tables0 = (read_bytes(f.s.key_table), read_bytes(f.s.signing_table))
    p = f.cmd("rotate")
    assert p.returncode == 74, f.describe(p, "rotate on a full disk")
    assert "state" in p.err, f.describe(p, "does not name the state")
    assert read_bytes(sf) == state0, "state file changed on a full disk"
    assert _dns(f) == dns0, "DNS written although the state write failed"
    assert (read_bytes(f.s.key_table), read_bytes(f.s.signing_table)) == \
        tables0, "signer switched although the state write failed"
    f.observe(completed=False)
    os.unlink(filler)
    f.phase("rotate-mail2", "rotate", lambda x: x.goal_active("mail2"),
            False)
    assert "adopting" in f.last_text, \
        "the key saved before the failed commit was not adopted:\n" + \
        f.last_text
    # 2. The disk fills while a rotation waits for caches to drain: the
    # activation's commit fails (74); the state keeps the last commit.
    # Wait for mail2 to be removable first, so mail1 is free again.
    f.phase("revoke-mail1", "run", lambda x: x.goal_ts("mail1", "revoked"),
            True)
    f.phase("remove-mail1", "run", lambda x: x.goal_ts("mail1", "removed"),
            True)
    k1 = newest(f.keys(), "mail1")
    while time.time() < k1["removed"] + 4:
        time.sleep(0.1)
    p = f.start("rotate")
    deadline = time.monotonic() + 30
    while True:
        k = newest(read_state(sf), "mail1")
        if k["key_id"] != k1["key_id"] and k["visible"]:
            break
        assert p.poll() is None, f.describe(f.finish(p), "rotate")
        assert time.monotonic() < deadline, "rotation never got visible"
        time.sleep(0.01)
    filler = _fill(mnt)
    state1 = read_bytes(sf)
    f.finish(p)
    assert p.returncode == 74, f.describe(p, "activation on a full disk")
    assert read_bytes(sf) == state1, "state file changed on a full disk"
    dns1 = _dns(f)
    f.observe(completed=False)
    time.sleep(1.5)
    assert _dns(f) == dns1, "DNS changed after the failed commit"
    os.unlink(filler)
    f.phase("rotate-mail1", "rotate", lambda x: x.goal_active("mail1"),
            False)
    # 3. The revocation's commit fails after the UPDATE: the rerun
    # revokes again (idempotent) and commits.
    f.wait_due()
    filler = _fill(mnt)
    state2 = read_bytes(sf)
    p = f.cmd("run")
    assert p.returncode == 74, f.describe(p, "revoke on a full disk")
    assert read_bytes(sf) == state2, "state file changed on a full disk"
    f.observe(completed=False)
    os.unlink(filler)
    f.phase("revoke-mail2", "run", lambda x: x.goal_ts("mail2", "revoked"),
            True)
    print("crash: disk full at three commits: exit 74, state intact, "
          "reruns complete", flush=True)
