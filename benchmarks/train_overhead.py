"""Training overhead benchmark: tokens/s of our pretraining path (`llm_workbench.train.pretrain.pretrain`, the HF Trainer with our
settings) against a bare PyTorch loop on the same model, batch, sequence length, optimizer and schedule, in one process.

Data: Python standard-library files (the quickstart's first source), a byte-level BPE of 4,096 tokens trained on them, packed into
blocks of 128 tokens by `pack_texts`. Model: the quickstart shape (hidden 128, 4 layers, 4 heads, intermediate 384), built by `build_model`
under the same seed for every run. Training settings: the quickstart's (`TrainConfig()`: batch 16, lr 3e-3, 30 warmup steps, cosine,
clipping 1.0, weight decay 0.1, a log line every 10 steps, evaluation every 100, a checkpoint every 200), for `--steps` steps.
The bare loop builds AdamW as the Trainer does for `training_args` (fused, or torch's defaults; no decay on norms), the same schedule and clipping, a shuffled DataLoader,
and evaluates and checkpoints nothing.

The two paths run alternately, `--rounds` times (bare first in even rounds), so drift in a shared machine's load hits both alike.
Each run's end of every optimizer step is time-stamped (for pretrain by wrapping its metrics callback, which it looks up at call time),
which splits a run's wall time into steps, setup before the first step, and the extra time of evaluations and checkpoint saves.
Reported (medians over rounds; other jobs' load comes in bursts that catch single runs, the pairing cancels slow drift and the median
drops the rounds a burst caught):
- `ratio`: pretrain tokens/s over the bare loop's in the same round (tokens / wall of the training call; the headline, target >= 0.95);
- `ratio_per_step`: bare median step time over pretrain's in the same round (the Trainer's per-step cost alone);
- `ratio_quickstart`: projected to the quickstart's 1000 steps (10 evaluations, 5 checkpoints, one setup);
- `ratio_fastest_runs` and `ratio_range`, to show the spread.
Prints one JSON object and writes benchmarks/results/train_overhead.json (or --out). Budget: about 3 minutes on 2 idle CPU cores.
Under load from other jobs a 2-thread torch run can slow down tenfold (its threads wait for each other at every parallel region), and
the run takes far longer; `--threads 1` is steadier there.
"""

import argparse, contextlib, json, os, platform, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

from llm_workbench.config import ModelConfig, SourceConfig, TrainConfig
from llm_workbench.data.sources import read_source
from llm_workbench.train import loop as P  # the shared loop builds the metrics callback
from llm_workbench.train.model import build_model, count_params
from llm_workbench.train.loop import read_metrics
from llm_workbench.train.pretrain import BlockDataset, pack_texts, pretrain, training_args
from llm_workbench.train.tokenizer import train_tokenizer

TARGET = 0.95
MODEL = ModelConfig(
    hidden_size=128, num_layers=4, num_heads=4, intermediate_size=384, max_position_embeddings=256
)


def load_blocks(seq_len, max_docs, vocab_size=4096):
    "Train/val blocks of stdlib source, packed; and the tokenizer."
    src = SourceConfig(name='python-stdlib', kind='python_stdlib', max_docs=max_docs)
    texts = [r['text'] for r in read_source(src) if 'text' in r]
    tok = train_tokenizer(texts, vocab_size=vocab_size)
    blocks, st = pack_texts(texts, tok, seq_len)
    return (
        tok,
        blocks[:-64],
        blocks[-64:],
        dict(documents=st['documents'], blocks=st['blocks'], packing_efficiency=st['packing_efficiency']),
    )


def trainer_optim(cfg) -> dict:
    "The AdamW flavour our `training_args` asks the Trainer for (`adamw_torch_fused` or `adamw_torch`), as `torch.optim.AdamW` arguments."
    with tempfile.TemporaryDirectory() as d:
        optim = str(training_args(cfg, Path(d), 0, []).optim)
    return (
        dict(fused=True) if 'fused' in optim else {}
    )  # `adamw_torch`: torch's defaults, as the Trainer builds it


def bare_loop(model, blocks, cfg, seed):
    "Plain PyTorch: shuffled DataLoader, AdamW as the Trainer's (no decay on 1-d weights), the same schedule and clipping. Returns wall, step ends, last loss."
    from transformers import get_scheduler

    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        BlockDataset(blocks), batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=g
    )
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    t0 = time.perf_counter()
    opt = torch.optim.AdamW(
        [dict(params=decay, weight_decay=cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)],
        lr=cfg.lr,
        **trainer_optim(cfg),
    )
    sched = get_scheduler(
        cfg.lr_scheduler, opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps
    )
    model.train()
    ends, it, recent, last = [], iter(loader), [], float('nan')
    while len(ends) < cfg.max_steps:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        ends.append(time.perf_counter() - t0)
        recent.append(loss.detach())
        if len(ends) % cfg.log_every == 0:
            last = torch.stack(recent).mean().item()
            recent = []
    return time.perf_counter() - t0, ends, dict(evals=[], saves=[]), last


@contextlib.contextmanager
def clocked_pretrain():
    "Wrap the training loop's metrics callback so that it also time-stamps train begin and end, each step end, evaluations and saves."
    from transformers import TrainerCallback

    orig, clocks = P.metrics_callback, []

    def metrics_callback(path):
        m = orig(path)

        class Clock(TrainerCallback):
            def __init__(self):
                self.t0, self.t_end, self.ends, self.events = None, None, [], dict(evals=[], saves=[])

            def on_log(self, *a, **k):
                return m.on_log(*a, **k)

            def on_train_begin(self, *a, **k):
                self.t0 = time.perf_counter()

            def on_train_end(self, *a, **k):
                self.t_end = time.perf_counter() - self.t0

            def on_step_end(self, args, state, control, **k):
                self.ends.append(time.perf_counter() - self.t0)

            def on_evaluate(self, args, state, control, **k):
                self.events['evals'].append(state.global_step)

            def on_save(self, args, state, control, **k):
                self.events['saves'].append(state.global_step)

        clocks.append(Clock())
        return clocks[-1]

    P.metrics_callback = metrics_callback
    try:
        yield clocks
    finally:
        P.metrics_callback = orig


def run_pretrain(tok, tb, vb, cfg, seed):
    "pretrain() on a fresh model in a temp dir: wall of trainer.train(), step-end times (from on_train_begin), events, last loss, eval seconds."
    with tempfile.TemporaryDirectory() as d, clocked_pretrain() as clocks:
        s = pretrain(build_model(MODEL, len(tok), tok.eos_token_id, seed), tok, tb, vb, cfg, d, seed=seed)
        rows = read_metrics(Path(d) / 'metrics.jsonl')
    c = clocks[-1]
    c.events['before_begin_s'] = max(
        s['wall_s'] - c.t_end, 0.0
    )  # train() setup before on_train_begin (wall_s times train())
    c.events['tail_s'] = c.t_end - c.ends[-1]  # after the last step: the final evaluation and checkpoint
    c.events['eval_s'] = min((r['eval_runtime'] for r in rows if 'eval_runtime' in r), default=0.0)
    return s['wall_s'], c.ends, c.events, [r['loss'] for r in rows if 'loss' in r][-1]


def components(wall, ends, events):
    "Split a run: median step, setup (before the first step, beyond one median step), extras of mid-run evaluations/saves, tail after the last step."
    d = np.diff([0.0] + list(ends))
    med = float(np.median(d[1:]))
    mid = [
        k for k in set(events['evals']) | set(events['saves']) if k < len(ends)
    ]  # an event after step k lands in d[k]
    return dict(
        step_s=med,
        setup_s=events.get('before_begin_s', 0.0) + max(float(d[0]) - med, 0.0),
        mid_extra_s=float(sum(max(d[k] - med, 0.0) for k in mid)),
        tail_s=events.get('tail_s', max(wall - ends[-1], 0.0)),
        eval_s=events.get('eval_s', 0.0),
        n_evals=len(events['evals']),
        n_saves=len(events['saves']),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--steps', type=int, default=100)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--max-docs', type=int, default=300)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument(
        '--threads',
        type=int,
        help="torch threads (default: torch's choice, one per core); 1 is steadier on a shared machine",
    )
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results/train_overhead.json'))
    a = ap.parse_args()
    os.environ.setdefault('WANDB_MODE', 'disabled')
    if a.threads:
        torch.set_num_threads(a.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    t_start = time.perf_counter()
    tok, tb, vb, data = load_blocks(128, a.max_docs)
    cfg = TrainConfig(
        seq_len=128, batch_size=16, max_steps=a.steps
    )  # the quickstart's training settings, for a shorter run
    tokens = cfg.max_steps * cfg.batch_size * cfg.seq_len
    rounds = []
    for r in range(a.rounds):
        res = {}
        for path in ('bare', 'pretrain') if r % 2 == 0 else ('pretrain', 'bare'):
            load = os.getloadavg()[0]
            with contextlib.redirect_stdout(sys.stderr):
                if path == 'bare':
                    wall, ends, events, last = bare_loop(
                        build_model(MODEL, len(tok), tok.eos_token_id, a.seed), tb, cfg, a.seed
                    )
                else:
                    wall, ends, events, last = run_pretrain(tok, tb, vb, cfg, a.seed)
            c = components(wall, ends, events)
            res[path] = dict(
                tokens_per_s=round(tokens / wall, 1),
                wall_s=round(wall, 2),
                step_ms=round(1000 * c['step_s'], 1),
                setup_s=round(c['setup_s'], 3),
                mid_extra_s=round(c['mid_extra_s'], 3),
                tail_s=round(c['tail_s'], 3),
                eval_s=round(c['eval_s'], 3),
                evals=c['n_evals'],
                saves=c['n_saves'],
                last_loss=round(last, 4),
                load_avg_1m=round(load, 2),
            )
        res['ratio'] = round(res['pretrain']['tokens_per_s'] / res['bare']['tokens_per_s'], 3)
        rounds.append(res)
        print(json.dumps(dict(round=r, **res)), file=sys.stderr)
    # headline: the median over rounds of the paired ratio (pretrain over the bare run of the same round). Other jobs' load comes in
    # bursts that catch single runs; the pairing cancels slow drifts and the median drops the rounds a burst caught.
    ratio = float(np.median([x['ratio'] for x in rounds]))
    ratio_step = float(np.median([x['bare']['step_ms'] / x['pretrain']['step_ms'] for x in rounds]))
    med = lambda p, k: float(np.median([x[p][k] for x in rounds]))
    step_b, setup_p, tail_p, eval_p = (
        med('bare', 'step_ms') / 1000,
        med('pretrain', 'setup_s'),
        med('pretrain', 'tail_s'),
        med('pretrain', 'eval_s'),
    )
    # the quickstart (1000 steps): 10 evaluations (every 100) and 5 checkpoints (every 200); the tail measured here is one of each
    save_p = max(tail_p - eval_p, 0.0)
    qs_b, qs_p = 1000 * step_b, 1000 * step_b / ratio_step + setup_p + 10 * eval_p + 5 * save_p
    res = dict(
        benchmark='train_overhead',
        model=MODEL.model_dump(exclude={'name_or_path', 'trust_remote_code'}),
        params=count_params(build_model(MODEL, len(tok), tok.eos_token_id, 0)),
        vocab_size=len(tok),
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        steps=cfg.max_steps,
        tokens_per_run=tokens,
        data=data,
        optimizer=f"torch.optim.AdamW(**{trainer_optim(cfg)})",
        settings=dict(
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            scheduler=cfg.lr_scheduler,
            log_every=cfg.log_every,
            eval_every=cfg.eval_every,
            save_every=cfg.save_every,
            max_eval_blocks=cfg.max_eval_blocks,
        ),
        tokens_per_s=dict(
            bare=med('bare', 'tokens_per_s'),
            pretrain=med('pretrain', 'tokens_per_s'),
            bare_fastest_run=max(x['bare']['tokens_per_s'] for x in rounds),
            pretrain_fastest_run=max(x['pretrain']['tokens_per_s'] for x in rounds),
        ),
        components=dict(
            bare=dict(step_ms=med('bare', 'step_ms'), setup_s=med('bare', 'setup_s')),
            pretrain=dict(
                step_ms=med('pretrain', 'step_ms'),
                setup_s=setup_p,
                mid_extra_s=med('pretrain', 'mid_extra_s'),
                tail_s=tail_p,
                eval_s=eval_p,
                save_s=round(save_p, 3),
            ),
        ),
        ratio=round(ratio, 3),
        ratio_per_step=round(ratio_step, 3),
        ratio_quickstart=round(qs_b / qs_p, 3),
        ratio_fastest_runs=round(
            max(x['pretrain']['tokens_per_s'] for x in rounds)
            / max(x['bare']['tokens_per_s'] for x in rounds),
            3,
        ),
        ratio_range=[min(x['ratio'] for x in rounds), max(x['ratio'] for x in rounds)],
        target=TARGET,
        meets_target=ratio >= TARGET,
        rounds=rounds,
        wall_s=round(time.perf_counter() - t_start, 1),
        machine=dict(
            cpus=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            platform=platform.platform(),
            torch=torch.__version__,
            transformers=transformers.__version__,
        ),
    )
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
