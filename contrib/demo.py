#!/usr/bin/python3
"""dkimkeyd demo (`make demo`).

Starts a throwaway BIND 9 on 127.0.0.1 serving the zone demo.example with
a TSIG key allowed to update TXT records, and Debian's OpenDKIM milter on
127.0.0.1 reading the KeyTable and SigningTable dkimkeyd keeps; writes a
dkimkeyd configuration into a temporary directory whose reload command
sends the milter SIGUSR1; rotates demo.example twice (mail1, then mail2),
shows `status` and `check --canary` (the milter itself signs a message,
through contrib/canary/opendkim-canary, and dkimkeyd verifies it), then
has OpenDKIM sign a message and verifies it with python3-dkim against
the demo BIND.  BIND and the milter are always stopped; the directory is
removed unless --keep is given.

    DKIMKEYD=./dkimkeyd /usr/bin/python3 contrib/demo.py [--keep]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests",
                                "integration"))

import harness  # noqa: E402
from opendkim_milter import Milter  # noqa: E402

DOMAIN = "demo.example"


def say(msg=""):
    print(msg, flush=True)


def show(title, text):
    say("--- %s" % title)
    for line in text.rstrip("\n").splitlines():
        say("    " + line)


def dkimkeyd(setup, *args, ok_codes=(0,)):
    say("$ dkimkeyd -c %s %s" % (setup.conf, " ".join(args)))
    r = harness.run(setup, *args)
    for line in r.out.rstrip("\n").splitlines():
        say("  " + line)
    for line in r.err.rstrip("\n").splitlines():
        say("  (stderr) " + line)
    if r.code not in ok_codes:
        raise SystemExit("demo: `dkimkeyd %s` exited %d" % (" ".join(args),
                                                            r.code))
    say("  (exit %d, %.1fs)" % (r.code, r.elapsed))
    return r


def set_signer_lines(setup, **kv):
    """key = value lines in the [signer opendkim] section."""
    with open(setup.conf) as f:
        lines = f.read().splitlines()
    out = []
    for ln in lines:
        if ln.split(" = ", 1)[0] in kv:
            continue
        out.append(ln)
        if ln == "[signer opendkim]":
            out += ["%s = %s" % (k, v) for k, v in kv.items()]
    with open(setup.conf, "w") as f:
        f.write("\n".join(out) + "\n")


def milter_signs(bind, milter, want_sel):
    """OpenDKIM signs a message; python3-dkim verifies it against BIND."""
    import dkim
    import re
    reply, sigs, signed = milter.sign(DOMAIN)
    if reply != "a" or len(sigs) != 1:
        raise SystemExit("demo: OpenDKIM replied %r with %d signatures" % (
            reply, len(sigs)))
    header = signed.split(b"\r\nFrom:", 1)[0].decode()
    show("DKIM-Signature OpenDKIM added", header)
    sel = re.search(r"\bs=([a-z0-9]+);", sigs[0]).group(1)
    if sel != want_sel:
        raise SystemExit("demo: OpenDKIM signed with %s, not %s" % (
            sel, want_sel))
    if not dkim.verify(signed, dnsfunc=harness.dkim_dnsfunc(bind)):
        raise SystemExit("demo: DKIM verification FAILED")
    say("   dkim.verify: OpenDKIM's signature verifies (s=%s, d=%s)" % (
        sel, DOMAIN))


def demo(tmp, bind, milters):
    say("== 1. A throwaway BIND 9 serves %s on 127.0.0.1:%d" % (DOMAIN,
                                                                bind.port))
    say("   (directory %s, TSIG key %s may update TXT records)" % (
        bind.dir, bind.keyname))
    setup = harness.write_config(tmp, bind, domain=DOMAIN, ttl="2s",
                                 retire_after="1h", safety_margin="1s",
                                 propagation_timeout="30s", tables=False,
                                 title="dkimkeyd demo configuration")
    for t in (setup.key_table, setup.signing_table):
        open(t, "a").close()
    milter = Milter(tmp, setup.key_table, setup.signing_table)
    milter.start()
    milters.append(milter)
    say("   Debian's OpenDKIM milter (%s) listens on 127.0.0.1:%d," % (
        "/usr/sbin/opendkim", milter.port))
    say("   reading the tables dkimkeyd keeps (refile:), empty so far")
    set_signer_lines(setup, reload=milter.reload_script,
                     canary="%s -s inet:%d@127.0.0.1" % (
                         os.path.join(HERE, "canary", "opendkim-canary"),
                         milter.port))
    say()
    say("== 2. dkimkeyd configuration")
    with open(setup.conf) as f:
        show(setup.conf, f.read())
    say()
    say("   Records TTL 2s and safety margin 1s keep the demo short; real")
    say("   domains use an hour and minutes.  reload sends the milter")
    say("   SIGUSR1 (its PID file), so it reads the tables again; the")
    say("   milter's keys are under /tmp, hence RequireSafeKeys no there")
    say("   and require_safe_keys = no here.")
    say()

    say("== 3. First rotation: a new key on mail1, published, checked on")
    say("   every nameserver, caches drained, then OpenDKIM switched to it")
    say("   (tables rewritten, milter reloaded)")
    dkimkeyd(setup, "configtest")
    dkimkeyd(setup, "rotate", "--domain", DOMAIN)
    sel, kf = harness.signer_current(setup)
    say("   The KeyTable now names selector %s (%s)" % (sel, kf))
    milter_signs(bind, milter, "mail1")
    say()

    say("== 4. Second rotation: mail2 becomes active, mail1 is retired but")
    say("   stays published for mail still in flight")
    dkimkeyd(setup, "rotate", "--domain", DOMAIN)
    with open(setup.key_table) as f:
        show("KeyTable", f.read())
    with open(setup.signing_table) as f:
        show("SigningTable", f.read())
    for s in ("mail1", "mail2"):
        name = setup.selector_name(s)
        for rec in bind.query_txt(name):
            say("   %s TXT \"%s...\" (%d characters)" % (name, rec[:40],
                                                         len(rec)))
    say()

    say("== 5. status, and check --canary: the running milter signs a")
    say("   message and dkimkeyd verifies the signature against every")
    say("   authoritative server (exit 0/1/2/3 like a monitoring plugin)")
    dkimkeyd(setup, "status", "--domain", DOMAIN)
    dkimkeyd(setup, "check", "--canary", "--domain", DOMAIN)
    say()

    say("== 6. OpenDKIM signs a message (miltertest plays the MTA); the")
    say("   signature verifies with python3-dkim against the demo BIND")
    if milter.proc.poll() is not None:
        raise SystemExit("demo: the milter died")
    milter_signs(bind, milter, "mail2")
    say()


def main():
    ap = argparse.ArgumentParser(description="dkimkeyd demo against a "
                                 "throwaway BIND on loopback")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directories")
    args = ap.parse_args()
    if not os.access(harness.DKIMKEYD, os.X_OK):
        sys.exit("demo: no dkimkeyd binary at %s (run make, or set "
                 "DKIMKEYD)" % harness.DKIMKEYD)
    harness.exit_cleanly_on_signals()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-demo-")
    bind = None
    milters = []
    status = 1
    try:
        bind = harness.Bind(zones=(DOMAIN,)).start()
        demo(tmp, bind, milters)
        status = 0
    except (harness.HarnessError, RuntimeError) as e:
        say("demo: %s" % e)
    finally:
        for m in milters:
            m.stop()
            say("== OpenDKIM stopped")
        if bind is not None:
            bind.stop()
            say("== BIND stopped")
        if args.keep:
            say("== kept %s and %s" % (tmp, bind.dir if bind else ""))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            if bind is not None:
                shutil.rmtree(bind.dir, ignore_errors=True)
    if status == 0:
        say("== demo finished in %.0fs: two rotations, OpenDKIM reloaded "
            "and signing, checked and verified" % (time.monotonic() - t0))
    return status


if __name__ == "__main__":
    sys.exit(main())
