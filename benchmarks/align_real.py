"""Alignment methods on the real model: DPO, SimPO and GRPO, a few steps each, from the same SFT'd SmolLM2-135M-Instruct.

Runs `configs/code-assistant.yaml` (the CPU profile) through `curate,pretrain,sft,align` once per method, sharing one
stage cache, so curation, the adopted base and the SFT model are computed once and every method starts from the very
same weights. Each method keeps the recipe's align settings (8 steps, LoRA r 8); `--steps` changes the step count.
GRPO gets a batch of one group (`num_generations` completions of one prompt per step), the recipe's sandbox and
more data (below).

Reports, per method, the align stage's own measures: for the preference methods the held-out reward accuracy and
margin against the SFT model (the same measure for every method), for GRPO the reward, pass rate and KL it logged and
the greedy held-out pass rate before and after. Prints one JSON object; writes benchmarks/results/align_real.json.
Budget: about 40 minutes on 2 cores (curate + adopt + SFT ~6 min once, DPO ~5, SimPO ~4, GRPO with its own
curation and SFT ~20).
"""

import argparse, json, platform, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))

from conftest import make_workspace  # the tests' workspace: its settings.ini points at the converted model cache
from llm_workbench.core import load_settings
from llm_workbench.runner import run_pipeline

# GRPO needs held-out doctest tasks: the recipe's 400 stdlib files put none in the validation split, so its GRPO run
# curates all stdlib files plus 600 installed-package files (17 verified val tasks, 64 train). Completions of 256
# tokens fit SmolLM2's chat answers (a fence, code, a sentence); 96 truncated every one.
GRPO_SOURCES = (
    'data.sources=[{name: python-stdlib, kind: python_stdlib, max_docs: 1300},'
    ' {name: python-packages, kind: python_packages, max_docs: 600}]'
)
METHODS = dict(
    dpo=[],
    simpo=['align.beta=2.0'],
    grpo=[
        GRPO_SOURCES,
        'align.batch_size=4',
        'align.lr=0.0002',
        'align.max_length=640',
        'align.grpo.num_generations=4',
        'align.grpo.max_completion_length=256',
        'align.grpo.temperature=0.8',
        'align.grpo.max_prompts=16',
        'align.grpo.eval_prompts=16',
    ],
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--methods', default='dpo,simpo,grpo')
    ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--out', default=str(ROOT / 'benchmarks/results/align_real.json'))
    a = ap.parse_args()
    ws = make_workspace(Path(tempfile.mkdtemp(prefix='align-real-')), tracking='none')
    settings = load_settings(ws)
    results = {}
    for method in a.methods.split(','):
        t0 = time.perf_counter()
        sets = [f'align.method={method}', f'align.max_steps={a.steps}', *METHODS[method]]
        run = run_pipeline(
            ROOT / 'configs/code-assistant.yaml',
            stages='curate,pretrain,sft,align',
            settings=settings,
            progress=False,
            overrides=sets,
            stage_cache=ws / 'cache',
        )
        stages = run['stages']
        results[method] = dict(
            overrides=sets,
            wall_s=round(time.perf_counter() - t0, 1),
            reused=[s for s, v in stages.items() if v.get('reused')],
            align_s=stages['align'].get('duration_s'),
            align=stages['align']['metrics'],
        )
        print(json.dumps({method: results[method]}), flush=True)
        out = dict(
            benchmark='align_real',
            recipe='configs/code-assistant.yaml',
            steps=a.steps,
            machine=f'{platform.machine()}, {platform.processor() or "cpu"}',
            methods=results,
        )
        Path(a.out).write_text(json.dumps(out, indent=2))  # after each method: a long run keeps what it measured
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
