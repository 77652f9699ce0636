#!/usr/bin/python3
"""Run the dkimkeyd integration tests.

    /usr/bin/python3 tests/integration/run.py [-j N] [NAME-SUBSTRING]

Each test function test_*(env) in tests/integration/test_*.py gets a fresh
BIND on 127.0.0.1 and a fresh temporary directory.  Prints "ok NAME (Xs)"
or "FAIL NAME: reason" per test and ends with exactly one line
"integration: N passed, N failed"; the exit status is 1 when any failed.
DKIMKEYD names the binary (default ./dkimkeyd); DKIMKEYD_KEEP=1 keeps the
temporary directories for inspection.

With -j N (default: DKIMKEYD_JOBS, else the number of CPUs, at most 4) the
test files run in N processes at once, the largest files first; each
file's lines are printed together when it ends.  Tests within one file
always run one after another.
"""

import importlib
import inspect
import os
import subprocess
import sys
import threading
import time
import traceback

# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def test_files():
    return sorted(fn for fn in os.listdir(HERE)
                  if fn.startswith("test_") and fn.endswith(".py"))


def discover(pattern, only=None):
    tests = []
    for fn in test_files():
        if only is not None and fn != only:
            continue
        mod = importlib.import_module(fn[:-3])
        funcs = [(inspect.getsourcelines(f)[1], name, f)
                 for name, f in vars(mod).items()
                 if name.startswith("test_") and inspect.isfunction(f)
                 and f.__module__ == mod.__name__]
        for _, name, f in sorted(funcs):
            full = "%s.%s" % (mod.__name__[5:], name[5:])
            if pattern and pattern not in full:
                continue
            tests.append((full, f))
    return tests


def run_one(name, fn):
    t0 = time.monotonic()
    env = None
    try:
        env = harness.Env(getattr(fn, "zones", ("example.test",)))
        fn(env)
        env.check_foreign()
        return True, time.monotonic() - t0, None
    except Exception as e:  # noqa: BLE001 - every failure is reported
        detail = []
        if not isinstance(e, (AssertionError, harness.HarnessError)):
            detail = traceback.format_exc().rstrip().splitlines()
        else:
            tb = traceback.extract_tb(e.__traceback__)
            where = [fr for fr in tb if os.path.basename(fr.filename)
                     .startswith("test_")]
            if where:
                fr = where[-1]
                detail.append("at %s:%d: %s" % (
                    os.path.basename(fr.filename), fr.lineno, fr.line))
        if env is not None:
            detail += env.notes
            if harness.KEEP:
                detail.append("kept: %s %s" % (env.tmp, env.bind.dir))
        msg = str(e).strip() or type(e).__name__
        return False, time.monotonic() - t0, (msg, detail)
    finally:
        if env is not None:
            env.close()


def run_serial(tests):
    passed = failed = 0
    for name, fn in tests:
        ok, secs, info = run_one(name, fn)
        if ok:
            passed += 1
            print("ok %s (%.1fs)" % (name, secs), flush=True)
        else:
            failed += 1
            msg, detail = info
            lines = msg.splitlines()
            print("FAIL %s: %s" % (name, lines[0]), flush=True)
            for line in lines[1:] + detail:
                print("    " + line, flush=True)
    return passed, failed


def run_parallel(files, pattern, jobs):
    """Each file in a child process (run.py --file F); largest first."""
    files = sorted(files, key=lambda f: -os.path.getsize(
        os.path.join(HERE, f)))
    lock = threading.Lock()
    totals = [0, 0]

    def worker():
        while True:
            with lock:
                if not files:
                    return
                f = files.pop(0)
            cmd = [sys.executable, os.path.abspath(__file__), "--file", f]
            if pattern:
                cmd.append(pattern)
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            out = p.stdout.splitlines()
            summary = [ln for ln in out if ln.startswith("integration: ")]
            body = [ln for ln in out if not ln.startswith("integration: ")
                    and not ln.startswith("# ")]
            with lock:
                for ln in body:
                    print(ln)
                sys.stdout.flush()
                if summary:
                    w = summary[-1].split()
                    totals[0] += int(w[1])
                    totals[1] += int(w[3])
                else:
                    print("FAIL %s: the file's run ended without a summary "
                          "(exit %d)" % (f, p.returncode), flush=True)
                    totals[1] += 1

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return totals[0], totals[1]


def default_jobs():
    env = os.environ.get("DKIMKEYD_JOBS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def main(argv):
    args = argv[1:]
    only = None
    jobs = None
    if args[:1] == ["--file"]:
        only, args = args[1], args[2:]
        jobs = 1
    elif args[:1] == ["-j"]:
        jobs, args = int(args[1]), args[2:]
    pattern = args[0] if args else ""
    if jobs is None:
        jobs = default_jobs()
    harness.exit_cleanly_on_signals()
    t_all = time.monotonic()
    try:
        tests = discover(pattern, only)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("FAIL discovery: a test module does not import")
        print("integration: 0 passed, 1 failed")
        return 1
    files = sorted({"test_%s.py" % name.split(".")[0] for name, _ in tests})
    if jobs > 1 and len(files) > 1:
        passed, failed = run_parallel(files, pattern, jobs)
    else:
        passed, failed = run_serial(tests)
    sys.stdout.flush()
    print("# %d tests in %.1fs" % (passed + failed,
                                   time.monotonic() - t_all))
    print("integration: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
