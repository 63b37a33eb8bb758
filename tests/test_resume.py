"Kill the real process with SIGKILL in the middle of training, rerun the same command: it resumes from the last complete checkpoint and ends with the same weights, bit for bit, as a run that was never interrupted."

import hashlib, json, os, signal, subprocess, time
from pathlib import Path
import pytest
from conftest import LLMWB, MICRO, llmwb, make_workspace, read_run, run_dirs

STEPS = 240


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def recipe(tmp_path_factory):
    d = tmp_path_factory.mktemp('resume')
    text = (
        MICRO.read_text()
        .replace('max_steps: 30', f'max_steps: {STEPS}')
        .replace('save_every: 15', 'save_every: 40')
    )
    (d / 'long.yaml').write_text(text.replace('eval_every: 15', 'eval_every: 80'))
    return d / 'long.yaml'


def test_sigkill_then_resume_is_bit_identical(recipe, tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
    p = subprocess.Popen(
        [str(LLMWB), 'run', str(recipe), '--stages', 'curate,pretrain', '--no-progress'],
        cwd=ws,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline, ck = time.time() + 300, None
    while time.time() < deadline and ck is None:
        ck = (
            next(iter(sorted((ws / 'runs').glob('*/pretrain/checkpoints/checkpoint-80'))), None)
            if (ws / 'runs').exists()
            else None
        )
        time.sleep(0.2)
    assert ck is not None, 'no checkpoint appeared'
    os.killpg(p.pid, signal.SIGKILL)  # llmwb, papermill and the kernel, mid-training
    p.wait(timeout=30)
    (rd,) = run_dirs(ws)
    assert not (rd / 'pretrain/model/model.safetensors').exists(), (
        'the run finished before it was killed: raise STEPS'
    )
    assert read_run(rd)['stages']['pretrain']['status'] == 'running'

    r = llmwb(ws, 'run', recipe, '--run-dir', rd, '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    run = read_run(rd)
    assert run['stages']['curate']['skipped'] and run['stages']['pretrain']['status'] == 'completed'
    assert run['stages']['pretrain']['metrics']['resumed_from'] in {
        f'checkpoint-{s}' for s in range(80, STEPS, 40)
    }

    ws2 = make_workspace(tmp_path / 'ws2', tracking='none')
    r = llmwb(ws2, 'run', recipe, '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    (clean,) = run_dirs(ws2)
    assert sha(rd / 'pretrain/model/model.safetensors') == sha(clean / 'pretrain/model/model.safetensors')


def test_corrupt_checkpoint_is_skipped(recipe, tmp_path):
    "A checkpoint whose files no longer match its seal is never loaded: the run resumes from an earlier one, with a warning."
    from llm_workbench.train.loop import last_checkpoint

    ws = make_workspace(tmp_path / 'ws', tracking='none')
    assert llmwb(ws, 'run', recipe, '--stages', 'curate,pretrain', '--no-progress').returncode == 0
    (rd,) = run_dirs(ws)
    cks = sorted((rd / 'pretrain/checkpoints').glob('checkpoint-*'), key=lambda p: int(p.name.split('-')[1]))
    newest = cks[-1]
    with open(newest / 'optimizer.pt', 'r+b') as f:
        f.truncate(10)
    with pytest.warns(UserWarning, match=f'skipping checkpoint .*{newest.name}'):
        assert Path(last_checkpoint(rd / 'pretrain')).name == cks[-2].name
