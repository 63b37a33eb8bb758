"Recipes: every YAML in configs/ validates, the quickstart file matches the built-in defaults, and errors point at file and line."

from pathlib import Path
import pytest, yaml
from llm_workbench.config import ConfigError, RunConfig, load_config, parse_config, dump_config
from conftest import ROOT, llmwb, make_workspace

RECIPES = sorted((ROOT / 'configs').glob('*.yaml'))


def test_there_are_recipes():
    names = {p.stem for p in RECIPES}
    assert {'quickstart', 'micro', 'own-data'} <= names


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    for s in cfg.data.sources:
        if s.path:
            assert Path(s.path).exists(), f'{path.name}: source {s.name} points at a missing {s.path}'


def test_quickstart_file_is_the_builtin_default():
    "configs/quickstart.yaml writes out RunConfig() so users can copy it; it must not drift from the code."
    assert load_config(ROOT / 'configs/quickstart.yaml') == RunConfig() == load_config(None)


def test_resolved_recipe_round_trips():
    cfg = load_config(ROOT / 'configs/micro.yaml')
    assert parse_config(dump_config(cfg)) == cfg


@pytest.mark.parametrize(
    'text,expected',
    [
        (
            'train:\n  max_steps: 10\n  learning_rte: 0.1\n',
            'bad.yaml:3: train.learning_rte: Extra inputs are not permitted',
        ),
        ('train:\n  max_steps: many\n', "bad.yaml:2: train.max_steps: Input should be a valid integer"),
        (
            'model:\n  hidden_size: 130\n  num_heads: 4\n',
            'bad.yaml:1: model: Value error, hidden_size 130 is not divisible by num_heads 4',
        ),
        (
            'data:\n  sources:\n    - name: a\n      kind: jsonl\n',
            "bad.yaml:3: data.sources.0: Value error, source 'a': kind 'jsonl' needs a path",
        ),
        ('data:\n  sources:\n    - {name: a, kind: csv, path: x}\n', 'bad.yaml:3: data.sources.0.kind'),
        ('name: [unclosed\n', 'bad.yaml:2: invalid YAML'),
        ('- just\n- a list\n', 'bad.yaml:1: a recipe must be a mapping'),
        ('train:\n  seq_len: 512\n', 'train.seq_len 512 exceeds model.max_position_embeddings 256'),
    ],
)
def test_recipe_errors_name_file_line_and_key(text, expected):
    with pytest.raises(ConfigError) as e:
        parse_config(text, 'bad.yaml')
    assert expected in str(e.value)


def test_cli_refuses_a_bad_recipe_before_running(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    (ws / 'bad.yaml').write_text('name: demo\ntrain:\n  batch_size: -1\n')
    r = llmwb(ws, 'run', 'bad.yaml')
    assert r.returncode == 2
    assert 'bad.yaml:3: train.batch_size: Input should be greater than 0' in r.stderr
    assert not (ws / 'runs').exists()
