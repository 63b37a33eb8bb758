"Task benchmarks: loader errors, pass@k, batch-size independence of log-likelihood scores, verified doctest tasks."

import json
import pytest
import torch
from llm_workbench.config import ModelConfig
from llm_workbench.train.tokenizer import train_tokenizer
from llm_workbench.train.model import build_model
from llm_workbench.eval.loglik import loglikelihood, generate
from llm_workbench.eval.tasks import (
    load_task_file,
    save_task_file,
    pass_at_k,
    doctest_tasks,
    docstring_choice_tasks,
    score_choice,
)

SRC = '''import math


def hyp(a, b):
    """Length of the hypotenuse.

    >>> hyp(3, 4)
    5.0
    """
    return math.sqrt(a * a + b * b)


def scale(xs, k=2):
    """Every item multiplied by the factor k.

    >>> scale([1, 2])
    [2, 4]
    """
    return [x * SCALE_UNIT * k for x in xs]


SCALE_UNIT = 1


def shout(s):
    """The text in upper case with a bang.

    >>> shout('hi')
    'HI!'
    """
    return s.upper() + '!'


def broken(s):
    """A doctest that its own body does not satisfy.

    >>> broken(1)
    2
    """
    return s
'''
REC = dict(id='r1', text=SRC, source='test', location='r1.py', group='g', split='test')


@pytest.fixture(scope='module')
def tiny():
    texts = [f'def f{i}(x):\n    return x + {i}\n' for i in range(100)] + [SRC]
    tok = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    cfg = ModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=64
    )
    return build_model(cfg, len(tok), tok.eos_token_id, seed=0), tok


@pytest.mark.parametrize(
    'line,msg',
    [
        ('{"id": "a", "context": "c", "choices": [" x"', 'f.jsonl:2: broken JSON'),
        ('{"id": "a", "choices": [" x", " y"], "answer": 0}', "f.jsonl:2: missing field 'context'"),
        (
            '{"id": "a", "context": "c", "choices": [" x", " y"], "answer": true}',
            "f.jsonl:2: field 'answer' should be int, got bool",
        ),
        (
            '{"id": "a", "context": "c", "choices": [" x", " y"], "answer": -1}',
            'f.jsonl:2: answer -1 out of range for 2 choices',
        ),
        (
            '{"id": "ok", "context": "c", "choices": [" x", " y"], "answer": 0}',
            "f.jsonl:2: duplicate id 'ok' (first on line 1)",
        ),
        ('[1, 2]', 'f.jsonl:2: expected a JSON object, got list'),
    ],
)
def test_loader_errors(tmp_path, line, msg):
    p = tmp_path / 'f.jsonl'
    p.write_text(json.dumps(dict(id='ok', context='c', choices=[' x', ' y'], answer=0)) + '\n' + line + '\n')
    with pytest.raises(ValueError) as e:
        load_task_file(p, 'choice')
    assert str(e.value).replace(str(p), 'f.jsonl').startswith(msg)


def test_roundtrip(tmp_path):
    items = [
        dict(id='g', prompt='p', tests='assert True', entry_point='f'),
        dict(id='t', prompt='1+1=', target='2'),
    ]
    assert load_task_file(save_task_file(items, tmp_path / 'g.jsonl'), 'generation') == items


def test_pass_at_k():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 8) == 1.0 and pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 42 / 90)


def test_loglik_batch_size(tiny):
    m, tok = tiny
    reqs = [
        ('def f1(x):', '\n    return x + 1'),
        ('', 'def'),
        ('x ' * 80, 'y'),
        ('a', ' b c d'),
        ('def f2', '(x)'),
    ] * 2
    runs = [loglikelihood(m, tok, reqs, batch_size=bs) for bs in (1, 3, 8)]
    for r in runs[1:]:
        assert [d['greedy'] for d in r] == [d['greedy'] for d in runs[0]]
        assert all(abs(a['logprob'] - b['logprob']) < 1e-5 for a, b in zip(r, runs[0]))
    g = [generate(m, tok, ['def f1', 'x', ''], max_new_tokens=8, batch_size=bs) for bs in (1, 2, 8)]
    assert g[0] == g[1] == g[2]


def test_doctest_tasks_verified():
    rep = {}
    tasks = doctest_tasks([REC], report=rep)
    assert sorted(t['entry_point'] for t in tasks) == [
        'hyp',
        'scale',
        'shout',
    ]  # scale needs the module constant
    assert (
        rep['candidates'] == 4 and rep['verified'] == 3 and list(rep['dropped_ids']) == ['doctest:r1:broken']
    )
    from llm_workbench.eval.sandbox import run_with_tests

    for t in tasks:
        assert run_with_tests(t['prompt'] + t['canonical'], t['tests']).passed
        assert not run_with_tests(t['prompt'] + '\n    return 0', t['tests']).passed


def test_choice_tasks(tiny):
    m, tok = tiny
    items = docstring_choice_tasks([REC], n_choices=3)
    assert len(items) == 4 and all(len(set(i['choices'])) == 3 for i in items)
    sc = score_choice(m, tok, items)
    assert [s['id'] for s in sc] == [i['id'] for i in items] and all(len(s['logprobs']) == 3 for s in sc)
