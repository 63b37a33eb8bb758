"""Near-duplicate benchmark: `llm_workbench.data.neardup` against datasketch's MinHashLSH, same shingles and parameters, in one run.

Corpus: the Python files of the standard library plus mutated copies of some of them (words replaced and lines dropped at known rates,
or only re-indented). Truth: every pair whose exact Jaccard similarity of shingle sets is at least the threshold, found over all pairs
with a sparse matrix product, so near-copies that the standard library already holds count too.
Prints one JSON object and writes it to benchmarks/results/neardup.json (or --out). Budget: under 2 minutes on 2 busy CPU cores.
"""

import argparse, json, os, platform, random, re, sys, sysconfig, time
from importlib import metadata
from pathlib import Path
import numpy as np
from llm_workbench.data.neardup import (
    shingle_hashes,
    minhash_signatures,
    lsh_candidate_pairs,
    jaccard_pairs,
    clusters_from_pairs,
    near_duplicate_clusters,
    lsh_probability,
)

RATES = (
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.08,
    'reindent',
)  # edit rates of the planted copies, used in turn
WORD = re.compile(r'[0-9A-Za-z_]+')
WORD_BYTES = re.compile(rb'[0-9a-z_\x80-\xff]+')  # the words `shingle_hashes` uses, for datasketch


def load_stdlib(min_bytes, max_bytes):
    "Distinct UTF-8 `.py` files of the standard library within the size bounds, in path order."
    root = Path(sysconfig.get_paths()['stdlib'])
    texts, seen = [], set()
    for p in sorted(root.rglob('*.py')):
        if 'site-packages' in p.parts or not min_bytes <= p.stat().st_size <= max_bytes:
            continue
        try:
            t = p.read_text(encoding='utf-8')
        except (UnicodeDecodeError, OSError):
            continue
        if t not in seen:
            seen.add(t)
            texts.append(t)  # exact copies are exact dedup's job
    return texts


def mutate(text, rate, rng, vocab):
    "A copy of `text` with each line dropped with probability rate/2 and each word replaced with probability `rate`; 'reindent' only changes whitespace."
    if rate == 'reindent':
        return '\n'.join(
            re.sub(r'^( {4})+', lambda m: '\t' * (len(m[0]) // 4), l).rstrip() + '  '
            for l in text.split('\n')
        )
    lines = [l for l in text.split('\n') if rng.random() >= rate / 2]
    return WORD.sub(lambda m: rng.choice(vocab) if rng.random() < rate else m[0], '\n'.join(lines))


def build_corpus(base, copies, seed):
    rng = random.Random(seed)
    vocab = sorted({w for t in base[:200] for w in WORD.findall(t)})
    picks = rng.sample(range(len(base)), min(copies, len(base))) * (copies // len(base) + 1)
    planted = [(b, RATES[k % len(RATES)]) for k, b in enumerate(picks[:copies])]
    return base + [mutate(base[b], r, rng, vocab) for b, r in planted], planted


def true_pairs(shingles, threshold):
    "All pairs (i < j) with exact Jaccard >= `threshold`, and their Jaccard, from the sparse product of the document x shingle matrix."
    from scipy import sparse

    lens = np.array([len(s) for s in shingles])
    uniq, col = np.unique(np.concatenate(shingles), return_inverse=True)
    X = sparse.csr_matrix(
        (np.ones(len(col), np.int32), (np.repeat(np.arange(len(shingles)), lens), col)),
        shape=(len(shingles), len(uniq)),
    )
    inter = sparse.triu(X @ X.T, k=1).tocoo()
    jac = inter.data / (lens[inter.row] + lens[inter.col] - inter.data)
    keep = jac >= threshold
    return np.stack([inter.row[keep], inter.col[keep]], 1).astype(np.int64), jac[keep]


def run_ours(texts, p):
    t = [time.perf_counter()]
    sh = [shingle_hashes(x, p.n) for x in texts]
    t.append(time.perf_counter())
    sig = minhash_signatures(sh, p.num_perm, p.seed)
    t.append(time.perf_counter())
    cand = lsh_candidate_pairs(sig, p.bands, p.rows)
    t.append(time.perf_counter())
    pairs = cand[jaccard_pairs(sh, cand) >= p.threshold]
    clusters = clusters_from_pairs(pairs)
    t.append(time.perf_counter())
    return t, cand, pairs, clusters


def ds_shingles(text, n):
    w = WORD_BYTES.findall(text.lower().encode())
    return {b' '.join(w[k : k + n]) for k in range(max(1, len(w) - n + 1))} if w else set()


def run_datasketch(texts, p, prehashed=False):
    "The usual datasketch recipe: MinHash.bulk, MinHashLSH with the same bands x rows, query every document, keep pairs whose estimated Jaccard passes."
    from datasketch import MinHash, MinHashLSH

    t = [time.perf_counter()]
    if prehashed:
        sets, kw = (
            [(shingle_hashes(x, p.n) >> np.uint64(32)).tolist() for x in texts],
            dict(hashfunc=lambda v: v),
        )  # our words and hashes
    else:
        sets, kw = [ds_shingles(x, p.n) for x in texts], {}  # same shingles, as bytes
    t.append(time.perf_counter())
    mhs = MinHash.bulk(sets, num_perm=p.num_perm, seed=p.seed, **kw)
    t.append(time.perf_counter())
    lsh = MinHashLSH(num_perm=p.num_perm, params=(p.bands, p.rows))
    with lsh.insertion_session() as s:
        for i, m in enumerate(mhs):
            s.insert(i, m)
    cand = sorted({(min(i, j), max(i, j)) for i, m in enumerate(mhs) for j in lsh.query(m) if j != i})
    t.append(time.perf_counter())
    pairs = [(i, j) for i, j in cand if mhs[i].jaccard(mhs[j]) >= p.threshold]
    clusters = clusters_from_pairs(pairs)
    t.append(time.perf_counter())
    return t, np.array(cand, np.int64).reshape(-1, 2), np.array(pairs, np.int64).reshape(-1, 2), clusters


def score(name, runs, n_docs, truth, truth_jac):
    "Best-of-runs timing, and pair precision / recall / F1 against the truth (the pairs are the same in every run)."
    best = min(runs, key=lambda r: r[0][-1] - r[0][0])
    t, cand, pairs, clusters = best
    code = lambda a: a[:, 0] * n_docs + a[:, 1]
    tc, hit_c, hit_p = code(truth), np.isin(code(truth), code(cand)), np.isin(code(truth), code(pairs))
    tp = int(hit_p.sum())
    prec, rec = tp / max(len(pairs), 1), tp / max(len(truth), 1)
    bins = [(0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)]
    by_j = {
        f'{lo:.2f}-{min(hi, 1):.2f}': dict(
            pairs=int(m.sum()),
            recall=round(float(hit_p[m].mean()), 3) if m.any() else None,
            lsh_probability=round(float(lsh_probability(lo)), 3),
        )
        for lo, hi in bins
        for m in [(truth_jac >= lo) & (truth_jac < hi)]
    }
    secs = t[-1] - t[0]
    return dict(
        method=name,
        seconds=round(secs, 3),
        seconds_all_runs=[round(r[0][-1] - r[0][0], 3) for r in runs],
        docs_per_s=round(n_docs / secs, 1),
        stages_s=dict(
            zip(
                ('shingles', 'minhash', 'lsh_candidates', 'verify_and_cluster'),
                np.round(np.diff(t), 3).tolist(),
            )
        ),
        candidates=len(cand),
        candidate_recall=round(float(hit_c.mean()), 4),
        pairs=len(pairs),
        true_positives=tp,
        f1_if_candidates_checked_exactly=round(
            2 * hit_c.mean() / (1 + hit_c.mean()), 4
        ),  # precision 1, recall = candidate recall
        precision=round(prec, 4),
        recall=round(rec, 4),
        f1=round(2 * prec * rec / max(prec + rec, 1e-12), 4),
        clusters=len(clusters),
        recall_by_jaccard=by_j,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--copies', type=int, default=1500, help='planted near-copies')
    ap.add_argument('--min-bytes', type=int, default=1000)
    ap.add_argument('--max-bytes', type=int, default=40000)
    ap.add_argument('--repeat', type=int, default=3, help='timed runs of each method (the best counts)')
    ap.add_argument('--threshold', type=float, default=0.8)
    ap.add_argument('--n', type=int, default=5)
    ap.add_argument('--num-perm', type=int, default=112)
    ap.add_argument('--bands', type=int, default=14)
    ap.add_argument('--rows', type=int, default=8)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'neardup.json'))
    p = ap.parse_args()
    t0, load0 = time.time(), os.getloadavg()[0]
    base = load_stdlib(p.min_bytes, p.max_bytes)
    texts, planted = build_corpus(base, p.copies, p.seed)
    sh = [shingle_hashes(x, p.n) for x in texts]
    truth, truth_jac = true_pairs(sh, p.threshold)
    planted_j = jaccard_pairs(sh, [(b, len(base) + k) for k, (b, _) in enumerate(planted)])
    levels = {
        str(r): dict(
            copies=int(m.sum()),
            jaccard_median=round(float(np.median(planted_j[m])), 3),
            jaccard_min=round(float(planted_j[m].min()), 3),
            jaccard_max=round(float(planted_j[m].max()), 3),
        )
        for r in RATES
        for m in [np.array([x == r for _, x in planted])]
        if m.any()
    }
    runs = {k: [] for k in ('ours', 'datasketch', 'datasketch_prehashed')}
    for _ in range(p.repeat):  # interleaved, so both see the same machine load
        runs['ours'].append(run_ours(texts, p))
        runs['datasketch'].append(run_datasketch(texts, p))
        runs['datasketch_prehashed'].append(run_datasketch(texts, p, prehashed=True))
    assert (
        near_duplicate_clusters(texts, p.threshold, p.n, p.num_perm, p.bands, p.rows, p.seed)
        == runs['ours'][0][3]
    )
    res = {k: score(k, v, len(texts), truth, truth_jac) for k, v in runs.items()}
    ours, ds = res['ours'], res['datasketch']
    out = dict(
        benchmark='neardup',
        params=dict(
            shingle_words=p.n,
            num_perm=p.num_perm,
            bands=p.bands,
            rows=p.rows,
            threshold=p.threshold,
            seed=p.seed,
            lsh_probability_at_threshold=round(float(lsh_probability(p.threshold, p.bands, p.rows)), 3),
        ),
        corpus=dict(
            docs=len(texts),
            stdlib_files=len(base),
            planted_copies=len(planted),
            shingles=int(sum(map(len, sh))),
            mean_bytes=round(float(np.mean([len(x.encode()) for x in texts]))),
            true_pairs=len(truth),
            true_pairs_planted=int(np.isin(truth[:, 1], np.arange(len(base), len(texts))).sum()),
            planted_jaccard_by_edit_rate=levels,
        ),
        methods=res,
        comparison=dict(
            speedup_vs_datasketch=round(ds['seconds'] / ours['seconds'], 2),
            speedup_vs_datasketch_prehashed=round(
                res['datasketch_prehashed']['seconds'] / ours['seconds'], 2
            ),
            f1_ours_minus_datasketch=round(ours['f1'] - ds['f1'], 4),
            target_met=bool(ds['seconds'] / ours['seconds'] >= 2 and ours['f1'] >= ds['f1']),
        ),
        machine=dict(
            cpus=os.cpu_count(),
            load_avg_1min_at_start=round(load0, 2),
            platform=platform.platform(),
            python=platform.python_version(),
            numpy=np.__version__,
            datasketch=metadata.version('datasketch'),
        ),
        wall_s=round(time.time() - t0, 1),
    )
    print(json.dumps(out, indent=2))
    Path(p.out).parent.mkdir(parents=True, exist_ok=True)
    Path(p.out).write_text(json.dumps(out, indent=2) + '\n')


if __name__ == '__main__':
    main()
