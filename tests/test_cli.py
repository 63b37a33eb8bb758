"The CLI as a user meets it: help, listing, showing, and clear errors."
import json
from conftest import llmwb, make_workspace, read_run


def test_help_lists_the_commands(tmp_path):
    r = llmwb(tmp_path, '--help')
    assert r.returncode == 0
    for cmd in ('run', 'ls', 'show', 'lab'): assert cmd in r.stdout


def test_ls_on_an_empty_workspace(tmp_path):
    ws = make_workspace(tmp_path/'ws')
    r = llmwb(ws, 'ls')
    assert r.returncode == 0 and 'no runs under' in r.stdout


def test_show_unknown_run_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path/'ws')
    r = llmwb(ws, 'show', 'nope')
    assert r.returncode == 2 and "no run 'nope'" in r.stderr


def test_missing_recipe_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path/'ws')
    r = llmwb(ws, 'run', 'missing.yaml')
    assert r.returncode == 2 and 'missing.yaml: recipe not found' in r.stderr


def test_unknown_stage_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path/'ws')
    r = llmwb(ws, 'run', '--stages', 'curate,trian')
    assert r.returncode == 2 and "unknown stage 'trian'" in r.stderr


def test_ls_and_show_a_run(micro_run):
    ws, _, rd = micro_run
    r = llmwb(ws, 'ls')
    assert r.returncode == 0 and rd.name in r.stdout and 'completed' in r.stdout and 'val_perplexity=' in r.stdout
    r = llmwb(ws, 'show', rd.name[:15])          # a unique prefix is enough
    assert r.returncode == 0
    for s in ('curate', 'pretrain', 'evaluate'): assert s in r.stdout
    assert str(ws/'reports'/rd.name/'index.html') in r.stdout
    r = llmwb(ws, 'show', str(rd), '--json')
    assert json.loads(r.stdout) == read_run(rd)
