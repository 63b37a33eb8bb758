"""Resume after a topology change: a run checkpointed with 2 processes resumes with 1 (the per-process batch kept,
2 micro-batches accumulated, so the global batch stays), and back, and continues on the samples an uninterrupted run
trains on: the loss at every step matches it within 1e-3 relative (bit-for-bit equality is only promised for the same
topology). The changes are recorded in run.json and metrics.jsonl. The interruptions are clean budget stops (a final
checkpoint each), so the tests do not depend on when a process gets killed."""

import shutil
import pytest
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs
from llm_workbench.train.loop import read_metrics

STEPS, PER_STEP = 20, 8 * 64  # pretraining: a global batch of 8 blocks of 64 tokens
TRAIN = '  seq_len: 64\n  batch_size: 8\n  max_steps: 30\n'  # the start of micro.yaml's train section
LOG = '  log_every: 5\n'
SFT = '  max_steps: 10\n  batch_size: 4\n'  # the start of micro.yaml's sft section


def recipe(processes: int, batch_size: int, stop_at: int | None = None) -> str:
    "The micro recipe over STEPS steps, logging every step, with `processes` x `batch_size`, stopped after `stop_at`."
    train = f'  seq_len: 64\n  batch_size: {batch_size}\n  processes: {processes}\n  max_steps: {STEPS}\n'
    if stop_at:
        train += f'  budget: {{max_tokens: {stop_at * PER_STEP + 1}}}\n'
    text = MICRO.read_text()
    assert TRAIN in text and LOG in text and SFT in text
    return text.replace(TRAIN, train).replace(LOG, '  log_every: 1\n')


def sft_recipe(processes: int, batch_size: int, stop_at: int | None = None) -> str:
    "`recipe(1, 8)` with SFT over 10 steps of 4 pairs, logging every step, as `processes` x `batch_size`."
    sft = f'  max_steps: 10\n  batch_size: {batch_size}\n  processes: {processes}\n  log_every: 1\n'
    if stop_at:  # the budget counts max_length (64) tokens per pair
        sft += f'  budget: {{max_tokens: {stop_at * 4 * 64 + 1}}}\n'
    return recipe(1, 8).replace(SFT, sft)


def run(ws, text: str, stages: str, run_dir=None):
    (ws / 'r.yaml').write_text(text)
    extra = ['--run-dir', run_dir] if run_dir else []
    r = llmwb(ws, 'run', 'r.yaml', *extra, '--stages', stages, '--no-progress')
    assert r.returncode == 0, r.stdout[-4000:]
    return run_dirs(ws)[0]


def losses(rd, stage: str = 'pretrain') -> dict:
    return {r['step']: r['loss'] for r in read_metrics(rd / stage / 'metrics.jsonl') if 'loss' in r}


def assert_same_curve(want: dict, got: dict, steps: int):
    assert sorted(want) == sorted(got) == list(range(1, steps + 1)), (sorted(want), sorted(got))
    for step in want:
        assert abs(want[step] - got[step]) <= 1e-3 * abs(want[step]), (step, want[step], got[step])


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "The uninterrupted run: curated and pretrained in one process with the whole batch of 8."
    return run(
        make_workspace(tmp_path_factory.mktemp('ref'), tracking='none'), recipe(1, 8), 'curate,pretrain'
    )


def topology(processes: int, batch_size: int, grad_accum: int) -> dict:
    return dict(
        processes=processes,
        batch_size=batch_size,
        grad_accum=grad_accum,
        global_batch=processes * batch_size * grad_accum,
    )


def test_pretrain_resumes_across_topologies(reference, tmp_path):
    "2 processes x 4 to step 10, then 1 process x 4 (accumulating 2) to step 15, then 2 x 4 again to step 20."
    ws = make_workspace(tmp_path / 'moved', tracking='none')
    rd = run(ws, recipe(2, 4, stop_at=10), 'curate,pretrain')
    first = read_run(rd)['stages']['pretrain']['metrics']
    assert (first['steps'], first['stopped_by'], first['processes']) == (10, 'max_tokens', 2), first
    assert first['topology_change'] is None

    run(ws, recipe(1, 4, stop_at=15), 'pretrain', rd)
    second = read_run(rd)['stages']['pretrain']['metrics']
    two, one = topology(2, 4, 1), topology(1, 4, 2)
    assert (second['steps'], second['resumed_from'], second['global_batch']) == (15, 'checkpoint-10', 8), (
        second
    )
    assert second['topology_change'] == dict(at_step=10, before=two, after=one), second['topology_change']

    run(ws, recipe(2, 4), 'pretrain', rd)
    third = read_run(rd)['stages']['pretrain']['metrics']
    assert (third['steps'], third['resumed_from'], third['processes']) == (STEPS, 'checkpoint-15', 2), third
    assert third['topology_change'] == dict(at_step=15, before=one, after=two), third['topology_change']

    events = [r for r in read_metrics(rd / 'pretrain/metrics.jsonl') if r.get('event') == 'topology_change']
    assert [(e['step'], e['after']['processes']) for e in events] == [(10, 1), (15, 2)], events
    assert_same_curve(losses(reference), losses(rd), STEPS)


def test_sft_resumes_with_one_process(reference, tmp_path):
    "SFT: 2 processes x 2 pairs to step 5, then 1 process x 2 pairs accumulating 2, against 1 x 4 throughout."
    copies = {}
    for name in ('one', 'moved'):
        ws = make_workspace(tmp_path / name, tracking='none')
        shutil.copytree(reference, ws / 'runs' / reference.name)
        copies[name] = ws
    single = run(copies['one'], sft_recipe(1, 4), 'sft', copies['one'] / 'runs' / reference.name)
    moved = copies['moved'] / 'runs' / reference.name
    run(copies['moved'], sft_recipe(2, 2, stop_at=5), 'sft', moved)
    assert read_run(moved)['stages']['sft']['metrics']['steps'] == 5
    run(copies['moved'], sft_recipe(1, 2), 'sft', moved)
    metrics = read_run(moved)['stages']['sft']['metrics']
    assert (metrics['steps'], metrics['resumed_from']) == (10, 'checkpoint-5'), metrics
    assert metrics['topology_change'] == dict(at_step=5, before=topology(2, 2, 1), after=topology(1, 2, 2))
    assert_same_curve(losses(single, 'sft'), losses(moved, 'sft'), 10)
