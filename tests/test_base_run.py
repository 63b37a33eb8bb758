"""A run that adopts a pretrained base untrained, scores it as its own baseline and registers it as the lineage parent.

The base is a tiny random Llama built here (a real transformers model with its own byte-level BPE tokenizer), given
to the recipe as `model.name_or_path`; the run fine-tunes it briefly (SFT, DPO) and releases against the base.
"""

import hashlib, json
from pathlib import Path
import pytest
import yaml
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_base(folder: Path) -> Path:
    "A random 2-layer Llama (hidden 32) with a 512-token BPE tokenizer, saved as a model folder."
    import inspect, torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from llm_workbench.train.tokenizer import train_tokenizer

    texts = [inspect.getsource(m) for m in (json, hashlib, inspect)]
    tok = train_tokenizer(texts, 512, 2, 128)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope='module')
def base_run(tmp_path_factory):
    "(workspace, run dir, base folder, recipe path, first process result)."
    root = tmp_path_factory.mktemp('base-run')
    base = tiny_base(root / 'tiny-llama')
    recipe = yaml.safe_load(MICRO.read_text())
    recipe['name'] = 'tuned-tiny'
    recipe['model'] = dict(name_or_path=str(base))
    recipe['train'] = dict(enabled=False, seq_len=64, max_eval_blocks=8)
    recipe['eval'] |= dict(
        builtin_tasks=['humaneval'],
        max_items=3,
        max_new_tokens=8,
        task_max_new_tokens=16,
        score_base=True,
        safety=dict(max_new_tokens=8, canary_candidates=20),
        robustness=dict(enabled=False),
    )
    recipe['release'] = dict(baseline='base')
    path = root / 'base-run.yaml'
    path.write_text(yaml.safe_dump(recipe))
    ws = make_workspace(root / 'ws')
    r = llmwb(ws, 'run', path, '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = run_dirs(ws)
    return ws, rd, base, path, r


def test_pretrain_adopts_the_base(base_run):
    _, rd, base, _, _ = base_run
    run = read_run(rd)
    metrics = run['stages']['pretrain']['metrics']
    assert metrics['adopted'] is True
    assert metrics['model_sha256'] == _sha256(base / 'model.safetensors')
    assert not {'steps', 'train_loss', 'val_loss', 'tokens'} & set(metrics), metrics  # nothing was trained
    assert _sha256(rd / 'pretrain/model/model.safetensors') == _sha256(base / 'model.safetensors')
    assert (rd / 'pretrain/model/tokenizer.json').read_text() == (base / 'tokenizer.json').read_text()
    assert not (rd / 'pretrain/init').exists() and not (rd / 'pretrain/ledger.jsonl').exists()
    assert run['base_model']['kind'] == 'folder'
    assert run['stages']['sft']['status'] == 'completed' and run['stages']['align']['status'] == 'completed'


def test_results_score_the_base(base_run):
    _, rd, _, _, _ = base_run
    results = json.loads((rd / 'eval/results.json').read_text())
    assert results['summary']['final_model'] == 'align'
    assert list(results['by_model']) == ['base']
    base = results['by_model']['base']
    for key in (
        'val_perplexity',
        'humaneval_pass@1',
        'redteam_refusal_rate',
        'over_refusal_rate',
        'insecure_rate',
    ):
        assert key in base['summary'] and key in results['summary'], key
    for family in ('val_loss', 'humaneval', 'redteam_refusal', 'over_refusal', 'insecure'):
        assert base['items'].get(family) and results['items'].get(family), family
        assert set(base['items'][family]) == set(results['items'][family]), family  # paired item by item
    assert {r['model'] for r in results['tasks'] if r['task'] == 'humaneval'} == {'base', 'align'}
    assert not any(r['model'] == 'untrained' for r in results['perplexity'])


def test_release_compares_against_the_base(base_run):
    _, rd, _, _, _ = base_run
    regression = json.loads((rd / 'release/regression.json').read_text())
    gate = json.loads((rd / 'release/gate.json').read_text())
    assert regression['baseline'].startswith('base: ') and gate['baseline'] == regression['baseline']
    compared = {row['metric'] for row in regression['rows']}
    assert {'redteam_refusal', 'humaneval', 'val_loss'} <= compared, compared
    regressions = next(c for c in gate['checks'] if c['metric'] == 'regressions')
    assert regressions['value'] == len(regression['regressions'])
    readme = (rd / 'release/bundle/README.md').read_text()
    assert 'tiny-llama:1 (registered base:' in readme


def test_registry_lineage_starts_at_the_base(base_run):
    from llm_workbench.release.registry import Registry

    ws, rd, base, recipe, _ = base_run
    reg = Registry(ws / 'registry', create=False)
    (entry,) = [v for v in reg.versions() if v['stage'] == 'base']
    assert entry['ref'] == 'tiny-llama:1'
    assert entry['checksums']['model/model.safetensors'] == _sha256(base / 'model.safetensors')
    assert reg.verify(entry['ref']) == []
    tuned = reg.get('tuned-tiny')
    assert [row['ref'] for row in reg.lineage(tuned['ref'])] == [tuned['ref'], 'tiny-llama:1']
    # a rerun (release always runs again) finds the registered base: no second base version
    r = llmwb(ws, 'run', recipe, '--run-dir', rd, '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert [v['ref'] for v in reg.versions() if v['stage'] == 'base'] == ['tiny-llama:1']
    assert reg.lineage(reg.get('tuned-tiny')['ref'])[-1]['ref'] == 'tiny-llama:1'
    assert read_run(rd)['base_model']['kind'] != 'scratch'  # the skipped pretrain stage still names the base
