"""Data-parallel training on CPU under torchrun (gloo): SFT and DPO in two processes with half the batch each, as DDP
or as FSDP shards, follow the loss curve of one process with the whole batch at every logged step; FSDP runs write
sharded checkpoints, resume from them and leave one consolidated model; GRPO refuses several processes. All tests
start from copies of one curated run dir pretrained with FSDP in two processes."""

import json, shutil
import pytest
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs
from llm_workbench.train.loop import read_metrics
from llm_workbench.train.model import load_model

SFT = '  max_steps: 10\n  batch_size: 4\n'  # micro.yaml's sft section starts with these lines
ALIGN = '  max_steps: 6\n  batch_size: 4\n'  # ... and its align section with these
NO_SFT = '  enabled: false\n' + SFT  # align then starts from the pretrained model
DPO_BASE = MICRO.read_text().replace(ALIGN, ALIGN + '  log_every: 1\n').replace(SFT, NO_SFT)
SFT_TWO = '  max_steps: 10\n  batch_size: 2\n  processes: 2\n'
SFT_BASE = MICRO.read_text().replace(SFT, SFT + '  log_every: 1\n')
TRAIN = '  batch_size: 8\n  max_steps: 30\n'  # micro.yaml's pretraining: 8 blocks per step
FSDP_TRAIN = '  batch_size: 4\n  processes: 2\n  strategy: fsdp\n  max_steps: 30\n'


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    "One micro run dir, curated and pretrained with FSDP (2 processes of 4 blocks), that each test copies."
    ws = make_workspace(tmp_path_factory.mktemp('base'), tracking='none')
    (ws / 'r.yaml').write_text(MICRO.read_text().replace(TRAIN, FSDP_TRAIN))
    r = llmwb(ws, 'run', 'r.yaml', '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-4000:]
    (rd,) = run_dirs(ws)
    return rd


def stage_run(pretrained, tmp_path, name: str, recipe: str, stages: str):
    "A copy of the pretrained run dir in a workspace of its own, with `stages` run on `recipe`: (result, run dir)."
    ws = make_workspace(tmp_path / name, tracking='none')
    rd = ws / 'runs' / pretrained.name
    shutil.copytree(pretrained, rd)
    (ws / 'r.yaml').write_text(recipe)
    return llmwb(ws, 'run', 'r.yaml', '--run-dir', rd, '--stages', stages, '--no-progress'), rd


def losses(rd, stage: str) -> dict:
    return {r['step']: r['loss'] for r in read_metrics(rd / stage / 'metrics.jsonl') if 'loss' in r}


def assert_same_curve(one: dict, two: dict, steps: int):
    assert sorted(one) == sorted(two) == list(range(1, steps + 1)), (sorted(one), sorted(two))
    for step in one:
        assert abs(one[step] - two[step]) <= 1e-3 * max(1.0, abs(one[step])), (step, one[step], two[step])


@pytest.fixture(scope='module')
def sft_single(pretrained, tmp_path_factory):
    "SFT in one process with the whole batch of 4, logging every step: the curve the others must follow."
    r, rd = stage_run(pretrained, tmp_path_factory.mktemp('sft'), 'one', SFT_BASE, 'sft')
    assert r.returncode == 0, r.stdout[-4000:]
    assert read_run(rd)['stages']['sft']['metrics']['processes'] == 1
    return rd


def test_sft_two_processes_match_one(pretrained, sft_single, tmp_path):
    "sft.processes: 2 processes of 2 pairs train on the same 4 pairs per step as one process of 4: same losses."
    r, double = stage_run(pretrained, tmp_path, 'two', SFT_BASE.replace(SFT, SFT_TWO), 'sft')
    assert r.returncode == 0, r.stdout[-4000:]
    metrics = read_run(double)['stages']['sft']['metrics']
    assert (metrics['processes'], metrics['global_batch'], metrics['steps']) == (2, 4, 10), metrics
    assert_same_curve(losses(sft_single, 'sft'), losses(double, 'sft'), 10)
    assert (double / 'sft/checkpoints/checkpoint-10/rng_state_1.pth').is_file()  # every rank's part is sealed
    assert json.loads((double / 'sft/summary.json').read_text())['topology']['sharded_units'] == 0  # DDP


def test_fsdp_sft_shards_resumes_and_consolidates(pretrained, sft_single, tmp_path):
    "sft.strategy fsdp: sharded checkpoints, a resume from one, one consolidated safetensors model, the same losses."
    fsdp = SFT_BASE.replace(SFT, SFT_TWO + '  strategy: fsdp\n')
    stopped = fsdp.replace(SFT_TWO, SFT_TWO + f'  budget: {{max_tokens: {5 * 4 * 64 + 1}}}\n')
    r, rd = stage_run(pretrained, tmp_path, 'fsdp', stopped, 'sft')
    assert r.returncode == 0, r.stdout[-4000:]
    assert read_run(rd)['stages']['sft']['metrics']['steps'] == 5
    shards = rd / 'sft/checkpoints/checkpoint-5'
    assert not (shards / 'model.safetensors').exists() and list(shards.glob('pytorch_model_fsdp_0/*.distcp'))
    (rd.parents[1] / 'r.yaml').write_text(fsdp)
    r = llmwb(rd.parents[1], 'run', 'r.yaml', '--run-dir', rd, '--stages', 'sft', '--no-progress')
    assert r.returncode == 0, r.stdout[-4000:]
    metrics = read_run(rd)['stages']['sft']['metrics']
    assert (metrics['steps'], metrics['resumed_from'], metrics['processes']) == (10, 'checkpoint-5', 2), (
        metrics
    )
    assert (
        json.loads((rd / 'sft/summary.json').read_text())['topology']['sharded_units'] >= 3
    )  # layers + root
    assert sorted(p.name for p in (rd / 'sft/model').glob('*.safetensors')) == ['model.safetensors']
    assert not list((rd / 'sft/model').rglob('*.distcp'))
    assert type(load_model(rd / 'sft/model')).__name__ == 'LlamaForCausalLM'
    assert_same_curve(losses(sft_single, 'sft'), losses(rd, 'sft'), 10)


def test_fsdp_pretraining_is_sharded_and_consolidated(pretrained):
    "train.strategy fsdp: the shared run dir was pretrained sharded; checkpoints hold shards, the model is whole."
    metrics = read_run(pretrained)['stages']['pretrain']['metrics']
    assert (metrics['processes'], metrics['global_batch'], metrics['steps']) == (2, 8, 30), metrics
    assert json.loads((pretrained / 'pretrain/summary.json').read_text())['topology']['sharded_units'] >= 3
    shards = pretrained / 'pretrain/checkpoints/checkpoint-30'
    assert not (shards / 'model.safetensors').exists() and list(shards.glob('pytorch_model_fsdp_0/*.distcp'))
    assert sorted(p.name for p in (pretrained / 'pretrain/model').glob('*.safetensors')) == [
        'model.safetensors'
    ]
    assert type(load_model(pretrained / 'pretrain/model')).__name__ == 'LlamaForCausalLM'


@pytest.fixture(scope='module')
def dpo_single(pretrained, tmp_path_factory):
    "DPO (SFT off) in one process with the whole batch of 4 pairs, logging every step."
    r, rd = stage_run(pretrained, tmp_path_factory.mktemp('dpo'), 'one', DPO_BASE, 'sft,align')
    assert r.returncode == 0, r.stdout[-4000:]
    assert read_run(rd)['stages']['sft']['status'] == 'disabled'
    return rd


@pytest.mark.parametrize('strategy', ['ddp', 'fsdp'])
def test_dpo_two_processes_match_one(pretrained, dpo_single, tmp_path, strategy):
    "align.processes and align.strategy: DPO in 2 processes of 2 pairs (DDP, or FSDP shards) against 1 of 4."
    two = f'  max_steps: 6\n  batch_size: 2\n  processes: 2\n  strategy: {strategy}\n'
    r, double = stage_run(pretrained, tmp_path, 'two', DPO_BASE.replace(ALIGN, two), 'sft,align')
    assert r.returncode == 0, r.stdout[-4000:]
    metrics = read_run(double)['stages']['align']['metrics']
    assert (metrics['processes'], metrics['global_batch'], metrics['steps']) == (2, 4, 6), metrics
    units = json.loads((double / 'align/summary.json').read_text())['topology']['sharded_units']
    assert (units >= 3) == (strategy == 'fsdp'), units
    assert_same_curve(losses(dpo_single, 'align'), losses(double, 'align'), 6)


def test_grpo_refuses_processes(pretrained, tmp_path):
    "GRPO stays single-process: align.processes 2 fails the stage at its first cell, saying why."
    recipe = MICRO.read_text().replace(SFT, NO_SFT)
    recipe = recipe.replace(ALIGN, '  method: grpo\n  max_steps: 6\n  batch_size: 4\n  processes: 2\n')
    r, rd = stage_run(pretrained, tmp_path, 'grpo', recipe, 'sft,align')
    assert r.returncode != 0
    assert 'trains in one process' in read_run(rd)['stages']['align']['error']
