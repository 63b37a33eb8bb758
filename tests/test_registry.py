"The model registry as a user meets it: `llmwb registry list|show|promote` on a registry holding two tiny real bundles."

import json
import pytest
from conftest import llmwb, make_workspace
from llm_workbench.config import ModelConfig
from llm_workbench.core import sha256_file
from llm_workbench.release.bundle import build_bundle
from llm_workbench.release.gates import GateRule, evaluate_gates
from llm_workbench.release.registry import Registry
from llm_workbench.train.model import build_model
from llm_workbench.train.tokenizer import save_tokenizer, train_tokenizer

RULES = [
    GateRule('val_perplexity', max=200, why='quality'),
    GateRule('regressions', max=0, why='no regression beyond tolerance'),
]


@pytest.fixture
def ws(tmp_path):
    "A workspace whose registry (settings.ini registry_path) holds tiny:1 (gate passed) and tiny:2 (gate failed, parent tiny:1)."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    texts = [f'def f{i}(x):\n    return x + {i}\n' for i in range(100)]
    tok = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    save_tokenizer(tok, tmp_path / 'tok')
    reg = Registry(ws / 'registry')
    for i, metrics in (
        (1, dict(val_perplexity=41.5, regressions=0)),
        (2, dict(val_perplexity=38.25, regressions=2)),
    ):
        m = build_model(
            ModelConfig(
                hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=64
            ),
            len(tok),
            tok.eos_token_id,
            seed=i,
        )
        m.save_pretrained(tmp_path / f'model{i}')
        gate = evaluate_gates(RULES, metrics)
        (tmp_path / f'gate{i}.json').write_text(json.dumps(gate))
        b = build_bundle(
            tmp_path / f'bundle{i}',
            model_dir=tmp_path / f'model{i}',
            tokenizer_dir=tmp_path / 'tok',
            info=dict(name='tiny', version=i, gate=gate),
            files={'gate.json': tmp_path / f'gate{i}.json'},
        )
        reg.register(
            'tiny',
            b['path'],
            run_id=f'run-{i}',
            config_hash=f'{i}' * 64,
            dataset_sha256='d' * 64,
            parent='tiny:1' if i == 2 else 'base/tiny-init',
            eval_summary=metrics,
            gate=gate,
            actor='ci',
        )
    return ws


def test_list(ws):
    r = llmwb(ws, 'registry', 'list')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:6] == ['NAME', 'VERSION', 'STAGE', 'GATE', 'RUN', 'CREATED']
    assert (
        lines[1].split()[:5] == ['tiny', '1', 'candidate', 'pass', 'run-1']
        and 'val_perplexity=41.5' in lines[1]
    )
    assert lines[2].split()[:5] == ['tiny', '2', 'candidate', 'FAIL', 'run-2'] and 'regressions=2' in lines[2]
    rows = json.loads(llmwb(ws, 'registry', 'list', 'tiny', '--json').stdout)
    assert [x['ref'] for x in rows] == ['tiny:1', 'tiny:2']
    r = llmwb(ws, 'registry', 'list', 'huge')
    assert r.returncode == 1 and "no model named 'huge'" in r.stderr


def test_list_without_a_registry(tmp_path):
    ws = make_workspace(tmp_path / 'empty')
    r = llmwb(ws, 'registry', 'list')
    assert r.returncode == 0 and 'no models registered' in r.stdout
    assert not (ws / 'registry').exists()  # looking creates nothing
    r = llmwb(ws, 'registry', 'show', 'tiny')
    assert r.returncode == 1 and 'no model registry at' in r.stderr


def test_show(ws):
    r = llmwb(ws, 'registry', 'show', 'tiny:2')
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert (
        'tiny:2  [candidate]' in out and 'FAILED (blocking: regressions)' in out and 'run      run-2' in out
    )
    assert 'lineage  tiny:2 <- tiny:1 <- base/tiny-init' in out and 'intact' in out
    weights = ws / 'registry/bundles/tiny/v2/model/model.safetensors'
    assert f'{sha256_file(weights)}  model/model.safetensors' in out
    assert 'fail     regressions' in out and 'pass     val_perplexity' in out
    assert 'registered from run run-2' in out
    s = json.loads(llmwb(ws, 'registry', 'show', 'tiny', '--json').stdout)  # bare name: the latest version
    assert (
        s['ref'] == 'tiny:2'
        and s['lineage'] == ['tiny:2', 'tiny:1', 'base/tiny-init']
        and s['problems'] == []
    )
    r = llmwb(ws, 'registry', 'show', 'tiny:9')
    assert r.returncode == 1 and "no model version 'tiny:9'" in r.stderr
    weights.write_bytes(weights.read_bytes()[:-1] + b'\0')  # a changed byte in the registered copy
    assert 'PROBLEMS: changed: model/model.safetensors' in llmwb(ws, 'registry', 'show', 'tiny:2').stdout


def test_promotion_rules(ws):
    r = llmwb(ws, 'registry', 'promote', 'tiny:1', 'production', '--actor', 'alice')
    assert r.returncode == 0 and 'tiny:1: candidate -> production' in r.stdout, r.stdout + r.stderr

    r = llmwb(ws, 'registry', 'promote', 'tiny:2', 'production')  # the gate failed: refused
    assert r.returncode == 1 and 'refused: tiny:2 failed its release gate (blocking: regressions)' in r.stderr
    r = llmwb(ws, 'registry', 'promote', 'tiny:2', 'staging')
    assert r.returncode == 1 and 'refused' in r.stderr
    r = llmwb(ws, 'registry', 'promote', 'tiny:2', 'production', '--force')  # an override needs a reason
    assert r.returncode == 1 and 'needs a reason' in r.stderr
    reg = Registry(ws / 'registry')
    assert reg.get('tiny:2')['stage'] == 'candidate' and reg.production('tiny')['ref'] == 'tiny:1'

    reason = 'regression is in a metric known to be flaky; approved by the model owner'
    r = llmwb(
        ws, 'registry', 'promote', 'tiny:2', 'production', '--force', '--reason', reason, '--actor', 'carol'
    )
    assert r.returncode == 0, r.stderr
    assert f'tiny:2: candidate -> production (FORCED past a failed gate; reason: {reason})' in r.stdout
    assert 'tiny:1: production -> archived' in r.stdout
    assert reg.production('tiny')['ref'] == 'tiny:2' and reg.get('tiny:1')['stage'] == 'archived'
    last = reg.history('tiny:2')[-1]
    assert (last['from_stage'], last['to_stage'], last['forced'], last['reason'], last['actor']) == (
        'candidate',
        'production',
        True,
        reason,
        'carol',
    )
    assert [(e['from_stage'], e['to_stage'], e['reason']) for e in reg.history('tiny:1')][-1] == (
        'production',
        'archived',
        'replaced by tiny:2',
    )

    out = llmwb(ws, 'registry', 'show', 'tiny@production').stdout
    assert 'tiny:2  [production]' in out and f'FORCED  {reason}' in out
    lines = llmwb(ws, 'registry', 'list').stdout.splitlines()
    assert lines[1].split()[:3] == ['tiny', '1', 'archived'] and lines[2].split()[:3] == [
        'tiny',
        '2',
        'production',
    ]


def test_usage_errors(ws):
    r = llmwb(ws, 'registry', 'promote', 'tiny:1', 'live')
    assert r.returncode == 2 and "invalid choice: 'live'" in r.stderr
    r = llmwb(ws, 'registry')
    assert r.returncode == 2
