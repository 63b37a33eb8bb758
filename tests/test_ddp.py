"Data-parallel pretraining on CPU: two processes under torchrun (gloo) with half the batch each follow the same loss curve as one process with the whole batch."

from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs
from llm_workbench.train.loop import read_metrics


def run_pretrain(ws, recipe_text):
    (ws / 'r.yaml').write_text(recipe_text)
    r = llmwb(ws, 'run', 'r.yaml', '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-4000:]
    (rd,) = run_dirs(ws)
    return rd


def test_two_processes_match_one(tmp_path):
    base = MICRO.read_text().replace('max_steps: 30', 'max_steps: 20').replace('log_every: 5', 'log_every: 1')
    single = run_pretrain(make_workspace(tmp_path / 'one', tracking='none'), base)
    ddp = run_pretrain(
        make_workspace(tmp_path / 'two', tracking='none'),
        base.replace('  batch_size: 8\n  max_steps', '  batch_size: 4\n  processes: 2\n  max_steps'),
    )
    assert (
        read_run(ddp)['config']['train']['processes'] == 2
        and read_run(ddp)['config']['train']['batch_size'] == 4
    )
    a = {r['step']: r['loss'] for r in read_metrics(single / 'pretrain/metrics.jsonl') if 'loss' in r}
    b = {r['step']: r['loss'] for r in read_metrics(ddp / 'pretrain/metrics.jsonl') if 'loss' in r}
    assert sorted(a) == sorted(b) and len(a) >= 20
    for step in a:
        assert abs(a[step] - b[step]) < 1e-3 * max(1.0, abs(a[step])), (step, a[step], b[step])
    assert read_run(ddp)['stages']['pretrain']['metrics']['steps'] == 20
