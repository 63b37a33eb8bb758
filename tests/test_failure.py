"A stage that fails stops the run, leaves its evidence, and a rerun on the same run dir carries on from it."

import json, shutil
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs


def test_failed_stage_then_resume(tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    r = llmwb(ws, 'run', MICRO, '--stages', 'curate', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    (rd,) = run_dirs(ws)
    assert read_run(rd)['status'] == 'partial'
    curate_ended = read_run(rd)['stages']['curate']['ended']

    # A real fault: a file sits where the pretrain stage must write its folder.
    (rd / 'pretrain').write_text('in the way')
    r = llmwb(ws, 'run', MICRO, '--run-dir', rd, '--stages', 'curate,pretrain,sft', '--no-progress')
    assert r.returncode == 1
    run = read_run(rd)
    assert run['status'] == 'failed'
    st = run['stages']['pretrain']
    assert st['status'] == 'failed' and 'FileExistsError' in st['error']
    assert run['stages']['sft']['status'] == 'pending'
    assert "stage 'pretrain' failed" in r.stdout and str(rd / 'notebooks/20_pretrain.ipynb') in r.stdout
    nb = json.loads((rd / 'notebooks/20_pretrain.ipynb').read_text())
    assert any(o.get('output_type') == 'error' for c in nb['cells'] for o in c.get('outputs', []))
    html = (ws / 'reports' / rd.name / 'pretrain.html').read_text()
    assert 'An Exception was encountered' in html and 'FileExistsError' in html
    idx = (ws / 'reports' / rd.name / 'index.html').read_text()
    assert 'class="failed"' in idx and 'FileExistsError' in idx

    (rd / 'pretrain').unlink()
    r = llmwb(ws, 'run', MICRO, '--run-dir', rd, '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    run = read_run(rd)
    assert run['status'] == 'partial' and run['error'] is None
    assert run['stages']['curate']['skipped'] and run['stages']['curate']['ended'] == curate_ended
    assert run['stages']['pretrain']['status'] == 'completed'


def test_changed_recipe_reruns_only_what_it_touches(tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    assert llmwb(ws, 'run', MICRO, '--stages', 'curate', '--no-progress').returncode == 0
    (rd,) = run_dirs(ws)
    cfg = MICRO.read_text().replace('max_steps: 30', 'max_steps: 12')
    (ws / 'changed.yaml').write_text(cfg)
    r = llmwb(ws, 'run', 'changed.yaml', '--run-dir', rd, '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-2000:]
    assert '[curate] unchanged' in r.stdout and '[pretrain] running' in r.stdout
    assert read_run(rd)['stages']['pretrain']['metrics']['steps'] == 12


def test_stage_without_its_inputs_fails_clearly(tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    r = llmwb(ws, 'run', MICRO, '--stages', 'evaluate', '--no-progress')
    assert r.returncode == 1
    (rd,) = run_dirs(ws)
    assert "needs stage 'curate'" in read_run(rd)['error']
