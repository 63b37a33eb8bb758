"""Sandbox overhead: median wall time of one trivial `run_with_tests` (a correct `add` and one assert), old vs new.

The old implementation (one interpreter, namespaces set up by its own bootstrap, an audit hook, the verdict from the program's
exit and a nonce) is taken from git (`--old-ref`, default cd77067, the last commit before this change) into a temporary file; the new one
runs with full isolation (bubblewrap + seccomp + Landlock, separate test harness) and, for comparison, with the weakest
allowed configuration (no bubblewrap, no Landlock). Runs are sequential, interleaved round-robin so that load on the machine
hits every variant alike. Prints one JSON object and writes benchmarks/results/sandbox.json (or --out).
"""

import argparse, importlib.util, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path
from llm_workbench.eval import sandbox

PROG, TESTS = 'def add(a, b):\n    return a + b\n', 'assert add(2, 3) == 5'


def old_module(ref: str):
    "The sandbox module as it was at git `ref`, imported from a temporary file (None if git has no such file)."
    root = Path(__file__).resolve().parents[1]
    try:
        src = subprocess.run(
            ['git', 'show', f'{ref}:llm_workbench/eval/sandbox.py'],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except subprocess.CalledProcessError:
        return None
    path = Path(tempfile.gettempdir()) / 'old_sandbox.py'
    path.write_text(src)
    spec = importlib.util.spec_from_file_location('old_sandbox', path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules['old_sandbox'] = mod
    spec.loader.exec_module(mod)
    return mod


def new_variant(layers: dict):
    def run():
        saved = dict(sandbox._LAYERS)
        sandbox._LAYERS.update(layers)
        try:
            return sandbox.run_with_tests(PROG, TESTS, allow_weak_isolation=not layers['bwrap'])
        finally:
            sandbox._LAYERS.clear()
            sandbox._LAYERS.update(saved)

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=30)
    ap.add_argument(
        '--old-ref', default='cd77067', help='a commit with the old sandbox (the last one before this change)'
    )
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'sandbox.json'))
    a = ap.parse_args(argv)
    variants = {}
    old = old_module(a.old_ref)
    if old is not None and not hasattr(old, 'isolation_probe'):
        variants['old'] = lambda: old.run_with_tests(PROG, TESTS)
    if not sandbox._bwrap_works():
        variants['new_full'] = new_variant({'bwrap': True, 'landlock': True, 'audit_hook': True})
    variants['new_weak'] = new_variant({'bwrap': False, 'landlock': False, 'audit_hook': True})
    times = {k: [] for k in variants}
    for k, run in variants.items():
        assert run().passed, k  # warm up, and check they pass
    for _ in range(a.runs):
        for k, run in variants.items():
            t0 = time.perf_counter()
            r = run()
            times[k].append(time.perf_counter() - t0)
            assert r.passed, (k, r)
    out = dict(
        runs=a.runs,
        machine=dict(cpus=os.cpu_count(), python=platform.python_version(), kernel=platform.release()),
        median_ms={k: round(1000 * statistics.median(v), 1) for k, v in times.items()},
        p90_ms={k: round(1000 * sorted(v)[int(0.9 * (len(v) - 1))], 1) for k, v in times.items()},
        isolation=sandbox.isolation_probe(),
        bwrap=sandbox._bwrap_works() or 'works',
    )
    print(json.dumps(out, indent=1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + '\n')
    return out


if __name__ == '__main__':
    main()
