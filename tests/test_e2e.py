"A micro run end to end through `llmwb run`: the run dir, run.json, the data accounting, the reports, skipping on rerun."

import hashlib, json
from pathlib import Path
import pyarrow.parquet as pq
from llm_workbench.report import external_resources
from conftest import MICRO, llmwb, read_run, run_dirs

STAGES = ('curate', 'pretrain', 'sft', 'align', 'evaluate')


def test_run_dir_layout(micro_run):
    _, r, rd = micro_run
    for p in (
        'run.json',
        'recipe.yaml',
        'data/manifest.json',
        'data/quarantine.jsonl',
        'data/DATA_CARD.md',
        'data/train.parquet',
        'tokenizer/tokenizer.json',
        'pretrain/model/model.safetensors',
        'pretrain/init/model.safetensors',
        'pretrain/metrics.jsonl',
        'pretrain/ledger.jsonl',
        'sft/model/model.safetensors',
        'sft/ledger.jsonl',
        'align/model/model.safetensors',
        'align/ledger.jsonl',
        'data/pairs/sft-train.parquet',
        'data/pairs/preference-train.parquet',
        'eval/results.json',
        'notebooks/10_curate.ipynb',
        'notebooks/20_pretrain.ipynb',
        'notebooks/23_sft.ipynb',
        'notebooks/30_align.ipynb',
        'notebooks/40_evaluate.ipynb',
        'notebooks/50_release.ipynb',
        'release/gate.json',
        'release/bundle/SHA256SUMS',
    ):
        assert (rd / p).exists(), p
    assert list((rd / 'pretrain/checkpoints').glob('checkpoint-*')), 'no checkpoints'
    assert {p.name for p in rd.iterdir()} <= {
        'run.json',
        'recipe.yaml',
        'notebooks',
        'stages',
        'data',
        'tokenizer',
        'pretrain',
        'sft',
        'align',
        'eval',
        'release',
        'wandb',
    }, sorted(p.name for p in rd.iterdir())  # nothing stray (e.g. kernel sockets)
    assert list((rd / 'wandb').glob('offline-run-*')), 'W&B offline run missing'
    assert 'run completed' in r.stdout


def test_run_json_records_what_made_the_run(micro_run):
    _, _, rd = micro_run
    run = read_run(rd)
    assert run['status'] == 'completed' and run['run_id'] == rd.name
    assert run['config']['name'] == 'micro' and run['seed'] == 7 and len(run['config_sha256']) == 64
    assert run['seeds'] == dict(python=7, numpy=7, torch=7, data_order=7, train=7)
    env = run['environment']
    assert (
        env['python'].startswith('3.')
        and env['torch']
        and env['packages']['transformers']
        and env['platform']
    )
    assert 'commit' in run['git']
    for s in STAGES:
        st = run['stages'][s]
        assert st['status'] == 'completed', (s, st)
        assert len(st['inputs_sha256']) == 64 and len(st['outputs_sha256']) == 64
        assert st['started'] <= st['ended'] and st['duration_s'] > 0
        assert st['report'] == f'{s}.html'
    m = run['metrics']
    assert m['val_perplexity'] < m['init_val_perplexity'], m
    assert m['cost_usd'] > 0 and run['stages']['evaluate']['metrics']['final_model'] == 'align'
    assert (
        run['stages']['align']['metrics']['reward_accuracy']
        >= run['stages']['align']['metrics']['reward_accuracy_before']
    )


def test_manifest_accounting(micro_run):
    _, _, rd = micro_run
    m = json.loads((rd / 'data/manifest.json').read_text())
    c = m['counts']
    assert c['records_in'] == c['kept'] + c['removed'] > 0
    assert sum(c['removed_by_reason'].values()) == c['removed'] == sum(c['removed_by_stage'].values())
    for s in m['sources']:
        assert s['records_in'] == s['kept'] + sum(s['removed'].values())
    q = [json.loads(l) for l in (rd / 'data/quarantine.jsonl').read_text().splitlines()]
    assert len(q) == c['removed'] and all(x['reason'] and x['location'] for x in q)
    assert sum(v['records'] for v in m['splits'].values()) == c['kept'] + m['canaries']['records']
    groups = {}
    for split, info in m['splits'].items():
        f = rd / 'data' / info['path']
        assert hashlib.sha256(f.read_bytes()).hexdigest() == info['sha256']
        t = pq.read_table(f)
        assert t.num_rows == info['records'] and set(t.column_names) >= {'id', 'text', 'source', 'license'}
        groups[split] = set(t.column('group').to_pylist())
    assert not (
        groups['train'] & groups['val'] or groups['train'] & groups['test'] or groups['val'] & groups['test']
    )
    assert all(lic for lic in m['licenses'])


def test_reports_exist_and_fetch_nothing(micro_run):
    ws, _, rd = micro_run
    rep = ws / 'reports' / rd.name
    for name in ('index', *STAGES, 'release'):
        html = (rep / f'{name}.html').read_text()
        assert external_resources(html) == [], (name, external_resources(html))
    idx = (rep / 'index.html').read_text()
    for s in (*STAGES, 'release'):
        assert f'href="{s}.html"' in idx
    assert 'val_perplexity' in idx and read_run(rd)['config_sha256'][:16] in idx
    assert f'href="{rd.name}/index.html"' in (ws / 'reports/index.html').read_text()
    assert 'plotly' in (rep / 'pretrain.html').read_text()[:6_000_000].lower()


def test_rerun_skips_unchanged_stages(micro_run, tmp_path):
    ws, _, rd = micro_run
    before = read_run(rd)
    r = llmwb(ws, 'run', MICRO, '--run-dir', rd, '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    after = read_run(rd)
    for s in STAGES:
        assert f'[{s}] unchanged' in r.stdout
        assert after['stages'][s]['skipped'] and after['stages'][s]['ended'] == before['stages'][s]['ended']
    # release reads the registry (its baseline may have changed), so it always runs; the same bundle is the same registry version
    assert '[release] running' in r.stdout
    assert (
        after['stages']['release']['metrics']['registry_version']
        == before['stages']['release']['metrics']['registry_version']
    )
    assert after['invocations'] == before['invocations'] + 1 and after['status'] == 'completed'
    assert run_dirs(ws) == [rd]


def test_own_data_sources_with_bad_lines(tmp_path):
    "The own-data recipe: JSONL + text folder sources; the broken lines are quarantined with file and line."
    from conftest import ROOT, make_workspace

    ws = make_workspace(tmp_path / 'ws', tracking='none')
    r = llmwb(ws, 'run', ROOT / 'configs/own-data.yaml', '--stages', 'curate', '--no-progress')
    assert r.returncode == 0, r.stdout[-2000:]
    (rd,) = run_dirs(ws)
    q = [json.loads(l) for l in (rd / 'data/quarantine.jsonl').read_text().splitlines()]
    bad = {(x['location'], x['reason']) for x in q if x['source'] == 'snippets'}
    assert bad == {('snippets.jsonl:9', 'missing_field'), ('snippets.jsonl:10', 'bad_json')}
    m = json.loads((rd / 'data/manifest.json').read_text())
    src = {s['name']: s for s in m['sources']}
    assert src['snippets']['kept'] == 8 and src['notes']['kept'] == 2
    assert {'MIT', 'CC0-1.0', 'PSF-2.0'} <= set(m['licenses'])
