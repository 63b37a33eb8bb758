"Each training method through the real CLI: continued pretraining from an existing model folder, and LoRA for SFT and DPO."

import hashlib, json
from pathlib import Path
from safetensors.torch import load_file
from conftest import ROOT, llmwb, make_workspace, read_run, run_dirs


def test_continued_pretraining_starts_from_the_given_model(micro_run, tmp_path):
    _, _, base = micro_run
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    recipe = (
        (ROOT / 'configs/micro.yaml')
        .read_text()
        .replace('model:\n', f'model:\n  name_or_path: {base / "pretrain/model"}\n', 1)
    )
    (ws / 'cont.yaml').write_text(recipe)
    r = llmwb(ws, 'run', 'cont.yaml', '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    (rd,) = run_dirs(ws)
    init, src = (
        load_file(rd / 'pretrain/init/model.safetensors'),
        load_file(base / 'pretrain/model/model.safetensors'),
    )
    assert init.keys() == src.keys() and all(
        (init[k] == src[k]).all() for k in src
    )  # started from the given weights
    assert (
        json.loads((rd / 'tokenizer/tokenizer.json').read_text())['model']['vocab']
        == json.loads((base / 'pretrain/model/tokenizer.json').read_text())['model']['vocab']
    )
    m = read_run(rd)['stages']['pretrain']['metrics']
    assert (
        m['steps'] == 30 and m['val_loss'] < read_run(base)['stages']['pretrain']['metrics']['val_loss'] + 0.5
    )
    prov = read_run(rd)['base_model']  # provenance in run.json
    assert prov['kind'] == 'folder' and prov['path'] == str((base / 'pretrain/model').resolve())
    assert (
        prov['weights_sha256']['model.safetensors']
        == read_run(base)['stages']['pretrain']['metrics']['model_sha256']
    )


def test_lora_recipe(tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    r = llmwb(ws, 'run', ROOT / 'configs/lora.yaml', '--stages', 'curate,pretrain,sft,align', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:]
    (rd,) = run_dirs(ws)
    run = read_run(rd)
    for st in ('sft', 'align'):
        assert run['stages'][st]['metrics']['lora'] is True
        assert (rd / st / 'adapter').is_dir() and (rd / st / 'model/model.safetensors').exists()
        weights = load_file(rd / st / 'model/model.safetensors')
        assert not any('lora' in k for k in weights), 'the saved model is a plain (merged) model'
    assert run['status'] == 'partial' and all(
        run['stages'][s]['status'] == 'completed' for s in ('curate', 'pretrain', 'sft', 'align')
    )
