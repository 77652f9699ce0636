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
        "usr/lib/systemd/system/dkimkeyd-agent@.service",
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
        "usr/share/doc/dkimkeyd/postgresql/roles.sql",
        "usr/share/doc/dkimkeyd/exec/dkimkeyd-nsupdate",
        "usr/share/doc/dkimkeyd/rspamd/dkim_signing.conf",
        "usr/share/doc/dkimkeyd/rspamd/dkimkeyd-rspamd-reload",
        "usr/share/doc/dkimkeyd/exim/dkim-transport.conf",
    }
    missing = want - got
    assert not missing, "not installed: %s" % sorted(missing)
    assert os.access(os.path.join(dest, "usr/sbin/dkimkeyd"), os.X_OK)
    # The installed units and cron file name the installed binary.
    for f in ("usr/lib/systemd/system/dkimkeyd.service",
              "usr/lib/systemd/system/dkimkeyd-once.service",
              "usr/lib/systemd/system/dkimkeyd-agent@.service",
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
              "dkimkeyd-once.timer", "dkimkeyd-agent@.service")]
    # The agent's template, as an instance (systemctl enable
    # dkimkeyd-agent@mx1): %i is the host the agent runs for.
    inst = os.path.join(env.tmp, "dkimkeyd-agent@mx1.service")
    shutil.copy(os.path.join(units, "dkimkeyd-agent@.service"), inst)
    files.append(inst)
    r = subprocess.run([sa, "verify", "--man=no"] + files,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "", \
        "systemd-analyze verify: rc=%d\n%s%s" % (r.returncode, r.stdout,
                                                   r.stderr)
    with open(files[0]) as fh:
        assert "ExecStart=%s/usr/sbin/dkimkeyd " % p in fh.read()
    with open(inst) as fh:
        text = fh.read()
    assert "ExecStart=%s/usr/sbin/dkimkeyd -c %s/etc/dkimkeyd/dkimkeyd.conf " \
        "agent --host %%i\n" % (p, p) in text, text
    assert "Type=notify" in text, text


# The polkit rule, judged by the real polkitd: a private system bus and
# polkitd in a private mount namespace, where the installed rule is the
# only one in /etc/polkit-1/rules.d and /etc/passwd names a dkimkeyd user.
# pkcheck asks about processes running as that user and as another.
_POLKIT_BUS = """<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%(sock)s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
"""

# $1 work dir, $2 rules dir; prints "ASK user unit verb rc" per question.
_POLKIT_SH = r"""
set -u
W=$1
mount --bind "$W/passwd" /etc/passwd || exit 90
mount --bind "$2" /etc/polkit-1/rules.d || exit 90
"$DBUS_DAEMON" --config-file="$W/bus.conf" --nofork --nopidfile \
    2>"$W/dbus.log" & DB=$!
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$W/bus"
i=0; while [ ! -S "$W/bus" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
/usr/lib/polkit-1/polkitd --no-debug 2>"$W/polkitd.log" & PK=$!
"$SETPRIV" --reuid=64999 --regid=64999 --clear-groups sleep 120 & S1=$!
"$SETPRIV" --reuid=64998 --regid=64998 --clear-groups sleep 120 & S2=$!
ask() {
    # polkitd may still be claiming its bus name: retry an error
    # (anything but 0 authorised, 1 refused, 2 or 3 authentication).
    n=0
    while :; do
        "$PKCHECK" --action-id org.freedesktop.systemd1.manage-units \
            --process "$2" --detail unit "$3" --detail verb "$4" \
            >/dev/null 2>>"$W/pkcheck.log"
        rc=$?
        [ $rc -le 3 ] || [ $n -ge 50 ] && break
        n=$((n+1)); sleep 0.2
    done
    echo "ASK $1 $3 $4 $rc"
}
ask dkimkeyd $S1 opendkim.service reload
ask dkimkeyd $S1 opendkim.service restart
ask dkimkeyd $S1 opendkim.service stop
ask dkimkeyd $S1 ssh.service reload
ask othersvc $S2 opendkim.service reload
kill $S1 $S2 $PK $DB
wait
"""


def _polkit_answers(env, rules_dir, work):
    path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
    tools = {}
    for tool in ("unshare", "setpriv", "dbus-daemon", "pkcheck"):
        tools[tool] = shutil.which(tool, path=path)
        assert tools[tool], "%s missing (contrib/install-deps.sh)" % tool
    assert os.access("/usr/lib/polkit-1/polkitd", os.X_OK), \
        "polkitd missing (package polkitd)"
    os.makedirs(work)
    # polkitd runs as its own user: it must reach the bus socket.
    os.chmod(env.tmp, 0o711)
    with open(os.path.join(work, "bus.conf"), "w") as fh:
        fh.write(_POLKIT_BUS % {"sock": os.path.join(work, "bus")})
    with open("/etc/passwd") as src, \
            open(os.path.join(work, "passwd"), "w") as fh:
        fh.write(src.read())
        fh.write("dkimkeyd:x:64999:64999::/nonexistent:/usr/sbin/nologin\n")
        fh.write("othersvc:x:64998:64998::/nonexistent:/usr/sbin/nologin\n")
    os.chmod(work, 0o755)
    os.chmod(os.path.join(work, "passwd"), 0o644)
    script = os.path.join(work, "ask.sh")
    with open(script, "w") as fh:
        fh.write(_POLKIT_SH)
    run_env = dict(os.environ, PATH=path, SETPRIV=tools["setpriv"],
                   DBUS_DAEMON=tools["dbus-daemon"], PKCHECK=tools["pkcheck"])
    r = subprocess.run([tools["unshare"], "-m", "--propagation", "private",
                        "sh", script, work, rules_dir], env=run_env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, "private polkitd: rc=%d %s%s" % (
        r.returncode, r.stdout, r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("ASK "):
            _, user, unit, verb, rc = line.split()
            out[(user, unit, verb)] = int(rc)
    logs = ""
    for n in ("pkcheck.log", "polkitd.log"):
        p = os.path.join(work, n)
        if os.path.exists(p):
            with open(p) as fh:
                logs += "%s:\n%s\n" % (n, fh.read()[-2000:])
    assert len(out) == 5, "pkcheck answers %r\n%s" % (out, logs)
    assert max(out.values()) <= 3, "pkcheck errors %r\n%s" % (out, logs)
    return out


def test_polkit_rule_allows_only_reload_of_opendkim_by_dkimkeyd(env):
    dest = os.path.join(env.tmp, "dest")
    _make_install("DESTDIR=" + dest, "PREFIX=/usr")
    rules = os.path.join(dest, "etc/polkit-1/rules.d")
    os.chmod(rules, 0o755)
    got = _polkit_answers(env, rules, os.path.join(env.tmp, "pk"))
    # pkcheck: 0 authorised; 1 or 2 (authentication needed) refused.
    assert got[("dkimkeyd", "opendkim.service", "reload")] == 0, got
    for q in (("dkimkeyd", "opendkim.service", "restart"),
              ("dkimkeyd", "opendkim.service", "stop"),
              ("dkimkeyd", "ssh.service", "reload"),
              ("othersvc", "opendkim.service", "reload")):
        assert got[q] != 0, "%s allowed: %r" % (q, got)
    # Without the rule the same reload is refused: the answer above is
    # the rule's, not polkit's defaults.
    empty = os.path.join(env.tmp, "norules")
    os.makedirs(empty)
    got = _polkit_answers(env, empty, os.path.join(env.tmp, "pk2"))
    assert got[("dkimkeyd", "opendkim.service", "reload")] != 0, got
