"""make install: everything a packager ships lands under DESTDIR, and the
installed systemd units pass systemd-analyze verify."""

import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DKIMKEYD = os.environ.get("DKIMKEYD", os.path.join(ROOT, "dkimkeyd"))


def _make_install(*assignments):
    # INSTALL_BIN= the binary under test: nothing is built, and the
    # tree's ./dkimkeyd link is not touched.
    link = os.path.join(ROOT, "dkimkeyd")
    before = os.readlink(link) if os.path.islink(link) else None
    r = subprocess.run(["make", "-s", "-C", ROOT, "install",
                        "INSTALL_BIN=" + os.path.realpath(DKIMKEYD)] +
                       list(assignments), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, "make install: %s%s" % (r.stdout, r.stderr)
    after = os.readlink(link) if os.path.islink(link) else None
    assert after == before, "make install re-pointed %s: %r -> %r" % (
        link, before, after)


def _listing(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def test_make_install_destdir_lists_every_file(env):
    dest = os.path.join(env.tmp, "dest")
    _make_install("DESTDIR=" + dest, "PREFIX=/usr")
    got = _listing(dest)
    want = {
        "usr/sbin/dkimkeyd",
        "usr/share/man/man8/dkimkeyd.8",
        "usr/share/man/man5/dkimkeyd.conf.5",
        "usr/lib/systemd/system/dkimkeyd.service",
        "usr/lib/systemd/system/dkimkeyd-once.service",
        "usr/lib/systemd/system/dkimkeyd-once.timer",
        "etc/cron.d/dkimkeyd",
        "etc/polkit-1/rules.d/50-dkimkeyd.rules",
        "etc/dkimkeyd/dkimkeyd.conf",
        "etc/dkimkeyd/conf.d",
        "var/lib/dkimkeyd",
        "var/lib/dkimkeyd/keys",
        "usr/share/doc/dkimkeyd/examples/example.com.conf",
        "usr/share/doc/dkimkeyd/setup.sh",
        "usr/share/doc/dkimkeyd/canary/opendkim-canary",
        "usr/share/doc/dkimkeyd/canary/rspamd-canary",
        "usr/share/doc/dkimkeyd/canary/exim-canary",
    }
    missing = want - got
    assert not missing, "not installed: %s" % sorted(missing)
    assert os.access(os.path.join(dest, "usr/sbin/dkimkeyd"), os.X_OK)
    # The installed units and cron file name the installed binary.
    for f in ("usr/lib/systemd/system/dkimkeyd.service",
              "usr/lib/systemd/system/dkimkeyd-once.service",
              "etc/cron.d/dkimkeyd"):
        with open(os.path.join(dest, f)) as fh:
            text = fh.read()
        assert "/usr/sbin/dkimkeyd" in text and "/usr/local" not in text, f
    # Both units read the TSIG key at one path (no per-unit credential).
    for u in ("dkimkeyd.service", "dkimkeyd-once.service"):
        with open(os.path.join(dest, "usr/lib/systemd/system", u)) as fh:
            assert "LoadCredential" not in fh.read(), u
    # A second install keeps the operator's configuration.
    conf = os.path.join(dest, "etc/dkimkeyd/dkimkeyd.conf")
    with open(conf, "a") as fh:
        fh.write("; edited\n")
    _make_install("DESTDIR=" + dest, "PREFIX=/usr")
    with open(conf) as fh:
        assert fh.read().endswith("; edited\n")


def test_installed_units_pass_systemd_analyze_verify(env):
    sa = shutil.which("systemd-analyze")
    assert sa, "systemd-analyze missing (package systemd)"
    # Installed under a private prefix, so that ExecStart names a binary
    # that exists and verify checks it.
    p = os.path.join(env.tmp, "p")
    _make_install("PREFIX=" + p + "/usr", "SYSCONFDIR=" + p + "/etc",
                  "LOCALSTATEDIR=" + p + "/var")
    units = os.path.join(p, "usr/lib/systemd/system")
    files = [os.path.join(units, u) for u in
             ("dkimkeyd.service", "dkimkeyd-once.service",
              "dkimkeyd-once.timer")]
    r = subprocess.run([sa, "verify", "--man=no"] + files,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "", \
        "systemd-analyze verify: rc=%d\n%s%s" % (r.returncode, r.stdout,
                                                   r.stderr)
    with open(files[0]) as fh:
        assert "ExecStart=%s/usr/sbin/dkimkeyd " % p in fh.read()
