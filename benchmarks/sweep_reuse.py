"""Time saved by the stage cache on a sweep over SFT keys of the micro recipe.

The same trials (a grid over sft.lr, curate and pretrain unchanged) run twice in a throwaway workspace: once as
`llmwb sweep` trials sharing the stage cache, once as independent runs without it. Prints and writes (--out) the
wall time of each trial both ways and the saving.

    python benchmarks/sweep_reuse.py [--trials 3] [--jobs 1] [--out benchmarks/results/sweep_reuse.json]

--jobs N runs the sweep's trials N at once (`llmwb sweep --jobs N`); the independent runs stay sequential.
"""

import argparse, json, tempfile, time
from pathlib import Path
from llm_workbench.core import load_settings
from llm_workbench.runner import run_pipeline
from llm_workbench.sweep_run import run_sweep

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / 'configs' / 'micro.yaml'
LRS = [0.001, 0.003, 0.01, 0.02, 0.03]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--trials', type=int, default=3)
    ap.add_argument('--jobs', type=int, default=1, help='trials at once in the sweep')
    ap.add_argument('--out', type=Path)
    a = ap.parse_args()
    ws = Path(tempfile.mkdtemp(prefix='sweep-bench-'))
    (ws / 'settings.ini').write_text('[llmwb]\nruns_path = runs\nreports_path = reports\ntracking = none\n')
    settings = load_settings(ws)
    lrs = LRS[: a.trials]
    (ws / 'sweep.yaml').write_text(
        f"name: bench\nobjective: sft_eval_loss\nsampler: grid\nspace:\n  sft.lr: {{choice: {lrs}}}\n"
        f"set: [align.enabled=false]\nbudget: {{max_trials: {a.trials}}}\npruner: {{kind: none}}\n"
    )
    t0 = time.time()
    summary = run_sweep(MICRO, ws / 'sweep.yaml', settings, log=lambda m: None, select_best=False, jobs=a.jobs)
    swept = time.time() - t0
    with_cache = {t['params']['sft.lr']: t['seconds'] for t in summary['trials']}
    without, t0 = {}, time.time()
    for i, lr in enumerate(lrs):
        t1 = time.time()
        run_pipeline(
            MICRO,
            run_dir=ws / 'runs' / f'plain-{i}',
            stages='curate,pretrain,sft',
            settings=settings,
            progress=False,
            log=lambda m: None,
            overrides=['align.enabled=false', f'sft.lr={lr}'],
        )
        without[lr] = round(time.time() - t1, 1)
    plain = time.time() - t0
    out = dict(
        trials=a.trials,
        jobs=a.jobs,
        sweep_wall_s=round(swept, 1),
        independent_wall_s=round(plain, 1),
        saved_s=round(plain - swept, 1),
        saved_pct=round(100 * (plain - swept) / plain, 1),
        trial_stage_seconds_with_cache=with_cache,
        run_wall_s_without_cache=without,
        reused=[t['reused'] for t in summary['trials']],
    )
    print(json.dumps(out, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=2) + '\n')


if __name__ == '__main__':
    main()
