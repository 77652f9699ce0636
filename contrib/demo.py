#!/usr/bin/python3
"""dkimkeyd demo (`make demo`).

Starts a throwaway BIND 9 on 127.0.0.1 serving the zone demo.example with
a TSIG key allowed to update TXT records, writes a dkimkeyd configuration
into a temporary directory, rotates demo.example twice (mail1, then
mail2), shows `status` and `check`, then signs a message with the key the
OpenDKIM KeyTable points to and verifies it with python3-dkim against the
demo BIND.  BIND is always stopped; the directory is removed unless
--keep is given.

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


def demo(tmp, bind):
    say("== 1. A throwaway BIND 9 serves %s on 127.0.0.1:%d" % (DOMAIN,
                                                                bind.port))
    say("   (directory %s, TSIG key %s may update TXT records)" % (
        bind.dir, bind.keyname))
    setup = harness.write_config(tmp, bind, domain=DOMAIN, ttl="2s",
                                 retire_after="1h", safety_margin="1s",
                                 propagation_timeout="30s", tables=False,
                                 title="dkimkeyd demo configuration")
    say()
    say("== 2. dkimkeyd configuration")
    with open(setup.conf) as f:
        show(setup.conf, f.read())
    say()
    say("   Records TTL 2s and safety margin 1s keep the demo short; real")
    say("   domains use an hour and minutes.")
    say()

    say("== 3. First rotation: a new key on mail1, published, checked on")
    say("   every nameserver, caches drained, then OpenDKIM switched to it")
    dkimkeyd(setup, "configtest")
    dkimkeyd(setup, "rotate", "--domain", DOMAIN)
    sel, kf = harness.signer_current(setup)
    say("   OpenDKIM now signs %s with selector %s (%s)" % (DOMAIN, sel, kf))
    say()

    say("== 4. Second rotation: mail2 becomes active, mail1 is retired but")
    say("   stays published for mail still in flight")
    dkimkeyd(setup, "rotate", "--domain", DOMAIN)
    sel, kf = harness.signer_current(setup)
    say("   OpenDKIM now signs %s with selector %s (%s)" % (DOMAIN, sel, kf))
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

    say("== 5. status and check (check exits 0/1/2/3 like a monitoring "
        "plugin)")
    dkimkeyd(setup, "status", "--domain", DOMAIN)
    dkimkeyd(setup, "check", "--domain", DOMAIN)
    say()

    say("== 6. Sign a message with the active key and verify it with")
    say("   python3-dkim against the demo BIND")
    ok, signed = harness.dkim_sign_verify(bind, DOMAIN, sel, kf)
    header = signed.split(b"\r\nFrom:", 1)[0].decode()
    show("signed message header", header)
    if not ok:
        raise SystemExit("demo: DKIM verification FAILED")
    say("   dkim.verify: signature verifies (selector %s, d=%s)" % (sel,
                                                                    DOMAIN))
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
    status = 1
    try:
        bind = harness.Bind(zones=(DOMAIN,)).start()
        demo(tmp, bind)
        status = 0
    except harness.HarnessError as e:
        say("demo: %s" % e)
    finally:
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
        say("== demo finished in %.0fs: two rotations, checked and "
            "verified" % (time.monotonic() - t0))
    return status


if __name__ == "__main__":
    sys.exit(main())
