"`llmwb sweep` on the micro recipe: trials reuse shared stages, a SIGKILLed sweep continues without duplicates, the budget stops it, the winner is selected honestly and reported offline."

import json, os, signal, subprocess, time
from pathlib import Path
import pytest
from llm_workbench.config import load_config
from llm_workbench.report import external_resources
from llm_workbench.sweep import load_sweep
from conftest import LLMWB, MICRO, ROOT, llmwb, make_workspace, read_run

SWEEP = """name: kill
objective: sft_eval_loss
sampler: grid
space:
  sft.lr: {choice: [0.001, 0.01]}
  sft.warmup_steps: {choice: [0, 3]}
set: [align.enabled=false]
budget: {max_trials: 3}
pruner: {kind: none}
selection: {seeds: 1, final_run: false}
"""


def _children(pid: int) -> list[int]:
    "The ids of all descendants of process `pid` (read from /proc)."
    kids = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _sweep_dir(ws: Path) -> Path:
    (d,) = [p for p in (ws / 'sweeps').iterdir() if p.name.startswith('kill-')]
    return d


@pytest.fixture(scope='module')
def killed_sweep(tmp_path_factory):
    "A 3-trial grid sweep SIGKILLed while trial 1 trains, then rerun to the end: (workspace, rerun result)."
    ws = make_workspace(tmp_path_factory.mktemp('sweep'), tracking='none')
    (ws / 'sweep.yaml').write_text(SWEEP)
    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
    log = open(ws / 'first.log', 'w')
    p = subprocess.Popen(
        [str(LLMWB), 'sweep', MICRO, 'sweep.yaml'],
        cwd=ws,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        runs = list((ws / 'runs').glob('kill-*-t001/run.json'))
        if runs and json.loads(runs[0].read_text())['stages']['sft'].get('status') == 'running':
            time.sleep(8)  # into trial 1's SFT
            break
        time.sleep(1)
    assert p.poll() is None, (ws / 'first.log').read_text()[-3000:]
    for pid in [p.pid, *_children(p.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()
    r = llmwb(ws, 'sweep', MICRO, 'sweep.yaml')
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    return ws, r


def test_killed_sweep_continues_without_duplicates(killed_sweep):
    ws, r = killed_sweep
    summary = json.loads((_sweep_dir(ws) / 'sweep.json').read_text())
    trials = summary['trials']
    test_params = [tuple(sorted(t['params'].items())) for t in trials]
    assert [t['number'] for t in trials] == [0, 1, 2] and len(set(test_params)) == 3, trials
    assert all(t['state'] == 'COMPLETE' and t['values'] for t in trials), trials
    assert 'trial 1 was running when the sweep stopped: resuming it' in r.stdout
    t1 = read_run(ws / 'runs' / trials[1]['run_id'])
    assert t1['invocations'] == 2 and t1['sweep_id'] == summary['sweep_id']  # the same run dir, resumed
    assert t1['sweep_params'] == trials[1]['params']
    assert summary['stop_reason'] == 'max_trials: 3 trials of 3'  # the budget stopped the search


def test_curate_and_pretrain_run_once_for_all_trials(killed_sweep):
    ws, _ = killed_sweep
    trials = json.loads((_sweep_dir(ws) / 'sweep.json').read_text())['trials']
    runs = [read_run(ws / 'runs' / t['run_id']) for t in trials]
    for stage in ('curate', 'pretrain'):
        executed = [r['run_id'] for r in runs if not r['stages'][stage].get('reused')]
        assert len(executed) == 1, (stage, executed)
        hashes = {r['stages'][stage]['outputs_sha256'] for r in runs}
        assert len(hashes) == 1
    assert all(not r['stages']['sft'].get('reused') for r in runs)  # the swept stage ran in each trial
    assert runs[2]['stages']['curate']['reused']['from_run'] == runs[0]['run_id']
    assert trials[1]['reused'] == ['curate', 'pretrain'] and trials[0]['reused'] == []
    assert trials[0]['seconds'] > trials[2]['seconds']  # reuse saves the shared stages' time


def test_selection_and_report(killed_sweep):
    ws, r = killed_sweep
    d = _sweep_dir(ws)
    summary = json.loads((d / 'sweep.json').read_text())
    sel = summary['selection']
    best = min(summary['trials'], key=lambda t: t['values'][0])
    assert sel['trial'] == best['number'] and [s['seed'] for s in sel['seeds']] == [7, 8]
    # a training seed keeps the data: every seed re-run measures the objective on the same val split
    assert all(s['value'] is not None for s in sel['seeds']), sel['seeds']
    assert sel['interval']['n'] == 2
    assert sel['interval']['low'] <= sel['interval']['mean'] <= sel['interval']['high']
    cfg = load_config(d / 'selected.yaml')
    assert (cfg.sft.lr, cfg.sft.warmup_steps) == (
        best['params']['sft.lr'],
        best['params']['sft.warmup_steps'],
    )
    assert not cfg.align.enabled
    seed_run = read_run(ws / 'runs' / sel['seeds'][1]['run_id'])
    assert (seed_run['seed'], seed_run['seeds']['train']) == (7, 8), seed_run['seeds']
    stages = seed_run['stages']
    assert stages['curate'].get('reused') and not stages['sft'].get('reused')  # same data, new training
    assert 'evaluate' not in [s for s, st in stages.items() if st.get('status') == 'completed']  # no test scoring
    page = (d / 'report.html').read_text()
    assert external_resources(page) == []
    for t in summary['trials']:
        assert f'href="../../reports/{t["run_id"]}/index.html"' in page
        assert (ws / 'reports' / t['run_id'] / 'index.html').is_file()
    assert 'Optimisation history' in page and 'Parameter importances' in page and 'bootstrap interval' in page
    assert f"report {d / 'report.html'}" in r.stdout


def test_budget_stops_a_sweep(killed_sweep):
    ws, _ = killed_sweep
    (ws / 'tokens.yaml').write_text(
        SWEEP.replace('name: kill', 'name: tokens')
        .replace('[0.001, 0.01]', '[0.003]')
        .replace('max_trials: 3', 'max_trials: 3, max_tokens: 100')
    )
    r = llmwb(ws, 'sweep', MICRO, 'tokens.yaml', '--no-select')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (d,) = [p for p in (ws / 'sweeps').iterdir() if p.name.startswith('tokens-')]
    summary = json.loads((d / 'sweep.json').read_text())
    assert len(summary['trials']) == 1 and summary['stop_reason'].startswith('max_tokens: spent ')
    assert summary['trials'][0]['reused'] == ['curate', 'pretrain']  # the cache is shared between sweeps
    assert 'search stopped: max_tokens' in r.stdout


def test_sweep_file_errors_name_file_and_line(tmp_path):
    ws = make_workspace(tmp_path)
    (ws / 'bad.yaml').write_text(
        'name: bad\nobjective: sft_eval_loss\nspace:\n  sft.lr: {log_uniform: [1.0e-4, 3.0e-3]}\n'
        '  sft.nope: {choice: [1, 2]}\n  sft.max_steps: {int_uniform: [0, 4]}\n'
    )
    r = llmwb(ws, 'sweep', MICRO, 'bad.yaml', timeout=120)
    assert r.returncode == 2 and 'invalid sweep file' in r.stderr, r.stderr
    assert 'bad.yaml:5: space.sft.nope' in r.stderr and 'bad.yaml:6: space.sft.max_steps: value 0' in r.stderr
    assert not (ws / 'runs').exists()  # nothing ran


def test_example_sweep_file():
    spec = load_sweep(ROOT / 'configs' / 'sweeps' / 'micro-sft.yaml', MICRO)
    assert spec.objective == ['sft_eval_loss'] and set(spec.space) == {'sft.lr', 'sft.warmup_steps'}


JOBS = """name: jobs
objective: sft_eval_loss
sampler: grid
seed: 1                             # grid order: sft.max_steps 2, 9, 8
space:
  sft.max_steps: {choice: [2, 9, 8]}
set: [align.enabled=false]
budget: {max_trials: 3, max_tokens: 3000}
pruner: {kind: none}
"""


def test_parallel_jobs_share_the_study_and_the_budget(killed_sweep):
    "--jobs 2: trial 0 alone (shared stages), then trials 1 and 2 at once, each with a share of the budget."
    ws, _ = killed_sweep
    (ws / 'jobs.yaml').write_text(JOBS)
    r = llmwb(ws, 'sweep', MICRO, 'jobs.yaml', '--no-select', '--jobs', '2')
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    (d,) = [p for p in (ws / 'sweeps').iterdir() if p.name.startswith('jobs-')]
    trials = json.loads((d / 'sweep.json').read_text())['trials']
    assert [t['number'] for t in trials] == [0, 1, 2], trials
    assert sorted(t['params']['sft.max_steps'] for t in trials) == [2, 8, 9]  # no point twice
    assert all(t['state'] in ('COMPLETE', 'FAIL') and t['reused'] == ['curate', 'pretrain'] for t in trials)
    assert '2 jobs of 1 torch thread(s) each' in r.stdout and '[job 0]' in r.stdout and '[job 1]' in r.stdout
    runs = [read_run(ws / 'runs' / t['run_id']) for t in trials]
    sft = [run['stages']['sft'] for run in runs]
    assert sft[1]['started'] < sft[2]['ended'] and sft[2]['started'] < sft[1]['ended']  # ran at the same time
    # in-trial budget: trial 0 alone gets all 3000 tokens; trials 1 and 2 split what it left (2 jobs)
    spent0 = trials[0]['tokens']
    assert spent0 == 2 * 4 * 64  # two SFT steps of 4 x 64 tokens
    budgets = [run['config']['sft']['budget']['max_tokens'] for run in runs]
    share = (3000 - spent0) // 2  # 1244 tokens: 4 steps, then the next would pass it
    assert budgets == [3000, share, share], budgets
    for t, st, cap in zip(trials[1:], sft[1:], budgets[1:]):
        assert st['metrics']['stopped_by'] == 'max_tokens' and t['tokens'] <= cap  # stopped inside its share
    assert sum(t['tokens'] for t in trials) <= 3000  # the sweep did not overrun its budget


def test_ls_groups_runs_by_sweep(killed_sweep):
    ws, _ = killed_sweep
    r = llmwb(ws, 'run', MICRO, '--stages', 'curate', '--no-progress')  # a plain run beside the sweeps
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = llmwb(ws, 'ls')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    sid = json.loads((_sweep_dir(ws) / 'sweep.json').read_text())['sweep_id']
    head = lines.index(f'sweep {sid}  (3 trials, 1 other runs)')  # the trials and the seed re-run
    members = lines[head + 1 : head + 5]
    expected = [f'{sid}-best-seed8', f'{sid}-t000', f'{sid}-t001', f'{sid}-t002']
    assert [m.split()[0] for m in members] == expected
    assert all(m.startswith('  ') and m.split()[1] == 'partial' for m in members)  # curate to sft only
    first_sweep = min(i for i, line in enumerate(lines) if line.startswith('sweep '))
    plain = lines[1:first_sweep]
    assert len(plain) == 1 and 'micro' in plain[0] and not plain[0].startswith(' ')  # plain runs first
