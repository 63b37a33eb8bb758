"Hostile recipes fail cleanly: YAML tags and syntax errors name file:line, NaN/inf are rejected, messages stay short."

import math, time
from pathlib import Path
import pytest
from llm_workbench.config import ConfigError, load_config, parse_config


@pytest.mark.parametrize(
    'text, line',
    [
        ('name: x\nseed: !!python/object/apply:os.system ["echo hi"]\n', 2),
        ('name: x\ntrain:\n  lr: !custom 3\n', 3),
        ('name: x\ntrain:\n  lr: [1,\n', 4),
        ('name: x\n\ttrain: {}\n', 2),
    ],
)
def test_yaml_tags_and_syntax_errors_name_the_line(text, line):
    with pytest.raises(ConfigError) as e:
        parse_config(text, 'r.yaml')
    assert str(e.value).startswith(f'r.yaml:{line}:'), str(e.value)


@pytest.mark.parametrize('value', ['.nan', '.inf', '-.inf', '.NaN'])
def test_nan_and_inf_are_rejected_in_numeric_fields(value):
    with pytest.raises(ConfigError) as e:
        parse_config(f'release:\n  gates:\n    val_perplexity: {{max: {value}}}\n', 'r.yaml')
    assert 'r.yaml:3' in str(e.value)
    with pytest.raises(ConfigError):
        parse_config(f'train:\n  lr: {value}\n', 'r.yaml')


def test_alias_bombs_give_a_short_message():
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for i, (p, c) in enumerate(zip('abcdefgh', 'bcdefghi')):
        bomb += f'{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n'
    bomb += 'train:\n  lr: *i\n'
    t0 = time.time()
    with pytest.raises(ConfigError) as e:
        parse_config(bomb, 'r.yaml')
    assert len(str(e.value)) < 5000 and time.time() - t0 < 10, len(str(e.value))


def test_relative_paths_resolve_next_to_the_recipe(tmp_path):
    d = tmp_path / 'recipes'
    d.mkdir()
    (d / 'r.yaml').write_text(
        'data:\n  toxicity: {wordlist: words.txt}\n'
        'eval:\n  tasks: [{name: mine, kind: choice, path: tasks/mine.jsonl}]\n'
        '  safety: {redteam: rt.jsonl}\n  bias: {pairs: pairs.jsonl}\n'
    )
    cfg = load_config(d / 'r.yaml')
    assert cfg.data.toxicity.wordlist == str(d / 'words.txt')
    assert cfg.eval.tasks[0].path == str(d / 'tasks/mine.jsonl')
    assert cfg.eval.safety.redteam == str(d / 'rt.jsonl') and cfg.eval.bias.pairs == str(d / 'pairs.jsonl')


@pytest.mark.parametrize('key', ['data.num_proc', 'eval.sandbox.workers', 'train.processes'])
def test_worker_counts_are_bounded(key):
    section, *rest = key.split('.')
    body = f'{section}:\n' + ''.join(
        '  ' * (i + 1) + f'{k}:' + ('\n' if i < len(rest) - 1 else ' 100000\n') for i, k in enumerate(rest)
    )
    with pytest.raises(ConfigError) as e:
        parse_config(body, 'r.yaml')
    assert key in str(e.value)
