"Alignment beyond DPO: every `align.method` trains through its real TRL trainer in the shared loop, checkpoints, reports the same held-out measure, resumes bit-exactly after SIGKILL, and GRPO's sandbox reward cannot be faked."

import hashlib, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT

from llm_workbench.config import (
    ALIGN_METHODS,
    AlignConfig,
    ModelConfig,
    SandboxConfig,
    load_config,
    parse_config,
)

PREFERENCE = [m for m in ALIGN_METHODS if m != 'grpo']
KNOBS = dict(simpo=dict(beta=2.0), orpo=dict(beta=0.5, lr=2e-2))  # as the recipes and the notebook set them
SETUP = '''
import torch
from llm_workbench.config import ModelConfig
from llm_workbench.train.tokenizer import train_tokenizer
from llm_workbench.train.model import build_model

torch.set_num_threads(1)
_names = ['add', 'combine', 'total', 'blend', 'merge', 'offset', 'join', 'mix']
_ops = ['+', '-', '*']
rows = [
    dict(
        id=f'p{i}',
        prompt=f'def {_names[i % 8]}_{i}(a, b):\\n    """Return a {_ops[i % 3]} b."""\\n',
        chosen=f'    return a {_ops[i % 3]} b\\n',
        rejected=f'    return eval("a {_ops[i % 3]} b")\\n',
    )
    for i in range(48)
]
train_rows, eval_rows = rows[:40], rows[40:]
tok = train_tokenizer(
    [r['prompt'] + r[k] for r in rows for k in ('chosen', 'rejected')], vocab_size=400, min_frequency=1
)
MICRO = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=128)
model = lambda: build_model(MICRO, len(tok), tok.eos_token_id, seed=0)
'''
SANDBOX = SandboxConfig(timeout_s=10)
ADD = '''def add(a, b):
    """Add two numbers.

    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
    return a + b
'''


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def data():
    ns = {}
    exec(SETUP, ns)
    return ns


def test_every_method_has_a_small_recipe():
    for method in ALIGN_METHODS:
        cfg = load_config(ROOT / f'configs/align-{method}.yaml')
        assert cfg.align.method == method and cfg.name == f'align-{method}'
        assert cfg.align.max_steps <= 10 and cfg.model.hidden_size <= 64, method  # micro-sized
    assert load_config(ROOT / 'configs/align-simpo.yaml').align.beta == 2.0
    assert load_config(ROOT / 'configs/align-grpo.yaml').align.grpo.num_generations == 4


def test_bad_method_is_a_recipe_error_listing_the_valid_ones():
    with pytest.raises(ValueError) as e:
        parse_config('name: x\nalign:\n  method: ppo\n', 'bad.yaml')
    msg = str(e.value)
    assert 'bad.yaml:3: align.method' in msg, msg
    assert all(f"'{m}'" in msg for m in ALIGN_METHODS), msg
    assert (
        parse_config('align:\n  loss_type: ipo\n', 'old.yaml').align.method == 'ipo'
    )  # old recipes still load
    with pytest.raises(ValueError, match="contradicts method 'kto'"):
        parse_config('align:\n  method: kto\n  loss_type: ipo\n', 'old.yaml')
    with pytest.raises(ValueError, match='multiple of grpo.num_generations'):
        parse_config('align:\n  method: grpo\n  batch_size: 6\n', 'g.yaml')


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    "Each preference method, 8 steps from the same micro model on the same pairs: summary and held-out measure."
    from llm_workbench.align.dpo import preference_accuracy, reference_model
    from llm_workbench.align.methods import train_preference

    out, root = {}, tmp_path_factory.mktemp('methods')
    base = AlignConfig(
        max_steps=8,
        batch_size=8,
        lr=8e-3,
        warmup_steps=1,
        log_every=2,
        eval_every=4,
        save_every=4,
        max_length=128,
    )
    for method in PREFERENCE:
        cfg = base.model_copy(update=dict(method=method, **KNOBS.get(method, {})))
        m = data['model']()
        start = reference_model(m)
        before = preference_accuracy(m, start, data['tok'], data['eval_rows'], cfg.beta, cfg.max_length)
        s = train_preference(
            m, data['tok'], data['train_rows'], data['eval_rows'], cfg, root / method, seed=0
        )
        after = preference_accuracy(m, start, data['tok'], data['eval_rows'], cfg.beta, cfg.max_length)
        out[method] = dict(summary=s, before=before, after=after, dir=root / method)
    return out


@pytest.mark.parametrize('method', PREFERENCE)
def test_each_preference_method_trains_checkpoints_and_reports(trained, method):
    from llm_workbench.train.loop import read_metrics

    t = trained[method]
    s = t['summary']
    assert (s['method'], s['steps'], s['pairs_train'], s['pairs_eval']) == (method, 8, 40, 8)
    assert s['tokens'] > 0 and s['tokens_per_s'] > 0, s  # the cost ledger sees real tokens
    assert (t['dir'] / 'checkpoints' / 'checkpoint-8').is_dir() and (
        t['dir'] / 'model' / 'model.safetensors'
    ).exists()
    losses = [r['loss'] for r in read_metrics(t['dir'] / 'metrics.jsonl') if 'loss' in r]
    assert losses[-1] < losses[0], losses
    assert s['eval'], s  # TRL evaluated the held-out pairs
    before, after = t['before'], t['after']
    assert before['pairs'] == after['pairs'] == 8 and before['mean_margin'] == 0.0
    assert after['accuracy'] >= 0.75 and after['mean_margin'] > 0, (method, after)


def test_methods_differ(trained):
    "Same start, data and seed: each method ends with other weights (the name is not a label on one objective)."
    import torch
    from llm_workbench.train.model import load_model

    w = {m: load_model(t['dir'] / 'model').state_dict() for m, t in trained.items()}
    names = list(w)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert any(not torch.equal(w[a][k], w[b][k]) for k in w[a]), (a, b)
    margins = {m: t['after']['mean_margin'] for m, t in trained.items()}
    assert len(set(margins.values())) == len(margins), margins
    print(
        json.dumps(
            {
                m: dict(steps_per_s=round(8 / t['summary']['wall_s'], 2), **t['after'])
                for m, t in trained.items()
            }
        )
    )


def test_reference_free_methods_get_no_reference(trained):
    from llm_workbench.align.methods import REFERENCE_FREE, _trainer_class

    assert REFERENCE_FREE == ('simpo', 'orpo')
    assert [_trainer_class(m).__mro__[2].__name__ for m in REFERENCE_FREE] == ['CPOTrainer', 'ORPOTrainer']


def test_kto_unpaired_set_comes_from_the_pairs(data):
    from llm_workbench.align.methods import kto_dataset

    ds = kto_dataset(data['train_rows'], seed=0)
    assert len(ds) == 80 and sum(ds['label']) == 40
    chosen = {r['chosen'].strip() for r in data['train_rows']}
    assert all((e['completion'].strip() in chosen) == e['label'] for e in ds)


@pytest.fixture(scope='module')
def add_task():
    from llm_workbench.eval.tasks import doctest_tasks

    (task,) = doctest_tasks([dict(id='r1', text=ADD, source='t', group='g', location='')], timeout=10)
    return task


FORGED = {
    'print-success': '\n    print("passed")\n    print("OK: all tests passed")\n    return a - b\n',
    'os-exit-0': '\n    import os\n    os._exit(0)\n',
    'sys-exit-0': '\n    import sys\n    sys.exit(0)\n',
    'exit-at-import': '\n    return a - b\n\n\nprint("verdict passed")\nimport os\nos._exit(0)\n',
    'patch-doctest': '\n    return a - b\n\n\nimport doctest\ndoctest.OutputChecker.check_output = lambda *a: True\n',
    'atexit': '\n    return a - b\n\n\nimport atexit, os\natexit.register(lambda: os._exit(0))\n',
    'kill-harness': '\n    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n',
}


def test_grpo_reward_cannot_be_gamed(add_task):
    "A policy that learns to print a success line, exit early or patch the checker earns zero reward (or less)."
    from llm_workbench.align.grpo import SandboxReward

    n = len(FORGED)
    cols = dict(tests=[add_task['tests']] * n, task_prompt=[add_task['prompt']] * n, entry_point=['add'] * n)
    rewards = SandboxReward(SANDBOX)([add_task['prompt']] * n, list(FORGED.values()), **cols)
    assert all(r <= 0 for r in rewards), dict(zip(FORGED, rewards))
    honest = SandboxReward(SANDBOX)(
        [add_task['prompt']], [add_task['canonical']], **{k: v[:1] for k, v in cols.items()}
    )
    assert honest == [1.0]


def test_grpo_reward_penalties_and_cache(add_task):
    from llm_workbench.align.grpo import SandboxReward

    reward = SandboxReward(SANDBOX, unparsable_penalty=0.2, insecure_penalty=0.1)
    answers = ['\n    return a +\n', '\n    return eval("a + b")\n', '\n    return a - b\n']
    cols = dict(tests=[add_task['tests']] * 3, task_prompt=[add_task['prompt']] * 3, entry_point=['add'] * 3)
    assert [round(r, 6) for r in reward([add_task['prompt']] * 3, answers, **cols)] == [-0.2, 0.8, 0.0]
    logged = {}
    again = reward([add_task['prompt']] * 3, answers, log_metric=logged.__setitem__, **cols)
    assert [round(r, 6) for r in again] == [-0.2, 0.8, 0.0]
    assert logged['sandbox/cache_hits'] == 1.0 and logged['sandbox/unparsable_rate'] == pytest.approx(1 / 3)


def test_grpo_trains_checkpoints_and_reports_pass_rate(add_task, tmp_path):
    from llm_workbench.align.grpo import heldout_pass_rate, train_grpo
    from llm_workbench.train.loop import read_metrics
    from llm_workbench.train.model import build_model, load_model
    from llm_workbench.train.tokenizer import train_tokenizer

    tok = train_tokenizer([ADD] * 4, vocab_size=300, min_frequency=1)
    mcfg = ModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=256
    )
    cfg = AlignConfig(
        method='grpo',
        max_steps=3,
        batch_size=4,
        lr=1e-3,
        warmup_steps=0,
        log_every=1,
        save_every=3,
        max_length=256,
        grpo=dict(num_generations=4, max_completion_length=12, beta=0.04),
    )
    m = build_model(mcfg, len(tok), tok.eos_token_id, seed=0)
    s = train_grpo(m, tok, [add_task], cfg, SANDBOX, tmp_path / 'grpo', seed=0)
    assert (s['steps'], s['method'], s['prompts_train']) == (3, 'grpo', 1) and s['tokens'] > 0, s
    assert (tmp_path / 'grpo' / 'checkpoints' / 'checkpoint-3').is_dir()
    rows = [r for r in read_metrics(tmp_path / 'grpo' / 'metrics.jsonl') if 'reward' in r]
    for key in (
        'reward',
        'reward_std',
        'kl',
        'completions/mean_length',
        'sandbox/pass_rate',
        'sandbox/refusal_rate',
    ):
        assert key in rows[0], (key, rows[0])
    held = heldout_pass_rate(load_model(tmp_path / 'grpo' / 'model'), tok, [add_task], cfg, SANDBOX)
    assert held['tasks'] == 1 and 0.0 <= held['pass_rate'] <= 1.0


RESUME = (
    SETUP
    + '''
import sys
from pathlib import Path
from llm_workbench.config import AlignConfig
from llm_workbench.align.methods import train_preference

out, steps = Path(sys.argv[1]), int(sys.argv[2])
cfg = AlignConfig(method='simpo', beta=2.0, max_steps=steps, batch_size=8, lr=8e-3, warmup_steps=1,
                  log_every=5, eval_every=1000, save_every=10, max_length=128)
s = train_preference(model(), tok, train_rows, eval_rows, cfg, out, seed=0)
print('RESUMED', s['resumed_from'])
'''
)


def kill_at_checkpoint(script: Path, out: Path, steps: int, checkpoint: str) -> dict:
    "Start `script OUT STEPS`, SIGKILL it once `checkpoint` is sealed, check it had not finished; the environment used."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.Popen(
        [sys.executable, str(script), str(out), str(steps)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (out / 'checkpoints' / checkpoint).is_dir():
        time.sleep(0.05)
    assert (out / 'checkpoints' / checkpoint).is_dir(), 'no checkpoint appeared'
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert not (out / 'model').exists(), 'the run finished before it was killed: raise steps'
    return env


def run_script(script: Path, out: Path, steps: int, env: dict) -> str:
    "Run `script OUT STEPS` to the end; its stdout."
    r = subprocess.run(
        [sys.executable, str(script), str(out), str(steps)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_simpo_sigkill_then_resume_is_bit_identical(tmp_path):
    "A real process training SimPO (TRL's CPO trainer, reference-free) is killed mid-run; rerun resumes to the same bits."
    script = tmp_path / 'simpo.py'
    script.write_text(RESUME)
    steps, out = 120, tmp_path / 'killed'
    env = kill_at_checkpoint(script, out, steps, 'checkpoint-20')
    resumed = run_script(script, out, steps, env)
    assert 'RESUMED' in resumed and 'checkpoint-' in resumed.split('RESUMED')[1], resumed[-500:]
    run_script(script, tmp_path / 'clean', steps, env)
    assert sha(out / 'model' / 'model.safetensors') == sha(tmp_path / 'clean' / 'model' / 'model.safetensors')


def test_a_kto_source_is_curated_and_trains_kto(data, tmp_path):
    "A user's unpaired answers (`format: kto`) go through curate like any source, then KTO trains on them."
    import yaml
    from llm_workbench.align.dpo import preference_rows
    from llm_workbench.align.methods import train_preference
    from llm_workbench.core import RunLayout
    from llm_workbench.data.curate import curate

    good = [dict(prompt=r['prompt'], completion=r['chosen'], label=True) for r in data['rows']]
    bad = [dict(prompt=r['prompt'], completion=r['rejected'], label=False) for r in data['rows']]
    broken = [
        dict(prompt='def f():\n', completion='    pass\n', label='yes'),
        dict(prompt='def g():\n', label=True),
    ]
    source = tmp_path / 'kto.jsonl'
    source.write_text(''.join(json.dumps(x) + '\n' for x in good + bad + broken))
    recipe = yaml.safe_load((ROOT / 'configs' / 'micro.yaml').read_text())
    recipe['data']['sources'] = [
        dict(name='judged', kind='jsonl', path=str(source), format='kto', license='MIT', quality='none')
    ]
    recipe['data'] |= dict(split=dict(val=0.15, test=0.15), min_chars=16)  # short functions are fine here
    (tmp_path / 'kto.yaml').write_text(yaml.safe_dump(recipe))
    layout = RunLayout(tmp_path / 'run')
    m = curate(load_config(tmp_path / 'kto.yaml'), layout.data)
    (src,) = m['sources']
    removed = src['removed']
    assert src['records_in'] == 98 and removed['wrong_type'] == removed['missing_field'] == 1, src
    # every record accounted for
    assert src['kept'] + sum(removed.values()) == 98 and src['kept'] >= 48, src
    quarantined = [json.loads(x) for x in layout.quarantine.read_text().splitlines()]
    read = {q['location']: q for q in quarantined if q['stage'] == 'read'}
    assert set(read) == {'kto.jsonl:97', 'kto.jsonl:98'}, read
    assert "'label' is str, not a boolean" in read['kto.jsonl:97']['detail'], read
    train, val = preference_rows(layout.root, 'train'), preference_rows(layout.root, 'val')
    assert {r['format'] for r in train} == {'kto'} and {r['label'] for r in train} == {True, False}, train[:2]
    assert len(train) + len(val) + len(preference_rows(layout.root, 'test')) == src['kept']
    cfg = AlignConfig(
        method='kto', max_steps=4, batch_size=8, lr=8e-3, warmup_steps=1, save_every=4, max_length=128
    )
    s = train_preference(data['model'](), data['tok'], train, val, cfg, tmp_path / 'kto', seed=0)
    assert (s['method'], s['steps'], s['pairs_train']) == ('kto', 4, 0), s
    assert s['unpaired_train'] == len(train) and s['unpaired_eval'] == len(val), s
    assert s['tokens'] > 0, s


GRPO_RESUME = f'''
import sys, torch
from pathlib import Path
from llm_workbench.config import AlignConfig, ModelConfig, SandboxConfig
from llm_workbench.align.grpo import train_grpo
from llm_workbench.eval.tasks import doctest_tasks
from llm_workbench.train.model import build_model
from llm_workbench.train.tokenizer import train_tokenizer

torch.set_num_threads(1)
ADD = {ADD!r}
out, steps = Path(sys.argv[1]), int(sys.argv[2])
(task,) = doctest_tasks([dict(id='r1', text=ADD, source='t', group='g', location='')], timeout=10)
tok = train_tokenizer([ADD] * 4, vocab_size=300, min_frequency=1)
mcfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=256)
cfg = AlignConfig(method='grpo', max_steps=steps, batch_size=4, lr=1e-3, warmup_steps=0, log_every=1, save_every=2,
                  max_length=256, grpo=dict(num_generations=4, max_completion_length=12, beta=0.04))
model = build_model(mcfg, len(tok), tok.eos_token_id, seed=0)
s = train_grpo(model, tok, [task], cfg, SandboxConfig(timeout_s=10), out, seed=0)
print('RESUMED', s['resumed_from'])
'''


def test_grpo_sigkill_then_resume_is_bit_identical(tmp_path):
    "GRPO killed mid-run resumes to the same bits: sampling, sandbox rewards and updates replay exactly."
    from llm_workbench.train.loop import read_metrics

    script = tmp_path / 'grpo.py'
    script.write_text(GRPO_RESUME)
    steps, out = 10, tmp_path / 'killed'
    env = kill_at_checkpoint(script, out, steps, 'checkpoint-4')
    runs = {name: run_script(script, tmp_path / name, steps, env) for name in ('killed', 'clean')}
    assert 'checkpoint-' in runs['killed'].split('RESUMED')[1], runs['killed'][-500:]
    assert 'RESUMED None' in runs['clean'], runs['clean'][-500:]
    assert sha(out / 'model' / 'model.safetensors') == sha(tmp_path / 'clean' / 'model' / 'model.safetensors')
    rewards = {
        name: [r['reward'] for r in read_metrics(tmp_path / name / 'metrics.jsonl') if 'reward' in r][-4:]
        for name in runs
    }
    # the steps after the resume sampled the same answers
    assert rewards['killed'] == rewards['clean'], rewards


def test_the_grpo_recipe_runs_through_evaluate_and_release(tmp_path):
    "configs/align-grpo.yaml end to end: evaluate scores GRPO's model, release gates on its measure and registers it."
    from conftest import llmwb, make_workspace, read_run, run_dirs

    ws = make_workspace(tmp_path / 'ws', tracking='none')
    gate = 'release.gates.heldout_pass_rate={min: 0.0, severity: warn, why: GRPO held-out check}'
    r = llmwb(ws, 'run', ROOT / 'configs/align-grpo.yaml', '--set', gate, '--no-progress', timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = run_dirs(ws)
    run = read_run(rd)
    assert run['status'] == 'completed', run['error']
    align = run['stages']['align']['metrics']
    assert (align['method'], align['steps']) == ('grpo', 4) and align['train_tasks'] > 0, align
    assert 'heldout_pass_rate' in align and 'heldout_pass_rate' in run['metrics']  # the run's headline shows it
    ev = run['stages']['evaluate']['metrics']
    assert ev['final_model'] == 'align', ev  # the aligned model is the one evaluated
    aligned = json.loads((rd / 'align' / 'model' / 'config.json').read_text())
    assert aligned
    checks = {c['metric']: c for c in json.loads((rd / 'release' / 'gate.json').read_text())['checks']}
    held = checks['heldout_pass_rate']  # a policy can gate on the align stage's own held-out measure
    assert held['value'] == align['heldout_pass_rate'], held
    assert held['status'] == ('missing' if align['heldout_pass_rate'] is None else 'pass'), held
    rel = run['stages']['release']['metrics']
    assert rel['registry_version'] == 'align-grpo:1', rel
    card = (rd / 'release' / 'bundle' / 'README.md').read_text()
    assert '| align_method | grpo |' in card, card[:3000]  # the card names the method
