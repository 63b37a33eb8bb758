"""Curate on Ray Data (`data.engine: ray`) vs the local engine, on the curate-scale corpus
(benchmarks/curate_scale.py: real standard-library files, replicated with per-copy edits so every copy goes
through every filter and near dedup sees real clusters).

Each configuration runs in a fresh process: the local engine with one process, the local engine with
`num_proc` worker processes, and Ray with a local cluster of `--workers` CPUs (started before the clock; its
start is reported apart). Every run must give the same dataset_sha256. Wall time per pass comes from timing
the library's pass functions in the child: what is per record (read and filter, admit), what is a shuffle
(exact dedup by digest, LSH by band), what is sequential on the driver (counting, the split writer).

    .venv/bin/python benchmarks/curate_ray.py [--base-mb 12] [--sizes 1,4] [--workers 2] [--shard-size 250]
"""

import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from curate_scale import stdlib_docs, write_corpus  # noqa: E402 (the same corpus)

CHILD = r'''
import contextlib, json, sys, time
from llm_workbench.config import RunConfig, DataConfig, SourceConfig, RayConfig
import llm_workbench.data.curate as C
import llm_workbench.data.ray_engine as R

src, out, engine = sys.argv[1:4]
workers, shard_size = int(sys.argv[4]), int(sys.argv[5])
steps = {}


def timed(module, name):
    f = getattr(module, name)

    def timed_f(*args, **kwargs):
        t = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            steps[name] = steps.get(name, 0.0) + time.perf_counter() - t

    setattr(module, name, timed_f)


for name in ('read_pass', 'split_pass', 'near_dedup_pass', 'write_pass'):
    timed(C, name)
RAY_STEPS = ('filter_pass', 'exact_duplicates', 'admit_pass', 'near_dedup_pass')
RAY_STEPS += ('candidate_pairs', 'ray_jaccard')
for name in RAY_STEPS:
    timed(R, name)
source = SourceConfig(name='corpus', kind='jsonl', path=src, license='PSF-2.0')
num_proc = workers if engine == 'local' else 1
ray = RayConfig(num_cpus=workers)
data = DataConfig(sources=[source], engine=engine, num_proc=num_proc, ray=ray, shard_size=shard_size)
cfg = RunConfig(data=data)
t0 = time.perf_counter()
with R.ray_session(data.ray) if engine == 'ray' else contextlib.nullcontext():
    start = time.perf_counter() - t0
    t1 = time.perf_counter()
    m = C.curate(cfg, out)
    wall = time.perf_counter() - t1
print(json.dumps(dict(wall_s=wall, start_s=start if engine == 'ray' else 0.0, steps=steps,
                      sha=m['dataset_sha256'], counts=m['counts'], shards=m['scale']['shards'])))
'''


def run(src: Path, out: Path, engine: str, workers: int, shard_size: int) -> dict:
    r = subprocess.run(
        [sys.executable, '-c', CHILD, str(src), str(out), engine, str(workers), str(shard_size)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--base-mb', type=float, default=12.0)
    ap.add_argument('--sizes', default='1,4')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--shard-size', type=int, default=250)  # shards are the unit of parallel work
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'curate_ray.json'))
    a = ap.parse_args()
    docs = stdlib_docs(int(a.base_mb * 1e6))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for k in map(int, a.sizes.split(',')):
            src = Path(d, f'corpus{k}.jsonl')
            n, size = write_corpus(src, docs, k)
            runs = [('local', 1), ('local', a.workers), ('ray', a.workers)]
            load = os.getloadavg()[0]
            res = {f'{e}-{w}': run(src, Path(d, f'out{k}-{e}-{w}'), e, w, a.shard_size) for e, w in runs}
            shas = {r['sha'] for r in res.values()}
            assert len(shas) == 1, f'engines disagree: {shas}'
            base = res['local-1']['wall_s']
            for name, r in res.items():
                row = dict(
                    scale=k,
                    docs=n,
                    input_mb=round(size / 1e6, 1),
                    run=name,
                    wall_s=round(r['wall_s'], 1),
                    speedup_vs_local_1=round(base / r['wall_s'], 2),
                    ray_start_s=round(r['start_s'], 1),
                    steps={s: round(t, 2) for s, t in r['steps'].items()},
                    kept=r['counts']['kept'],
                    shards=r['shards'],
                    load_before=round(load, 1),
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = dict(workers=a.workers, shard_size=a.shard_size, cpus=os.cpu_count(), same_dataset_sha256=True)
    out |= dict(load_after=round(os.getloadavg()[0], 1), rows=rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + '\n')


if __name__ == '__main__':
    main()
