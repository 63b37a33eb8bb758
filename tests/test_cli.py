"The CLI as a user meets it: help, listing, showing, and clear errors."

import json
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs


def test_help_lists_the_commands(tmp_path):
    r = llmwb(tmp_path, '--help')
    assert r.returncode == 0
    for cmd in ('run', 'ls', 'show', 'lab'):
        assert cmd in r.stdout


def test_ls_on_an_empty_workspace(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    r = llmwb(ws, 'ls')
    assert r.returncode == 0 and 'no runs under' in r.stdout


def test_show_unknown_run_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    r = llmwb(ws, 'show', 'nope')
    assert r.returncode == 2 and "no run 'nope'" in r.stderr


def test_missing_recipe_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    r = llmwb(ws, 'run', 'missing.yaml')
    assert r.returncode == 2 and 'missing.yaml: recipe not found' in r.stderr


def test_unknown_stage_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    r = llmwb(ws, 'run', '--stages', 'curate,trian')
    assert r.returncode == 2 and "unknown stage 'trian'" in r.stderr


def test_ls_and_show_a_run(micro_run):
    ws, _, rd = micro_run
    r = llmwb(ws, 'ls')
    assert (
        r.returncode == 0
        and rd.name in r.stdout
        and 'completed' in r.stdout
        and 'val_perplexity=' in r.stdout
    )
    r = llmwb(ws, 'show', rd.name[:15])  # a unique prefix is enough
    assert r.returncode == 0
    for s in ('curate', 'pretrain', 'evaluate'):
        assert s in r.stdout
    assert str(ws / 'reports' / rd.name / 'index.html') in r.stdout
    r = llmwb(ws, 'show', str(rd), '--json')
    assert json.loads(r.stdout) == read_run(rd)


def test_set_overrides_a_recipe_key(tmp_path):
    "`--set KEY=VALUE` is typed and validated like the recipe, and lands in the resolved recipe and run.json."
    ws = make_workspace(tmp_path / 'ws')
    r = llmwb(ws, 'run', MICRO, '--set', 'align.beta=lots')
    assert (
        r.returncode == 2 and '--set align.beta=lots: align.beta: Input should be a valid number' in r.stderr
    )
    r = llmwb(ws, 'run', MICRO, '--set', 'train.learnig_rate=0.1')
    assert r.returncode == 2 and '--set train.learnig_rate=0.1: train.learnig_rate: Extra inputs' in r.stderr
    r = llmwb(
        ws,
        'run',
        MICRO,
        '--stages',
        'curate',
        '--no-progress',
        '--set',
        'data.sources.0.max_docs=12',
        '--set',
        'data.sources.1.max_docs=8',
        '--set',
        'align.beta=0.25',
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (rd,) = run_dirs(ws)
    run = read_run(rd)
    assert run['overrides'] == ['data.sources.0.max_docs=12', 'data.sources.1.max_docs=8', 'align.beta=0.25']
    assert run['config']['align']['beta'] == 0.25
    assert 'beta: 0.25' in (rd / 'recipe.yaml').read_text()
    assert run['stages']['curate']['metrics']['records_in'] <= 20
