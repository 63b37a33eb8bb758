"""Quickstart benchmark: wall time of `llmwb run` (the built-in recipe) end to end, per stage, and what it bought.

Runs the real CLI in a throwaway workspace and prints one JSON object; `--out FILE` also writes it.
Budget (README of this folder): under 10 minutes on 2 CPU cores, aiming for 5.
"""

import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

BUDGET_S, AIM_S = 600, 300


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('config', nargs='?', help='recipe (default: the built-in quickstart)')
    ap.add_argument('--out', help='write the result JSON here too')
    ap.add_argument('--tracking', default='wandb-offline')
    a = ap.parse_args()
    llmwb = Path(sys.executable).parent / 'llmwb'
    with tempfile.TemporaryDirectory() as ws:
        Path(ws, 'settings.ini').write_text(
            f'[llmwb]\nruns_path = runs\nreports_path = reports\ntracking = {a.tracking}\n'
        )
        t0 = time.time()
        r = subprocess.run(
            [str(llmwb), 'run', *([a.config] if a.config else []), '--no-progress'],
            cwd=ws,
            capture_output=True,
            text=True,
        )
        wall = time.time() - t0
        if r.returncode:
            sys.exit(f'run failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
        run = json.loads(next(Path(ws, 'runs').glob('*/run.json')).read_text())
    res = dict(
        recipe=run['config']['name'],
        wall_s=round(wall, 1),
        budget_s=BUDGET_S,
        within_budget=wall < BUDGET_S,
        within_aim=wall < AIM_S,
        stages={k: v['duration_s'] for k, v in run['stages'].items()},
        metrics=run['metrics'],
        model_sha256=run['stages']['pretrain']['metrics']['model_sha256'],
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), torch=run['environment']['torch']),
    )
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
