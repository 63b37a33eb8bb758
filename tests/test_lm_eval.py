"""lm-evaluation-harness as an evaluation backend (`llm_workbench.eval.lmeval`): our backend gives
lm-eval's own numbers, per document, on the real SmolLM2 model; the clean subset drops documents that
training text contains; the recipe knobs `eval.lm_eval.tasks / include_path / num_fewshot / limit` change
what is scored; a gate on an lm-eval metric loads."""

import json, os
import pytest
import torch

for _k in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'HF_EVALUATE_OFFLINE', 'TRANSFORMERS_OFFLINE'):
    os.environ.setdefault(_k, '1')

from llm_workbench.config import LMEvalConfig, GateRuleConfig, RunConfig
from llm_workbench.eval.lmeval import LOCAL_TASKS, doc_text, lm_eval_part, run_tasks
from llm_workbench.train.model import build_model, load_model
from llm_workbench.train.tokenizer import load_tokenizer, train_tokenizer

TASK = 'python_concepts'


@pytest.fixture(scope='module')
def real(smollm2):
    "SmolLM2-135M-Instruct (converted folder) loaded as the evaluate stage loads a model."
    folder, _, _ = smollm2
    torch.manual_seed(0)
    return load_model(folder).eval(), load_tokenizer(folder)


@pytest.fixture(scope='module')
def tiny():
    "A 1-layer random Llama and a byte-level BPE: for the knob tests, where only what is scored matters."
    from llm_workbench.config import ModelConfig

    tok = train_tokenizer(
        [f'def f{i}(x):\n    return x + {i}\n' for i in range(100)], vocab_size=300, min_frequency=1
    )
    cfg = ModelConfig(
        hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=256
    )
    return build_model(cfg, len(tok), tok.eos_token_id, seed=0).eval(), tok


def lm_eval_alone(model, tok, tasks, include_path, monkeypatch, **kw):
    "lm-eval used directly, as its documentation shows: HFLM around the model, simple_evaluate, TaskManager."
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(
        include_path
    )  # on its own, lm-eval reads relative data_files from the working directory
    seeds = dict(random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
    return simple_evaluate(
        HFLM(pretrained=model, tokenizer=tok, batch_size=8),
        tasks=tasks,
        task_manager=TaskManager(include_path=str(include_path)),
        log_samples=True,
        **seeds,
        **kw,
    )


def per_doc(samples):
    return [(s['doc_id'], s['arguments'], s['resps'], s['acc'], s['acc_norm']) for s in samples]


def test_backend_equals_lm_eval_on_real_model(real, monkeypatch):
    "eval.lm_eval.tasks: the shipped task through lm_eval_part gives lm-eval's own per-document results."
    model, tok = real
    part = lm_eval_part(dict(smollm2=model), tok, LMEvalConfig(tasks=[TASK]), batch_size=8)
    ours, _ = run_tasks(model, tok, [TASK], batch_size=8)
    theirs = lm_eval_alone(model, tok, [TASK], LOCAL_TASKS, monkeypatch)
    assert len(theirs['samples'][TASK]) == 20
    assert per_doc(ours['samples'][TASK]) == per_doc(
        theirs['samples'][TASK]
    )  # identical logprobs, per document
    s, r = part['summary'], theirs['results'][TASK]
    assert (s[f'lm_eval_{TASK}_acc'], s[f'lm_eval_{TASK}_acc_norm']) == (r['acc,none'], r['acc_norm,none'])
    items = part['items'][f'lm_eval_{TASK}']
    assert items == {str(x['doc_id']): x['acc'] for x in theirs['samples'][TASK]}
    assert (
        s[f'lm_eval_{TASK}_acc_clean'] == s[f'lm_eval_{TASK}_acc']
    )  # no training text: every document is clean
    assert part['seen'] == {TASK: []} and part['directions'] == {f'lm_eval_{TASK}': 'higher'}
    (row,) = [x for x in part['rows'] if x['metric'] == 'acc']
    assert (row['model'], row['value'], row['stderr']) == ('smollm2', r['acc,none'], r['acc_stderr,none'])
    print(json.dumps(dict(smollm2_python_concepts=s)))


def test_clean_subset_excludes_seen_document(tiny):
    "Contamination: a document whose 13-grams occur in a training text is left out of the _clean scores."
    model, tok = tiny
    res, tasks = run_tasks(model, tok, [TASK], limit=10)
    doc = res['samples'][TASK][5]['doc']
    train = [
        'unrelated text ' * 20,
        'Some notes.\n' + doc_text(tasks[TASK], doc) + '\nMore notes follow here.',
    ]
    part = lm_eval_part(dict(a=model), tok, LMEvalConfig(tasks=[TASK], limit=10), 8, train_texts=train)
    assert part['seen'] == {TASK: ['5']}
    items = part['items'][f'lm_eval_{TASK}']
    clean = [v for k, v in items.items() if k != '5']
    assert len(items) == 10 and part['summary'][f'lm_eval_{TASK}_acc_clean'] == sum(clean) / 9
    question_only = [doc_text(tasks[TASK], doc).rsplit(' ', 1)[0] + ' something else entirely']
    part = lm_eval_part(
        dict(a=model), tok, LMEvalConfig(tasks=[TASK], limit=10), 8, train_texts=question_only
    )
    assert part['seen'] == {TASK: []}  # the question without its answer is not the document


def test_limit_and_num_fewshot_change_what_is_scored(tiny, monkeypatch):
    "eval.lm_eval.limit / num_fewshot: fewer documents, few-shot examples in each prompt, as lm-eval does."
    model, tok = tiny
    base, _ = run_tasks(model, tok, [TASK])
    few, _ = run_tasks(model, tok, [TASK], num_fewshot=2, limit=4)
    assert (len(base['samples'][TASK]), len(few['samples'][TASK])) == (20, 4)
    assert (base['n-shot'][TASK], few['n-shot'][TASK]) == (0, 2)
    prompts = [s['arguments'][0][0] for s in few['samples'][TASK]]
    assert all(p.count('Question:') == 3 for p in prompts)
    assert prompts[0].endswith(
        base['samples'][TASK][0]['arguments'][0][0]
    )  # the same question after 2 examples
    assert few['samples'][TASK][0]['resps'] != base['samples'][TASK][0]['resps']
    theirs = lm_eval_alone(model, tok, [TASK], LOCAL_TASKS, monkeypatch, num_fewshot=2, limit=4)
    assert per_doc(few['samples'][TASK]) == per_doc(
        theirs['samples'][TASK]
    )  # same few-shot draw as lm-eval's
    part = lm_eval_part(dict(a=model), tok, LMEvalConfig(tasks=[TASK], num_fewshot=2, limit=4), batch_size=2)
    assert len(part['items'][f'lm_eval_{TASK}']) == 4
    assert part['summary'][f'lm_eval_{TASK}_acc'] == few['results'][TASK]['acc,none']


def test_include_path_task_and_gate(tiny, tmp_path, monkeypatch):
    "eval.lm_eval.include_path: a recipe's own task folder (relative data_files); a gate on its metric loads."
    model, tok = tiny
    folder = tmp_path / 'tasks'
    folder.mkdir()
    rows = [dict(q=f'Is {i} even?', a='yes' if i % 2 == 0 else 'no') for i in range(6)]
    (folder / 'parity.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (folder / 'mytask.yaml').write_text(
        'task: mytask\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: parity.jsonl\n'
        'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "{{q}}"\n'
        'doc_to_choice: ["yes", "no"]\ndoc_to_target: "{{a}}"\nmetric_list:\n  - metric: acc\n'
    )
    monkeypatch.chdir(tmp_path)  # not the task folder: data_files are still found next to the YAML
    cfg = RunConfig.model_validate(
        dict(
            eval=dict(lm_eval=dict(tasks=['mytask', TASK], include_path=str(folder), limit=3)),
            release=dict(gates=dict(lm_eval_mytask_acc=dict(min=0.5, severity='warn'))),
        )
    )
    assert isinstance(cfg.release.gates['lm_eval_mytask_acc'], GateRuleConfig)
    part = lm_eval_part(dict(a=model), tok, cfg.eval.lm_eval, cfg.eval.batch_size)
    assert {r['task'] for r in part['rows']} == {'mytask', TASK}
    assert set(part['items']) == {'lm_eval_mytask', f'lm_eval_{TASK}'}
    assert all(len(v) == 3 for v in part['items'].values())
    assert 0 <= part['summary']['lm_eval_mytask_acc'] <= 1
    with pytest.raises(ValueError, match='unknown lm-eval task'):
        run_tasks(model, tok, ['no_such_task_xyz'])
