#!/usr/bin/python3
"""Run the dkimkeyd integration tests.

    /usr/bin/python3 tests/integration/run.py [NAME-SUBSTRING]

Each test function test_*(env) in tests/integration/test_*.py gets a fresh
BIND on 127.0.0.1 and a fresh temporary directory.  Prints "ok NAME (Xs)"
or "FAIL NAME: reason" per test and ends with exactly one line
"integration: N passed, N failed"; the exit status is 1 when any failed.
DKIMKEYD names the binary (default ./dkimkeyd); DKIMKEYD_KEEP=1 keeps the
temporary directories for inspection.
"""

import importlib
import inspect
import os
import sys
import time
import traceback

# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def discover(pattern):
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
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


def main(argv):
    pattern = argv[1] if len(argv) > 1 else ""
    harness.exit_cleanly_on_signals()
    passed = failed = 0
    t_all = time.monotonic()
    try:
        tests = discover(pattern)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("FAIL discovery: a test module does not import")
        print("integration: 0 passed, 1 failed")
        return 1
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
    sys.stdout.flush()
    print("# %d tests in %.1fs" % (passed + failed,
                                   time.monotonic() - t_all))
    print("integration: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
