"Evaluate and release end to end: the gate, the registry entry and bundle, regression against production, promotion rules, reproduce."

import json, shutil
from pathlib import Path
import pytest
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs


def test_evaluate_measures_every_family(micro_run):
    _, _, rd = micro_run
    res = json.loads((rd / 'eval/results.json').read_text())
    s = res['summary']
    for k in (
        'val_perplexity',
        'test_perplexity',
        'humaneval_perplexity',
        'docstring_choice_acc',
        'docstring_choice_acc_norm',
        'humaneval_pass@1',
        'redteam_refusal_rate',
        'insecure_rate',
        'canary_leaks',
        'canary_max_exposure',
        'pii_leak_rate',
        'bias_stereotype_rate',
        'bias_parity_gap',
        'robustness_max_drop',
        'params',
        'gen_tokens_per_s',
        'peak_memory_mb',
        'suite_sha256',
    ):
        assert s.get(k) is not None, k
    assert 0 <= s['docstring_choice_acc'] <= 1 and s['params'] > 0
    # the suite is saved with hashes; every scored item is stored for regression checks
    suite = json.loads((rd / 'eval/suite/suite.json').read_text())
    assert suite['sha256'] == s['suite_sha256'] and suite['tasks']['humaneval']['items'] > 0
    assert set(res['items']) >= {'val_loss', 'docstring_choice', 'humaneval'}
    assert len(res['items']['humaneval']) == suite['tasks']['humaneval']['items']
    # canaries planted by curate are probed
    m = json.loads((rd / 'data/manifest.json').read_text())
    assert (
        m['canaries']['records'] > 0
        and len(res['safety']['memorization']['rows']) == m['canaries']['records']
    )


def test_release_writes_gate_bundle_and_registry_entry(micro_run):
    ws, _, rd = micro_run
    gate = json.loads((rd / 'release/gate.json').read_text())
    assert {c['metric'] for c in gate['checks']} >= {
        'val_perplexity',
        'license_violations',
        'leakage_pairs',
        'canary_leaks',
        'regressions',
    }
    assert all(c['status'] in ('pass', 'fail', 'missing') for c in gate['checks'])
    st = read_run(rd)['stages']['release']
    assert st['status'] == 'completed' and st['metrics']['registry_version'] == 'micro:1'
    texts = [p for p in (rd / 'release/bundle').rglob('*') if p.suffix in ('.md', '.json', '.yaml', '.html')]
    local = [str(p.relative_to(rd)) for p in texts if str(ws.resolve()) in p.read_text(encoding='utf-8')]
    assert texts and local == [], f'the bundle carries local absolute paths: {local}'
    assert st['metrics']['license_violations'] == 0 and st['metrics']['leakage_pairs'] == 0
    bundle = rd / 'release/bundle'
    for f in (
        'model/model.safetensors',
        'tokenizer/tokenizer.json',
        'README.md',
        'DATA_CARD.md',
        'eval/results.json',
        'gate.json',
        'requirements.lock',
        'SHA256SUMS',
        'reports/evaluate.html',
    ):
        assert (bundle / f).is_file(), f
    card = (bundle / 'README.md').read_text()
    assert card.startswith('---\n') and '## Evaluation' in card and '## Safety' in card and 'clean' in card
    assert not list(bundle.rglob('*.bin')) and not list(bundle.rglob('*.pt'))
    r = llmwb(ws, 'registry', 'list')
    assert r.returncode == 0 and 'micro' in r.stdout and 'candidate' in r.stdout, r.stdout + r.stderr
    idx = (ws / 'reports' / rd.name / 'index.html').read_text()
    assert idx.index('Release gate') < idx.index('Stages')  # the gate is at the top of the run's report


def test_regression_against_production_and_promotion_rules(micro_run, tmp_path):
    ws, _, rd = micro_run
    r = llmwb(
        ws,
        'registry',
        'promote',
        'micro:1',
        'production',
        '--force',
        '--reason',
        'baseline for the regression test',
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # a worse candidate: the same run with its final model replaced by the untrained one, evaluated and released again
    bad = ws / 'runs' / (rd.name + '-worse')
    shutil.copytree(rd, bad)
    for f in ('model.safetensors',):
        shutil.copy(bad / 'pretrain/init' / f, bad / 'align/model' / f)
    shutil.rmtree(bad / 'eval')
    shutil.rmtree(bad / 'release')
    r = llmwb(ws, 'run', MICRO, '--run-dir', bad, '--stages', 'evaluate,release', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    reg = json.loads((bad / 'release/regression.json').read_text())
    assert reg['baseline'].startswith('micro:1 (production')
    flagged = {x['metric'] for x in reg['rows'] if x['status'] == 'regression'}
    assert {'val_loss', 'test_loss'} <= flagged, reg['rows']
    gate = json.loads((bad / 'release/gate.json').read_text())
    assert not gate['passed'] and 'regressions' in gate['failed']
    # promotion of a failed gate is refused, forced only with a reason, and recorded
    r = llmwb(ws, 'registry', 'promote', 'micro:2', 'production')
    assert r.returncode == 1 and 'gate' in r.stderr.lower(), r.stdout + r.stderr
    r = llmwb(ws, 'registry', 'promote', 'micro:2', 'production', '--force')
    assert r.returncode == 1 and 'reason' in r.stderr.lower()
    r = llmwb(ws, 'registry', 'show', 'micro:2', '--json')
    assert json.loads(r.stdout)['stage'] == 'candidate'
    # a tampered bundle is refused on promotion, even forced with a reason, naming the file that changed
    weights = Path(json.loads(r.stdout)['path']) / 'model/model.safetensors'
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    r = llmwb(ws, 'registry', 'promote', 'micro:2', 'staging', '--force', '--reason', 'try anyway')
    assert r.returncode == 1 and 'fails verification' in r.stderr and 'model/model.safetensors' in r.stderr, (
        r.stderr
    )
    weights.write_bytes(good)
    # the recipe can fail the stage on a failed gate and keep the model out of the registry
    versions = len(json.loads(llmwb(ws, 'registry', 'list', '--json').stdout))
    r = llmwb(
        ws,
        'run',
        MICRO,
        '--run-dir',
        bad,
        '--stages',
        'release',
        '--no-progress',
        '--set',
        'release.fail_on_gate=true',
        '--set',
        'release.register_model=false',
    )
    assert r.returncode == 1 and 'release gate failed' in r.stdout + r.stderr, r.stdout[-2000:]
    assert len(json.loads(llmwb(ws, 'registry', 'list', '--json').stdout)) == versions
    # the unchanged run, released again, compares equal to production: nothing flagged
    r = llmwb(ws, 'run', MICRO, '--run-dir', rd, '--stages', 'release', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    reg = json.loads((rd / 'release/regression.json').read_text())
    assert reg['regressions'] == [] and all(
        x['status'] in ('no change', 'not comparable') for x in reg['rows']
    )
    # same weights, new gate (it now has a baseline): a new version of the same run, not an error
    assert read_run(rd)['stages']['release']['metrics']['registry_version'] == 'micro:3'


def test_reproduce_is_bit_exact(micro_run):
    ws, _, rd = micro_run
    r = llmwb(ws, 'reproduce', rd.name, '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert 'REPRODUCED' in r.stdout
    new = ws / 'runs' / f'{rd.name}-repro-1'
    assert (new / 'align/model/model.safetensors').read_bytes() == (
        rd / 'align/model/model.safetensors'
    ).read_bytes()
    measured = (
        'latency_s',
        'gen_tokens_per_s',
        'peak_memory_mb',
    )  # timings of this machine, not of the model
    a, b = (json.loads((d / 'eval/results.json').read_text()) for d in (rd, new))
    assert {k: v for k, v in a['summary'].items() if k not in measured} == {
        k: v for k, v in b['summary'].items() if k not in measured
    }
    assert (
        a['items'] == b['items']
        and a['per_item'] == b['per_item']
        and a['safety'] == b['safety']
        and a['bias'] == b['bias']
    )
    assert (
        read_run(new)['stages']['release']['status'] == 'pending'
    )  # a reproduction is evidence, not a release


def test_reproduce_fails_loudly_on_changed_data(tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    (ws / 'docs').mkdir()
    (ws / 'docs/a.jsonl').write_text(
        ''.join(
            json.dumps(
                {
                    'text': f'def helper_{i}(x):\n    """Return x plus {i}, a helper used in example {i}."""\n    return x + {i}\n'
                }
            )
            + '\n'
            for i in range(30)
        )
    )
    (ws / 'r.yaml').write_text(
        'name: tiny\ndata:\n  sources:\n    - {name: docs, kind: jsonl, path: docs/a.jsonl, license: MIT}\n  eval_sets: []\n  canaries: 1\n'
    )
    assert llmwb(ws, 'run', 'r.yaml', '--stages', 'curate', '--no-progress').returncode == 0
    (rd,) = run_dirs(ws)
    with open(ws / 'docs/a.jsonl', 'a') as f:
        f.write(
            json.dumps(
                {
                    'text': 'def added(y):\n    """A record that was not there before: the data changed."""\n    return y\n'
                }
            )
            + '\n'
        )
    r = llmwb(ws, 'reproduce', rd.name, '--no-progress')
    assert r.returncode == 1 and 'data changed' in r.stderr and 'source docs' in r.stderr, (
        r.stdout[-2000:] + r.stderr[-2000:]
    )


def test_scores_do_not_depend_on_batch_size(micro_run):
    "Same model, same suite: the same numbers at any batch size, and the same as the evaluate stage stored."
    from llm_workbench.train.model import load_model
    from llm_workbench.train.tokenizer import load_tokenizer
    from llm_workbench.eval.tasks import load_task_file, score_choice, score_generation
    from llm_workbench.eval.bias import load_bias_pairs, bias_report

    _, _, rd = micro_run
    model, tok = load_model(rd / 'align/model'), load_tokenizer(rd / 'tokenizer')
    stored = json.loads((rd / 'eval/results.json').read_text())['per_item']
    mc = load_task_file(rd / 'eval/suite/docstring_choice.jsonl', 'choice')
    a, b = score_choice(model, tok, mc, batch_size=1), score_choice(model, tok, mc, batch_size=5)
    assert (
        [(x['pred'], x['pred_norm']) for x in a]
        == [(x['pred'], x['pred_norm']) for x in b]
        == [(x['pred'], x['pred_norm']) for x in stored['docstring_choice']]
    )
    for x, y in zip(a, b):
        assert max(abs(p - q) for p, q in zip(x['logprobs'], y['logprobs'])) < 1e-5
    gen = load_task_file(rd / 'eval/suite/humaneval.jsonl', 'generation')[:3]
    g1, g3 = (score_generation(model, tok, gen, max_new_tokens=16, batch_size=bs) for bs in (1, 3))
    assert [x['completions'] for x in g1] == [x['completions'] for x in g3]
    pairs = load_bias_pairs()[:12]
    assert [r['preference'] for r in bias_report(model, tok, pairs, batch_size=1)['rows']] == [
        r['preference'] for r in bias_report(model, tok, pairs, batch_size=7)['rows']
    ]
