"""Integration test harness for dkimkeyd.

Starts a real BIND 9 on 127.0.0.1 (free port, temporary directory, TSIG
update-policy), writes dkimkeyd configurations pointing at it, runs the
dkimkeyd binary, queries and changes the test zone with dnspython, and
signs and verifies messages with python3-dkim against the test server as
an independent check of the keys dkimkeyd publishes and activates.

Only 127.0.0.1 is ever contacted.  Every process started here is stopped
by its PID.  Waits are polls on conditions with deadlines, never fixed
sleeps.
"""

import atexit
import base64
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import dkim
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

NAMED = os.environ.get("NAMED", "/usr/sbin/named")
TSIG_KEYGEN = os.environ.get("TSIG_KEYGEN", "/usr/sbin/tsig-keygen")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DKIMKEYD = os.environ.get("DKIMKEYD", os.path.join(REPO, "dkimkeyd"))
KEEP = os.environ.get("DKIMKEYD_KEEP", "") not in ("", "0")

# A syntactically valid DKIM key record that no test configuration manages:
# it must survive every run untouched (invariant 5).
FOREIGN_SELECTOR = "other"
FOREIGN_RECORD = ("v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMIW"
                  "nOTHERKEYnOTMANAGEDbyDKIMKEYDxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxwIDAQAB")

TSIG_KEYNAME = "dkimkeyd-test"


class HarnessError(Exception):
    pass


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        finally:
            t.close()
            u.close()
    raise HarnessError("no free port on 127.0.0.1")


def wait_until(pred, deadline, what, interval=0.1):
    """Poll pred() until it returns a true value (returned) or deadline
    seconds pass (HarnessError naming what was awaited)."""
    end = time.monotonic() + deadline
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= end:
            msg = "timed out after %ss waiting for %s" % (deadline, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise HarnessError(msg)
        time.sleep(interval)


def split_txt(value):
    """Split a record into character-strings of at most 255 octets."""
    if isinstance(value, str):
        value = value.encode("ascii")
    return [value[i:i + 255] for i in range(0, len(value), 255)] or [b""]


_live = set()


def _die_with_parent():
    """preexec_fn: named gets SIGTERM if the harness dies (even by
    SIGKILL), so no test server outlives its test run."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, Linux only
        pass


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def exit_cleanly_on_signals():
    """Turn SIGTERM and SIGHUP into SystemExit so that finally blocks and
    atexit stop named and remove temporary directories."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)


def _stop_all():
    for b in list(_live):
        try:
            b.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


class Bind:
    """A throwaway BIND 9 on 127.0.0.1:port serving zones from a temp dir.

    Each zone Z has: SOA (TTL 2, negative TTL 1), NS ns1.Z. with ns1.Z A
    127.0.0.1, and the foreign record other._domainkey.Z; the TSIG key may
    update TXT records anywhere in it.
    """

    def __init__(self, zones=("example.test",), keyname=TSIG_KEYNAME,
                 algorithm="hmac-sha256", port=None):
        self.zones = [z.rstrip(".").lower() for z in zones]
        self.keyname = keyname
        self.algorithm = algorithm
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="dkimkeyd-bind-")
        self.proc = None
        self.log_path = os.path.join(self.dir, "named.log")
        self.key_path = os.path.join(self.dir, "tsig.key")
        self._log = None
        out = subprocess.run([TSIG_KEYGEN, "-a", algorithm, keyname],
                             check=True, capture_output=True, text=True,
                             timeout=30).stdout
        m = re.search(r'secret\s+"([^"]+)"', out)
        if not m:
            raise HarnessError("cannot parse tsig-keygen output: %r" % out)
        self.secret = m.group(1)
        self.key_text = out
        self._write(self.key_path, out, 0o600)
        for z in self.zones:
            self._write(os.path.join(self.dir, z + ".zone"),
                        self._zone_text(z), 0o644)
        self._write(os.path.join(self.dir, "named.conf"), self._conf_text(),
                    0o644)

    @staticmethod
    def _write(path, text, mode):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    @staticmethod
    def _zone_text(z):
        return (
            "$TTL 2\n"
            "@\t2\tIN\tSOA\tns1.{z}. hostmaster.{z}. 1 3600 600 86400 1\n"
            "@\t\tIN\tNS\tns1.{z}.\n"
            "ns1\t\tIN\tA\t127.0.0.1\n"
            "{sel}._domainkey\tIN\tTXT\t\"{rec}\"\n"
        ).format(z=z, sel=FOREIGN_SELECTOR, rec=FOREIGN_RECORD)

    def _conf_text(self):
        d = self.dir
        zones = "".join(
            'zone "{z}" {{\n'
            '\ttype primary;\n'
            '\tfile "{d}/{z}.zone";\n'
            '\tupdate-policy {{ grant {k} zonesub TXT; }};\n'
            '}};\n'.format(z=z, d=d, k=self.keyname) for z in self.zones)
        return (
            'options {{\n'
            '\tdirectory "{d}";\n'
            '\tpid-file "{d}/named.pid";\n'
            '\tlisten-on port {p} {{ 127.0.0.1; }};\n'
            '\tlisten-on-v6 {{ none; }};\n'
            '\trecursion no;\n'
            '\tallow-transfer {{ none; }};\n'
            '\tnotify no;\n'
            '\tdnssec-validation no;\n'
            '\tsession-keyfile "{d}/session.key";\n'
            '\tkey-directory "{d}";\n'
            '\tmanaged-keys-directory "{d}";\n'
            '}};\n'
            'controls {{ }};\n'
            'include "{d}/tsig.key";\n'
            '{zones}'
        ).format(d=d, p=self.port, zones=zones)

    def allow_update_types(self, *types):
        """Restart with the TSIG key allowed to update these types too
        (the harness grants TXT only: what dkimkeyd writes)."""
        path = os.path.join(self.dir, "named.conf")
        with open(path) as f:
            text = f.read()
        self.stop()
        self._write(path, text.replace("zonesub TXT;", "zonesub %s;" % " ".join(
            ("TXT",) + types)), 0o644)
        self.start()

    # -- process control ------------------------------------------------

    def start(self, deadline=20):
        if self.proc is not None:
            raise HarnessError("named already running")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [NAMED, "-g", "-n", "1", "-c", os.path.join(self.dir,
                                                        "named.conf")],
            stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.dir,
            preexec_fn=_die_with_parent)
        _live.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("named exited with status %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                r = self.query(self.zones[0], "SOA", tcp=False, timeout=0.5)
            except (dns.exception.Timeout, OSError):
                return False
            return r.rcode() == dns.rcode.NOERROR and len(r.answer) > 0

        try:
            wait_until(ready, deadline, "named to serve %s on port %d" % (
                self.zones[0], self.port))
        except HarnessError as e:
            self.stop()
            raise HarnessError("%s\n%s" % (e, self.log_tail()))
        return self

    def stop(self, deadline=10):
        p = self.proc
        if p is None:
            return
        self.proc = None
        try:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
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
            return "(no named log)"
        return "named log (last %d lines):\n%s" % (n, "\n".join(lines[-n:]))

    # -- DNS helpers ------------------------------------------------------

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def query(self, name, rdtype, tcp=True, timeout=3):
        q = dns.message.make_query(name, rdtype)
        q.flags &= ~dns.flags.RD
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port,
                                 timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def txt_rrset(self, name):
        """(ttl, [tuple of character-strings per RR]) of name's TXT RRset
        over TCP, or (None, []) when absent."""
        r = self.query(name, "TXT")
        if r.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise HarnessError("TXT %s: rcode %s" % (
                name, dns.rcode.to_text(r.rcode())))
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return rrset.ttl, [tuple(rd.strings) for rd in rrset]
        return None, []

    def query_txt(self, name):
        """TXT records at name as a list of strings (character-strings of
        each RR joined)."""
        _, rrs = self.txt_rrset(name)
        return [b"".join(s).decode("ascii") for s in rrs]

    def zone_of(self, name):
        n = name.rstrip(".").lower()
        best = None
        for z in self.zones:
            if n == z or n.endswith("." + z):
                if best is None or len(z) > len(best):
                    best = z
        if best is None:
            raise HarnessError("%s is in no zone of this server" % name)
        return best

    def tsig_key(self):
        return dns.tsig.Key(self.keyname, self.secret, self.algorithm)

    def _update(self, name, build):
        zone = self.zone_of(name)
        u = dns.update.UpdateMessage(zone, keyring=self.tsig_key())
        build(u, dns.name.from_text(name))
        r = dns.query.tcp(u, "127.0.0.1", port=self.port, timeout=5)
        if r.rcode() != dns.rcode.NOERROR:
            raise HarnessError("UPDATE %s: %s" % (
                name, dns.rcode.to_text(r.rcode())))

    def set_txt(self, name, value, ttl=2):
        """Replace name's TXT RRset with one record (behind dkimkeyd's
        back)."""
        rd = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT,
                                     split_txt(value))
        self._update(name, lambda u, n: u.replace(n, ttl, rd))

    def delete_txt(self, name):
        self._update(name, lambda u, n: u.delete(n, "TXT"))


# -- dkimkeyd configuration and invocation ---------------------------------

class Setup:
    """Paths of one dkimkeyd configuration written by write_config."""

    def __init__(self, tmp, domain):
        self.tmp = tmp
        self.domain = domain
        self.conf = os.path.join(tmp, "dkimkeyd.conf")
        self.state_dir = os.path.join(tmp, "state")
        self.key_dir = os.path.join(tmp, "keys")
        self.key_table = os.path.join(tmp, "KeyTable")
        self.signing_table = os.path.join(tmp, "SigningTable")
        self.reloaded = os.path.join(tmp, "reloaded")
        self.tsig_key_file = os.path.join(tmp, "update.key")
        self.foreign_tables = False
        self.ttl = None
        self.signer = "opendkim"
        self.signer_dir = os.path.join(tmp, "signer")

    def state_file(self, domain=None):
        return os.path.join(self.state_dir, (domain or self.domain) +
                            ".state")

    def selector_name(self, selector, domain=None):
        return "%s._domainkey.%s" % (selector, domain or self.domain)


FOREIGN_KEYTABLE = ("# managed by hand\n"
                    "other.invalid other.invalid:sel:/etc/opendkim/keys/"
                    "other.private\n")
FOREIGN_SIGNINGTABLE = "# managed by hand\n*@other.invalid other.invalid\n"


def write_config(tmp, bind, domain="example.test", algorithm="rsa-2048",
                 retire_after="3s", discovery=False, selectors="mail1 mail2",
                 ttl="2s", propagation_timeout="10s", safety_margin="1s",
                 tables=True, extra_domain_lines=(), signer="opendkim",
                 title="dkimkeyd integration test configuration"):
    """Write tmp/dkimkeyd.conf for domain served by bind and return a
    Setup.  discovery=True leaves out zone and probe_servers and lets
    dkimkeyd find them from a resolver (the test server).  tables=True
    pre-creates the OpenDKIM tables with lines dkimkeyd must preserve.
    signer="files" signs through a files signer in tmp/signer instead of
    the OpenDKIM tables."""
    s = Setup(tmp, domain)
    s.signer = signer
    if signer == "files":
        os.makedirs(s.signer_dir, mode=0o755, exist_ok=True)
    for d in (s.state_dir, s.key_dir):
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
    Bind._write(s.tsig_key_file, bind.key_text, 0o600)
    s.foreign_tables = tables
    s.ttl = int(ttl[:-1]) if ttl.endswith("s") else int(ttl)
    if tables:
        Bind._write(s.key_table, FOREIGN_KEYTABLE, 0o644)
        Bind._write(s.signing_table, FOREIGN_SIGNINGTABLE, 0o644)
    zone = bind.zone_of(domain)
    lines = [
        "; " + title,
        "[dkimkeyd]",
        "state_dir = %s" % s.state_dir,
        "key_dir = %s" % s.key_dir,
        "",
        "[provider primary]",
        "type = rfc2136",
        "server = %s" % bind.addr(),
        "tsig_key_file = %s" % s.tsig_key_file,
    ]
    if discovery:
        lines += ["resolver = %s" % bind.addr(),
                  "probe_port = %d" % bind.port]
    else:
        lines += ["zone = %s" % zone,
                  "probe_servers = %s" % bind.addr()]
    lines += [
        "timeout = 2s",
        "",
    ]
    if signer == "files":
        lines += ["[signer files]", "type = files",
                  "dir = %s" % s.signer_dir]
    else:
        # Keys under /tmp: the test milter runs with RequireSafeKeys no.
        lines += ["[signer opendkim]", "type = opendkim",
                  "key_table = %s" % s.key_table,
                  "signing_table = %s" % s.signing_table,
                  "require_safe_keys = no"]
    lines += [
        "reload = /usr/bin/touch %s" % s.reloaded,
        "",
        "[domain %s]" % domain,
        "provider = primary",
        "signer = %s" % signer,
        "selectors = %s" % selectors,
        "algorithm = %s" % algorithm,
        "ttl = %s" % ttl,
        "retire_after = %s" % retire_after,
        "propagation_timeout = %s" % propagation_timeout,
        "safety_margin = %s" % safety_margin,
    ]
    lines += list(extra_domain_lines)
    Bind._write(s.conf, "\n".join(lines) + "\n", 0o644)
    return s


class Result:
    def __init__(self, args, code, out, err, elapsed):
        self.args = args
        self.code = code
        self.out = out
        self.err = err
        self.elapsed = elapsed

    def __iter__(self):
        return iter((self.code, self.out, self.err))

    def describe(self):
        return "`dkimkeyd %s` exit %s after %.1fs\n--- stdout:\n%s--- " \
               "stderr:\n%s" % (" ".join(self.args), self.code,
                                self.elapsed, self.out, self.err)


def asan_env(environ, **options):
    """environ with options appended to ASAN_OPTIONS (later ones win).
    Harmless for a build without AddressSanitizer, which never reads it;
    under SANITIZE=1 it lets a test ask for what the runtime forbids by
    default (a core dump, a preloaded library before the runtime)."""
    environ = dict(environ)
    extra = ":".join("%s=%s" % kv for kv in options.items())
    old = environ.get("ASAN_OPTIONS", "")
    environ["ASAN_OPTIONS"] = old + ":" + extra if old else extra
    return environ


def run(conf, *args, timeout=120):
    """Run dkimkeyd -c conf ARGS; returns a Result that unpacks as
    (exit code, stdout, stderr)."""
    if isinstance(conf, Setup):
        conf = conf.conf
    if not os.access(DKIMKEYD, os.X_OK):
        raise HarnessError("dkimkeyd binary not found or not executable: "
                           "%s (set DKIMKEYD)" % DKIMKEYD)
    argv = [DKIMKEYD, "-c", conf] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise HarnessError("`%s` still running after %ss\nstdout: %s\n"
                           "stderr: %s" % (" ".join(argv), timeout,
                                            e.stdout, e.stderr))
    return Result(list(args), p.returncode, p.stdout, p.stderr,
                  time.monotonic() - t0)


def run_ok(conf, *args, timeout=120):
    """Run and require exit 0 with an empty stderr; returns stdout."""
    r = run(conf, *args, timeout=timeout)
    if r.code != 0 or r.err != "":
        raise AssertionError("expected success with empty stderr: " +
                             r.describe())
    return r.out


def status_json(setup, domain=None):
    out = run_ok(setup, "status", "--domain", domain or setup.domain,
                 "--json")
    try:
        return json.loads(out)
    except ValueError as e:
        raise AssertionError("status --json is not JSON (%s): %r" % (e, out))


def domain_status(setup, domain=None):
    domain = domain or setup.domain
    st = status_json(setup, domain)
    for d in st.get("domains", []):
        if d.get("domain") == domain:
            return d
    raise AssertionError("status --json has no domain %s: %r" % (domain, st))


def key_status(setup, selector, domain=None):
    """The newest key of selector in status --json, or None."""
    found = None
    for k in domain_status(setup, domain)["keys"]:
        if k.get("selector") == selector:
            found = k
    return found


# -- OpenDKIM tables and the independent DKIM check ------------------------

def read_tables(setup):
    """(keytable dict KEYNAME -> (domain, selector, keyfile), signing table
    list of (pattern, KEYNAME)), comments and blanks skipped."""
    kt = {}
    with open(setup.key_table) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, val = line.split(None, 1)
            d, sel, kf = val.strip().split(":", 2)
            kt[name] = (d, sel, kf)
    stt = []
    with open(setup.signing_table) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pat, name = line.split(None, 1)
            stt.append((pat, name.strip()))
    return kt, stt


def files_signer_keys(setup, domain=None):
    """[(selector, keyfile)] the files signer's index names for domain,
    in order (a missing index: [])."""
    path = os.path.join(setup.signer_dir, (domain or setup.domain) +
                        ".keys")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [tuple(ln.split(" ", 1)) for ln in text.splitlines()
            if ln and not ln.startswith("#")]


def signer_current(setup, domain=None):
    """(selector, keyfile) that the OpenDKIM tables (or the files
    signer's index) use for domain."""
    domain = domain or setup.domain
    if setup.signer == "files":
        keys = files_signer_keys(setup, domain)
        if len(keys) != 1:
            raise AssertionError("%s.keys names %d keys: %r" % (
                domain, len(keys), keys))
        return keys[0]
    kt, stt = read_tables(setup)
    names = [n for p, n in stt if p.lower() == "*@" + domain]
    if len(names) != 1:
        raise AssertionError("SigningTable has %d entries for *@%s: %r" % (
            len(names), domain, stt))
    if names[0] not in kt:
        raise AssertionError("SigningTable names %s, absent from KeyTable" %
                             names[0])
    d, sel, kf = kt[names[0]]
    if d.lower() != domain:
        raise AssertionError("KeyTable entry %s is for domain %s, not %s" % (
            names[0], d, domain))
    return sel, kf


def _private_key_for_dkimpy(keyfile):
    """(private key bytes for dkim.sign, signature algorithm)."""
    with open(keyfile, "rb") as f:
        pem = f.read()
    der = subprocess.run(["openssl", "pkey", "-in", keyfile, "-outform",
                          "DER"], check=True, capture_output=True,
                         timeout=30).stdout
    text = subprocess.run(["openssl", "pkey", "-in", keyfile, "-noout",
                           "-text"], check=True, capture_output=True,
                          timeout=30).stdout
    if text.lstrip().startswith(b"ED25519"):
        if len(der) != 48:
            raise AssertionError("unexpected Ed25519 PKCS#8 DER length %d" %
                                 len(der))
        return base64.b64encode(der[-32:]), b"ed25519-sha256"
    return pem, b"rsa-sha256"


MESSAGE = (b"From: Alice <alice@%s>\r\n"
           b"To: Bob <bob@example.org>\r\n"
           b"Subject: dkimkeyd integration test\r\n"
           b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
           b"Message-ID: <test@%s>\r\n"
           b"\r\n"
           b"Hello, this message is signed with the active key.\r\n")


def dkim_dnsfunc(bind):
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        txts = bind.query_txt(name)
        return txts[0].encode("ascii") if txts else None
    return dnsfunc


def dkim_sign_verify(bind, domain, selector, keyfile, log=None):
    """Sign a message with keyfile as selector/domain and verify it with
    python3-dkim against bind.  Returns (ok, signed message)."""
    key, alg = _private_key_for_dkimpy(keyfile)
    msg = MESSAGE % (domain.encode(), domain.encode())
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    include_headers=[b"from", b"to", b"subject"],
                    signature_algorithm=alg)
    signed = sig + msg
    ok = dkim.verify(signed, dnsfunc=dkim_dnsfunc(bind))
    if not ok and log is not None:
        log("dkim.verify failed for %s with %s (%s)" % (
            selector, keyfile, alg.decode()))
    return ok, signed


def dkim_roundtrip(tmp, bind, domain, log=None):
    """Sign with the key the OpenDKIM tables point to for domain and
    verify against the test BIND: True when the signature verifies."""
    s = tmp if isinstance(tmp, Setup) else Setup(tmp, domain)
    sel, kf = signer_current(s, domain)
    ok, _ = dkim_sign_verify(bind, domain, sel, kf, log=log)
    return bool(ok)


# -- record parsing --------------------------------------------------------

def record_tags(record):
    """Tag list of a DKIM key record as a dict (whitespace removed)."""
    tags = {}
    for part in record.split(";"):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.partition("=")
        tags[k.strip()] = re.sub(r"\s+", "", v)
    return tags


def is_revoked(record):
    t = record_tags(record)
    return "p" in t and t["p"] == ""


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def snapshot_files(*dirs):
    """{path: bytes} of every regular file below dirs."""
    snap = {}
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for root, _, files in os.walk(d):
            for fn in files:
                p = os.path.join(root, fn)
                with open(p, "rb") as f:
                    snap[p] = f.read()
    return snap


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


# -- per-test environment --------------------------------------------------

class Env:
    """One test's world: a started BIND serving zones and a temp dir."""

    def __init__(self, zones=("example.test",)):
        self.tmp = tempfile.mkdtemp(prefix="dkimkeyd-it-")
        self.bind = None
        self.notes = []
        try:
            self.bind = Bind(zones).start()
            self.foreign = {z: self.foreign_txt(z) for z in self.bind.zones}
        except BaseException:
            self.close()
            raise
        for z, v in self.foreign.items():
            if v != [FOREIGN_RECORD]:
                raise HarnessError("foreign record in %s not served: %r" % (
                    z, v))

    def foreign_txt(self, zone):
        return self.bind.query_txt("%s._domainkey.%s" % (FOREIGN_SELECTOR,
                                                         zone))

    def config(self, **kw):
        return write_config(self.tmp, self.bind, **kw)

    def log(self, msg):
        self.notes.append(msg)

    def check_foreign(self):
        """Invariant 5: the record no configuration manages is intact."""
        if not self.bind.running():
            self.bind.start()
        for z, v in self.foreign.items():
            now = self.foreign_txt(z)
            if now != v:
                raise AssertionError("foreign record other._domainkey.%s "
                                     "changed: %r -> %r" % (z, v, now))

    def close(self):
        if self.bind is not None:
            self.bind.cleanup()
        if not KEEP:
            shutil.rmtree(self.tmp, ignore_errors=True)


def zones(*names):
    """Decorator: the zones a test's BIND serves."""
    def deco(fn):
        fn.zones = names
        return fn
    return deco



# -- assertions shared by the dkimkeyd tests -------------------------------

KEY_STATES = ("created", "published", "visible", "active", "retired",
              "revoked", "removed")
KEY_FIELDS = ("selector", "key_id", "algorithm", "state", "created",
              "published", "visible", "active", "retired", "revoked",
              "removed")


def public_p(keyfile):
    """The p= value a key file's public half must be published as."""
    der = subprocess.run(["openssl", "pkey", "-in", keyfile, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True, timeout=30).stdout
    text = subprocess.run(["openssl", "pkey", "-in", keyfile, "-noout",
                           "-text"], check=True, capture_output=True,
                          timeout=30).stdout
    if text.lstrip().startswith(b"ED25519"):
        return base64.b64encode(der[-32:]).decode()
    return base64.b64encode(der).decode()


def check_status_schema(st):
    """Validate the shape of `status --json` output."""
    assert isinstance(st, dict) and isinstance(st.get("domains"), list), st
    for d in st["domains"]:
        assert isinstance(d.get("domain"), str), d
        assert isinstance(d.get("keys"), list), d
        assert isinstance(d.get("next_action"), str), d
        assert "next_at" in d and (d["next_at"] is None or
                                   isinstance(d["next_at"], int)), d
        for k in d["keys"]:
            for f in KEY_FIELDS:
                assert f in k, "status key lacks %r: %r" % (f, k)
            assert k["state"] in KEY_STATES, k
            for f in KEY_FIELDS[4:]:
                v = k[f]
                assert v is None or (isinstance(v, int) and
                                     not isinstance(v, bool)), (f, k)


def managed_record(bind, setup, selector):
    """The single TXT record at a managed selector (invariant 3), or None
    when the name has none."""
    recs = bind.query_txt(setup.selector_name(selector))
    assert len(recs) <= 1, "more than one TXT RR at %s: %r" % (
        setup.selector_name(selector), recs)
    return recs[0] if recs else None


def rotate_and_verify(env, setup, expect_selector, algorithm="rsa-2048",
                      min_wait=2.0, resumed=False):
    """Run a rotation and check everything it promises; returns the
    (selector, keyfile) now active.  min_wait: the least wall-clock time
    between visibility and activation (cache drain + safety_margin; for a
    name that had no record, SOA negative TTL 1s + 1s)."""
    bind = env.bind
    before_reload = read_bytes(setup.reloaded) is not None and \
        os.stat(setup.reloaded).st_mtime_ns
    t0 = int(time.time())
    r = run(setup, "rotate", "--domain", setup.domain)
    if r.code != 0 or r.err != "":
        raise AssertionError("rotate failed: " + r.describe())
    assert r.out.strip() != "", "rotate printed no steps"
    # Invariant 1 seen from outside: the whole command cannot take less
    # than the wait it owes after the record became visible.
    assert r.elapsed >= min_wait, \
        "rotate activated after %.2fs in all; the cache drain plus " \
        "safety_margin alone is %.0fs: %s" % (r.elapsed, min_wait,
                                               r.describe())
    sel, kf = signer_current(setup)
    assert sel == expect_selector, "signer uses %s, expected %s" % (
        sel, expect_selector)
    assert os.path.isfile(kf), "KeyTable names missing key file %s" % kf
    assert os.path.dirname(os.path.abspath(kf)) == \
        os.path.abspath(setup.key_dir), "key file %s not in key_dir" % kf
    assert file_mode(kf) & 0o037 == 0 and file_mode(kf) & 0o004 == 0, \
        "key file %s has mode %o" % (kf, file_mode(kf))
    rec = managed_record(bind, setup, sel)
    assert rec is not None, "no record at %s" % setup.selector_name(sel)
    ttl, _ = bind.txt_rrset(setup.selector_name(sel))
    assert ttl == setup.ttl, "record TTL %s, configured %ss" % (ttl,
                                                                setup.ttl)
    tags = record_tags(rec)
    assert rec.lstrip().startswith("v=DKIM1"), rec
    want_k = "ed25519" if algorithm == "ed25519" else "rsa"
    assert tags.get("k") == want_k, "k= is %r, expected %s: %s" % (
        tags.get("k"), want_k, rec)
    assert tags.get("p") == public_p(kf), \
        "published p= is not the active key's public key: %s" % rec
    assert os.path.exists(setup.reloaded), "reload command was not run"
    assert os.stat(setup.reloaded).st_mtime_ns != before_reload, \
        "reload command was not run again"
    if setup.foreign_tables:
        for path, lines in ((setup.key_table, FOREIGN_KEYTABLE),
                            (setup.signing_table, FOREIGN_SIGNINGTABLE)):
            have = read_bytes(path).decode().splitlines()
            for line in lines.splitlines():
                assert line in have, "%s lost the line %r it does not " \
                    "manage" % (path, line)
    ks = key_status(setup, sel)
    assert ks is not None and ks["state"] == "active", ks
    assert ks["algorithm"] == algorithm, ks
    # resumed: the key was generated by an earlier, interrupted run.
    for f in ("created", "published", "visible", "active"):
        if resumed and f == "created":
            continue
        assert isinstance(ks[f], int) and ks[f] >= t0 - 1, (f, ks)
    assert ks["created"] <= ks["published"] <= ks["visible"] <= \
        ks["active"], ks
    # Invariant 1: activation waits out the cache drain (here at least the
    # SOA negative TTL 1s) plus safety_margin 1s after visibility.
    assert ks["active"] - ks["visible"] >= 2, \
        "activated %ds after visible, expected >= 2s: %r" % (
            ks["active"] - ks["visible"], ks)
    assert dkim_roundtrip(setup, bind, setup.domain, log=env.log), \
        "message signed with the active %s key does not verify" % sel
    return sel, kf
