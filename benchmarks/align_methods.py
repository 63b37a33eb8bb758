"""Alignment overhead benchmark: steps/s of each method through our path (`train_preference`, or `train_grpo` for GRPO,
as the align stage calls them: the shared loop with its metrics, token counter, progress callbacks and atomic
checkpoints) against the same TRL trainer class driven by a bare script (the same TRL config object, datasets, model,
reference and, for GRPO, a fresh `SandboxReward` of the same settings; no callbacks of ours), in one process.

Model: the quickstart shape (`ModelConfig()`: hidden 128, 4 layers), built by `build_model` under one seed and copied
for every run; a byte-level BPE of 4,096 tokens. Data: curate-shaped code pairs (signature and docstring as the prompt,
the real body chosen, a broken or insecure body rejected), 2 x `--steps` x batch of them. GRPO: the doctest tasks of
five small documented functions, verified in the sandbox like the align stage's, groups of 4 completions of 16 tokens
each rewarded by the sandbox (the same rewards on both paths: one seed, the same samples). Settings: the quickstart's
align section (batch 4, max_length 128) for `--steps` steps, no evaluation, no checkpoint inside the timed window
(our path's final save happens after it, as it does in a run).

The two paths run alternately, `--rounds` times (bare first in even rounds), so drift in a shared machine's load hits
both alike. Reported per method: median over rounds of ours/bare steps/s in the same round (the target is >= 0.95),
and the range. Prints one JSON object and writes benchmarks/results/align_methods.json (or --out). Budget: about 5
minutes on 2 idle CPU cores with the defaults.
"""

import argparse, copy, json, os, platform, statistics, sys, tempfile, time
from pathlib import Path

import torch

from llm_workbench.align.dpo import DPO_LOSSES, preference_dataset, reference_model
from llm_workbench.align.methods import REFERENCE_FREE, answerable, kto_dataset, method_args, train_preference
from llm_workbench.align.grpo import SandboxReward, _reference_folder, grpo_args, grpo_dataset, train_grpo
from llm_workbench.config import AlignConfig, ModelConfig, SandboxConfig
from llm_workbench.eval.tasks import doctest_tasks
from llm_workbench.train.loop import _quiet_datasets
from llm_workbench.train.model import build_model
from llm_workbench.train.tokenizer import train_tokenizer

TARGET = 0.95
METHODS = ('dpo', 'ipo', 'hinge', 'robust', 'simpo', 'orpo', 'kto', 'grpo')
OPS = [('add', 'x + y'), ('mul', 'x * y'), ('sub', 'x - y'), ('mod', 'x % y'), ('avg', '(x + y) / 2')]
BAD = ['    return eval(input())\n', '    return x +\n', '    import os; os.system(y)\n    return x\n']


def pair_rows(n: int) -> list[dict]:
    "Curate-shaped preference rows: a documented signature, the real body chosen, a broken or insecure one rejected."
    rows = []
    for i in range(n):
        name, expr = OPS[i % len(OPS)]
        extra = ''.join(f'    r{j} = r + {j}\n' for j in range(i % 3))
        rows.append(
            dict(
                prompt=f'def {name}_{i}(x, y):\n    """Return the {name} of x and y."""\n',
                chosen=f'    r = {expr}\n{extra}    return r\n',
                rejected=BAD[i % len(BAD)],
            )
        )
    return rows


SANDBOX = SandboxConfig(timeout_s=10)


def doctest_records() -> list[dict]:
    "Records of five small documented functions with doctests: the GRPO tasks' source."
    out = []
    for i, (name, expr) in enumerate(OPS):
        x, y = 7 + i, 3
        want = eval(expr, {}, dict(x=x, y=y))
        doc = f'    """Return the {name} of x and y.\n\n    >>> {name}({x}, {y})\n    {want}\n    """\n'
        out.append(dict(id=f'r{i}', text=f'def {name}(x, y):\n{doc}    return {expr}\n', location=''))
    return out


def trl_class(method: str):
    "The plain TRL trainer class of `method` (no mixin, no atomic checkpoints)."
    if method in DPO_LOSSES:
        from trl import DPOTrainer

        return DPOTrainer
    if method == 'simpo':
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer
    if method == 'orpo':
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer
    from trl import KTOTrainer

    return KTOTrainer


def bare_run(method: str, model, tok, rows, cfg: AlignConfig, out: Path) -> float:
    "Seconds of `trainer.train()` for the TRL trainer of `method` built directly from the same config and data."
    if method == 'grpo':
        return bare_grpo(model, tok, rows, cfg, out)
    args = method_args(cfg, out, 0, report_to=[])
    args.max_length = cfg.max_length
    args.eval_strategy = 'no'
    ds = preference_dataset(rows)
    if method not in DPO_LOSSES:
        ds = answerable(ds, tok, cfg.max_length)
    if method == 'kto':
        ds = kto_dataset(None, seed=0, pairs=ds)
    extra = {} if method in REFERENCE_FREE else dict(ref_model=reference_model(model))
    with _quiet_datasets():
        trainer = trl_class(method)(model=model, args=args, train_dataset=ds, processing_class=tok, **extra)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def bare_grpo(model, tok, tasks, cfg: AlignConfig, out: Path) -> float:
    "Seconds of `trainer.train()` for a `GRPOTrainer` built directly from the same config, prompts and reward."
    from trl import GRPOTrainer

    args = grpo_args(cfg, out, 0)
    ds = grpo_dataset(tasks, tok, cfg.max_length - cfg.grpo.max_completion_length)
    if cfg.grpo.beta > 0:
        _reference_folder(model, out)
    reward = SandboxReward(SANDBOX)
    with _quiet_datasets():
        trainer = GRPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, reward_funcs=[reward])
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def ours_run(method: str, model, tok, rows, cfg: AlignConfig, out: Path) -> float:
    "Seconds of the training call inside `train_preference` or `train_grpo` (`wall_s`), the align stage's path."
    if method == 'grpo':
        return train_grpo(model, tok, rows, cfg, SANDBOX, out, 0)['wall_s']
    ref = None if method in REFERENCE_FREE else reference_model(model)
    return train_preference(model, tok, rows, [], cfg, out, 0, ref_model=ref)['wall_s']


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--methods', default=','.join(METHODS))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results/align_methods.json'))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = pair_rows(a.steps * 4 * 2)
    tok = train_tokenizer([r['prompt'] + r['chosen'] + r['rejected'] for r in rows], vocab_size=4096)
    base = build_model(ModelConfig(), len(tok), tok.eos_token_id, seed=0)
    tasks = doctest_tasks(doctest_records(), timeout=10)
    t_start = time.time()
    out = {}
    for method in a.methods.split(','):
        cfg = AlignConfig(
            method=method,
            max_steps=a.steps,
            batch_size=4,
            max_length=128,
            log_every=5,
            eval_every=10 * a.steps,
            save_every=10 * a.steps,
            grpo=dict(num_generations=4, max_completion_length=16),
        )
        data = tasks if method == 'grpo' else rows
        rounds = []
        for r in range(a.rounds):
            order = ('bare', 'ours') if r % 2 == 0 else ('ours', 'bare')
            secs = {}
            for path in order:
                with tempfile.TemporaryDirectory() as d:
                    run = bare_run if path == 'bare' else ours_run
                    secs[path] = run(method, copy.deepcopy(base), tok, data, cfg, Path(d))
            rounds.append(dict(secs, ratio=round(secs['bare'] / secs['ours'], 4)))
            print(method, r, rounds[-1], file=sys.stderr, flush=True)
        ratios = [x['ratio'] for x in rounds]
        out[method] = dict(
            ratio=round(statistics.median(ratios), 4),
            ratio_range=[min(ratios), max(ratios)],
            steps_per_s_ours=round(a.steps / statistics.median(x['ours'] for x in rounds), 2),
            steps_per_s_bare=round(a.steps / statistics.median(x['bare'] for x in rounds), 2),
            rounds=rounds,
        )
    res = dict(
        benchmark='align_methods',
        steps=a.steps,
        rounds=a.rounds,
        target=TARGET,
        methods=out,
        meets_target={m: v['ratio'] >= TARGET for m, v in out.items()},
        wall_s=round(time.time() - t_start, 1),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), torch=torch.__version__),
    )
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
