"""Curate stage throughput and memory as the corpus grows (1x / 4x / 16x).

Builds a JSONL corpus from real standard-library files, replicated with per-copy edits (so exact dedup does not
simply drop the copies: every copy goes through every filter, and near dedup sees clusters of real size), then runs
the full curate pipeline in a fresh process per size and records wall time, input MB/s per worker process and peak
RSS. Memory should stay flat: records stream through in shards and only ~1 KB of metadata per kept record stays in
memory (signature, digest, ids), never the text.

    .venv/bin/python benchmarks/curate_scale.py [--base-mb 3] [--sizes 1,4,16] [--num-proc 1]
"""

import argparse, json, os, random, resource, subprocess, sys, sysconfig, tempfile, time
from pathlib import Path

CHILD = r'''
import json, resource, sys, time
from llm_workbench.config import RunConfig, DataConfig, SourceConfig
from llm_workbench.data.curate import curate
src, out, num_proc = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = RunConfig(data=DataConfig(sources=[SourceConfig(name='corpus', kind='jsonl', path=src, license='PSF-2.0')], num_proc=num_proc))
t0 = time.time(); m = curate(cfg, out); wall = time.time() - t0
print(json.dumps(dict(wall_s=wall, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      children_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                      counts=m['counts'], near=m['near_dedup']['removed'])))
'''


def stdlib_docs(max_bytes):
    root = Path(sysconfig.get_paths()['stdlib'])
    files = sorted(
        p for p in root.rglob('*.py') if 'site-packages' not in p.parts and p.stat().st_size < 60_000
    )
    random.Random(0).shuffle(files)
    docs, total = [], 0
    for p in files:
        try:
            t = p.read_text(encoding='utf-8')
        except (UnicodeDecodeError, OSError):
            continue
        docs.append(t)
        total += len(t.encode())
        if total >= max_bytes:
            break
    return docs


def write_corpus(path, docs, copies):
    rng, n, size = random.Random(copies), 0, 0
    with open(path, 'w', encoding='utf-8') as f:
        for c in range(copies):
            for i, t in enumerate(docs):
                if c:  # a copy: a header naming it and ~3% of lines dropped, so it is a near (not exact) duplicate
                    lines = [l for l in t.split('\n') if rng.random() > 0.03]
                    t = f'# variant {c} of document {i}\n' + '\n'.join(lines)
                line = json.dumps({'text': t}) + '\n'
                f.write(line)
                n += 1
                size += len(line.encode())
    return n, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--base-mb', type=float, default=12.0)  # about one full shard (1000 docs) at 1x
    ap.add_argument('--sizes', default='1,4,16')
    ap.add_argument('--num-proc', type=int, default=1)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'curate_scale.json'))
    a = ap.parse_args()
    docs = stdlib_docs(int(a.base_mb * 1e6))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for k in map(int, a.sizes.split(',')):
            src = Path(d, f'corpus{k}.jsonl')
            n, size = write_corpus(src, docs, k)
            r = subprocess.run(
                [sys.executable, '-c', CHILD, str(src), str(Path(d, f'out{k}')), str(a.num_proc)],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                sys.exit(r.stderr[-3000:])
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(
                dict(
                    scale=k,
                    docs=n,
                    input_mb=round(size / 1e6, 1),
                    wall_s=round(res['wall_s'], 1),
                    mb_per_s_per_proc=round(size / 1e6 / res['wall_s'] / a.num_proc, 2),
                    peak_rss_mb=round(max(res['peak_rss_mb'], res['children_peak_rss_mb']), 1),
                    kept=res['counts']['kept'],
                    near_duplicates_removed=res['near'],
                )
            )
            print(json.dumps(rows[-1]), flush=True)
    out = dict(
        num_proc=a.num_proc,
        cpus=os.cpu_count(),
        rows=rows,
        rss_growth_16x_over_1x=round(rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb'], 2)
        if len(rows) > 1
        else None,
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + '\n')
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
