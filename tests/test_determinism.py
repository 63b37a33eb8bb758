"Same recipe, same machine: the same data hashes, tokenizer, weights and metrics, run in separate processes."
import hashlib, json
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs


def sha(p): return hashlib.sha256(p.read_bytes()).hexdigest()


def test_two_runs_give_identical_weights_and_metrics(micro_run, tmp_path):
    _, _, a = micro_run
    ws = make_workspace(tmp_path/'ws2', tracking='none')
    r = llmwb(ws, 'run', MICRO, '--no-progress')
    assert r.returncode == 0, r.stdout[-2000:]
    (b,) = run_dirs(ws)
    ra, rb = read_run(a), read_run(b)
    assert ra['config_sha256'] == rb['config_sha256']
    assert ra['stages']['curate']['metrics']['dataset_sha256'] == rb['stages']['curate']['metrics']['dataset_sha256']
    for f in ('data/train.parquet', 'data/quarantine.jsonl', 'tokenizer/tokenizer.json', 'pretrain/init/model.safetensors',
              'pretrain/model/model.safetensors', 'data/pairs/preference-train.parquet', 'sft/model/model.safetensors',
              'align/model/model.safetensors'):
        assert sha(a/f) == sha(b/f), f
    assert ra['stages']['pretrain']['metrics']['model_sha256'] == rb['stages']['pretrain']['metrics']['model_sha256']
    ea, eb = (json.loads((d/'eval/results.json').read_text()) for d in (a, b))
    assert ea == eb
    for k in ('train_loss', 'val_loss'): assert ra['stages']['pretrain']['metrics'][k] == rb['stages']['pretrain']['metrics'][k]
