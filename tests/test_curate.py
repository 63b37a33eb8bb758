"The curate stage on user sources with every kind of bad input, planted PII, a planted benchmark leak and near duplicates: nothing crashes, nothing vanishes."

import gzip, json
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
import pytest
from conftest import llmwb, make_workspace, run_dirs

FUNC = (
    'def moving_average(values, window):\n    """Average of each run of `window` consecutive values, as a list.\n\n'
    '    A window longer than the data gives an empty list; a window of one returns the values unchanged.\n    """\n'
    '    if window <= 0:\n        raise ValueError("window must be positive")\n'
    '    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]\n'
)
EVAL_ITEM = 'Write a function that returns the longest strictly increasing run of consecutive integers found anywhere in a list of numbers'


@pytest.fixture(scope='module')
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp('curate')
    src = root / 'src'
    src.mkdir()
    lines = [
        json.dumps({'text': FUNC}).encode(),  # 1 kept
        b'{"text": "caf\xe9 au lait, served hot every single morning of the week"}',  # 2 invalid utf-8
        b'{"text": "a broken line',  # 3 bad json
        json.dumps({'body': 'the text is under the wrong key'}).encode(),  # 4 missing field
        json.dumps({'text': 42}).encode(),  # 5 wrong type
        json.dumps({'text': '   \n\n  '}).encode(),  # 6 empty
        json.dumps({'text': 'x = "' + 'a' * 5000 + '"'}).encode(),  # 7 huge line (over max_record_bytes)
        json.dumps(
            {
                'text': 'Contact the on-call engineer at oncall.person@bigcorp-mail.com or +44 20 7946 0958 about '
                'the outage; the key AKIAQ3EGRT5ZKVD7NW2X was rotated.\n'
                + FUNC.replace('moving_average', 'rolling_mean')
            }
        ).encode(),  # 8 PII
        json.dumps(
            {'text': 'Homework help: ' + EVAL_ITEM + '. My attempt is below, please check it.'}
        ).encode(),  # 9 contaminated
        json.dumps({'text': FUNC}).encode(),  # 10 exact duplicate of 1
        json.dumps({'text': FUNC.replace('as a list', 'as a Python list')}).encode(),
    ]  # 11 near duplicate of 1
    (src / 'docs.jsonl').write_bytes(b'\n'.join(lines) + b'\n')
    (src / 'notes').mkdir()
    (src / 'notes/binary.bin').write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00')
    (src / 'notes/readme.md').write_text(
        '# Notes\n\nThese notes describe how the reporting pipeline turns raw events into daily summaries for the team. '
        'Each morning the collector reads the logs of the previous day, groups the events by service and by hour, '
        'and writes one row for each group with the count of errors and the slowest request that was seen. '
        'The summaries are kept for a year and are the first place to look when an outage is reported.\n'
    )  # prose: 50+ words
    chats = [
        {
            'conversation_id': 'c1',
            'messages': [
                {'role': 'user', 'content': 'How do I reverse a list in Python?'},
                {
                    'role': 'assistant',
                    'content': 'Use slicing: `items[::-1]`, or `items.reverse()` to do it in place.',
                },
            ],
        },
        {
            'conversation_id': 'c2',
            'messages': [{'role': 'user', 'content': 'Is anyone there? Hello? Please answer me.'}],
        },
    ]
    with gzip.open(src / 'chat.jsonl.gz', 'wt') as f:
        f.write('\n'.join(json.dumps(c) for c in chats) + '\n')
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    'prompt': 'Write a function that adds two numbers together and returns the result.',
                    'chosen': 'def add(a, b):\n    return a + b',
                    'rejected': 'def add(a, b):\n    return eval(f"{a}+{b}")',
                },
                {
                    'prompt': 'Say something, anything at all, about the weather today.',
                    'chosen': 'same answer',
                    'rejected': 'same answer',
                },
            ]
        ),
        src / 'prefs.parquet',
    )
    (root / 'eval.jsonl').write_text(
        json.dumps({'id': 'inc-run', 'question': EVAL_ITEM, 'answer': 'def f(xs): ...'}) + '\n'
    )
    (root / 'recipe.yaml').write_text(f"""name: curate-test
seed: 3
data:
  sources:
    - {{name: docs, kind: jsonl, path: src/docs.jsonl, license: MIT}}
    - {{name: notes, kind: text, path: src/notes, license: CC0-1.0}}
    - {{name: chat, kind: jsonl, format: chat, path: src/chat.jsonl.gz, license: Apache-2.0}}
    - {{name: prefs, kind: parquet, format: preference, path: src/prefs.parquet, license: MIT}}
    - {{name: gpl, kind: jsonl, path: src/docs.jsonl, license: GPL-3.0-only, max_docs: 2}}
  min_chars: 40
  max_record_bytes: 4000
  split: {{val: 0.0, test: 0.0, group_by: field}}
  eval_sets:
    - {{name: homework, path: eval.jsonl, fields: [question, answer]}}
""")
    ws = make_workspace(root / 'ws', tracking='none')
    r = llmwb(ws, 'run', root / 'recipe.yaml', '--stages', 'curate', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = run_dirs(ws)
    m = json.loads((rd / 'data/manifest.json').read_text())
    q = [json.loads(l) for l in (rd / 'data/quarantine.jsonl').read_text().splitlines()]
    return rd, m, q


def test_every_bad_input_is_quarantined_with_location(curated):
    _, m, q = curated
    got = {(x['source'], x['location']): x['reason'] for x in q}
    assert got[('docs', 'docs.jsonl:2')] == 'invalid_utf8'
    assert got[('docs', 'docs.jsonl:3')] == 'bad_json'
    assert got[('docs', 'docs.jsonl:4')] == 'missing_field'
    assert got[('docs', 'docs.jsonl:5')] == 'wrong_type'
    assert got[('docs', 'docs.jsonl:6')] == 'empty'
    assert got[('docs', 'docs.jsonl:7')] == 'too_large'
    assert got[('notes', 'binary.bin')] == 'binary'
    assert got[('chat', 'chat.jsonl.gz:2')] == 'bad_messages'
    assert got[('prefs', 'prefs.parquet#1')] == 'bad_preference'
    assert got[('gpl', 'docs.jsonl:1')] == 'license_not_allowed'


def test_dedup_contamination_and_pii(curated):
    rd, m, q = curated
    got = {(x['source'], x['location']): x for x in q}
    assert (
        got[('docs', 'docs.jsonl:10')]['reason'] == 'exact_duplicate'
        and 'docs:docs.jsonl:1' in got[('docs', 'docs.jsonl:10')]['detail']
    )
    assert got[('docs', 'docs.jsonl:11')]['reason'] == 'near_duplicate'
    assert (
        got[('docs', 'docs.jsonl:9')]['reason'] == 'contaminated'
        and 'homework:inc-run' in got[('docs', 'docs.jsonl:9')]['detail']
    )
    per_item = json.loads((rd / 'data/contamination.json').read_text())
    assert (
        per_item['homework']['inc-run']['docs'] == ['docs:docs.jsonl:9']
        and per_item['homework']['inc-run']['seen'] is False
    )
    assert m['contamination']['eval_sets']['homework']['items_hit'] == 1
    train = pq.read_table(rd / 'data/train.parquet').to_pylist()
    pii_doc = next(r for r in train if r['id'] == 'docs:docs.jsonl:8')
    for raw in ('oncall.person@bigcorp-mail.com', '7946 0958', 'AKIAQ3EGRT5ZKVD7NW2X'):
        assert raw not in pii_doc['text']
    for ph in ('<EMAIL>', '<PHONE>', '<SECRET>'):
        assert ph in pii_doc['text']
    assert m['pii']['kinds'] == {'email': 1, 'phone': 1, 'secret': 1}


def test_accounting_balances_and_formats_survive(curated):
    rd, m, q = curated
    c = m['counts']
    assert c['records_in'] == c['kept'] + c['removed'] == c['kept'] + len(q)
    for s in m['sources']:
        assert s['records_in'] == s['kept'] + sum(s['removed'].values()), s
    assert {s['name']: s['kept'] for s in m['sources']} == dict(docs=2, notes=1, chat=1, prefs=1, gpl=0)
    train = {r['id']: r for r in pq.read_table(rd / 'data/train.parquet').to_pylist()}
    chat = train['chat:chat.jsonl.gz:1']
    assert (
        chat['format'] == 'chat'
        and json.loads(chat['messages'])[1]['role'] == 'assistant'
        and chat['group'] == 'c1'
    )
    pref = train['prefs:prefs.parquet#0']
    assert pref['format'] == 'preference' and 'eval(' in pref['rejected']
    assert {s['name']: s['sha256'] is not None for s in m['sources']} == dict(
        docs=True, notes=True, chat=True, prefs=True, gpl=True
    )
    card = (rd / 'data/DATA_CARD.md').read_text()
    for part in ('## PII', '## Benchmark contamination', '## Near duplicates', '| homework | 1 |'):
        assert part in card


# --- recipe knobs that change what curate does: the leakage check's band rows, the toxicity classifier ---

from llm_workbench.config import RunConfig, DataConfig, SourceConfig, SplitConfig
from llm_workbench.data.curate import curate
from llm_workbench.data.neardup import shingle_hashes
from llm_workbench.data.splits import assign_split

WORDS = (
    'river stone cloud maple lantern harbor violet engine meadow copper signal garden thunder pocket '
    'canvas willow marble rocket falcon velvet island mirror saddle orchard'
).split()


def _two_files_in(split_a, split_b, cfg, seed):
    "Two file names whose groups land in `split_a` and `split_b`."
    names = [f'doc{i}.txt' for i in range(200)]
    a = next(n for n in names if assign_split(n, cfg, seed) == split_a)
    b = next(n for n in names if assign_split(n, cfg, seed) == split_b)
    return a, b


def test_cross_split_rows_changes_the_leakage_check(tmp_path):
    "A train/val pair at Jaccard ~0.7: found with 4-row bands (the default), missed with 28-row bands."
    words = [WORDS[(i * 7 + i // 5) % len(WORDS)] + str(i % 11) for i in range(120)]
    variant = list(words)
    for i in (20, 50, 80):
        variant[i] = 'changed'
    a, b = ' '.join(words), ' '.join(variant)
    sa, sb = set(shingle_hashes(a, 5).tolist()), set(shingle_hashes(b, 5).tolist())
    assert 0.65 < len(sa & sb) / len(sa | sb) < 0.8  # a leak, not a near duplicate
    split = SplitConfig(val=0.4, test=0.0, group_by='file')
    train_name, val_name = _two_files_in('train', 'val', split, seed=1)
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / train_name).write_text(a)
    (tmp_path / 'docs' / val_name).write_text(b)

    def leaks(rows):
        data = DataConfig(
            sources=[
                SourceConfig(
                    name='n', kind='text', path=str(tmp_path / 'docs'), license='MIT', quality='code'
                )
            ],  # word soup, not prose: the code rules keep it
            split=split,
            eval_sets=[],
            canaries=0,
            pairs=dict(enabled=False),
            dedup=dict(cross_split_rows=rows),
        )
        m = curate(RunConfig(seed=1, data=data), tmp_path / f'out{rows}')
        return m['near_dedup']['leakage_removed'], m['counts']['removed_by_reason']

    assert leaks(4) == (1, {'split_leakage': 1})
    assert leaks(28) == (0, {})


def _tiny_classifier(folder):
    "Train and save a tiny toxic/ok BERT text classifier on a few sentences (seconds on a CPU)."
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    texts = [
        'you are a useless lazy fool and everyone hates you',
        'thanks for the careful review of the parser',
        'shut up you worthless clown nobody wants you here',
        'the tests pass and the docs build cleanly',
    ] * 4
    labels = [1, 0, 1, 0] * 4
    tok = Tokenizer(models.WordPiece(unk_token='[UNK]'))
    tok.normalizer, tok.pre_tokenizer = (
        normalizers.BertNormalizer(lowercase=True),
        pre_tokenizers.BertPreTokenizer(),
    )
    special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', special_tokens=[(t, tok.token_to_id(t)) for t in ('[CLS]', '[SEP]')]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token='[UNK]',
        pad_token='[PAD]',
        cls_token='[CLS]',
        sep_token='[SEP]',
        mask_token='[MASK]',
        model_max_length=64,
    )
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        id2label={0: 'ok', 1: 'toxic'},
        label2id={'ok': 0, 'toxic': 1},
    )
    model = BertForSequenceClassification(cfg)
    enc = fast(texts, padding=True, return_tensors='pt')
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        model(**enc, labels=torch.tensor(labels)).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(folder)
    fast.save_pretrained(folder)


def test_toxicity_classifier_is_used_when_configured(tmp_path):
    "A configured classifier removes what the word list lets through, says so in the quarantine and the data card."
    _tiny_classifier(tmp_path / 'tox-bert')
    rude = 'you are a useless lazy fool and everyone hates you, shut up you worthless clown nobody wants you here'
    polite = 'thanks for the careful review of the parser; the tests pass and the docs build cleanly now'
    (tmp_path / 'docs.jsonl').write_text(
        json.dumps({'text': rude}) + '\n' + json.dumps({'text': polite}) + '\n'
    )

    def run(classifier, out, num_proc=1):
        data = DataConfig(
            sources=[SourceConfig(name='d', path=str(tmp_path / 'docs.jsonl'), license='MIT')],
            min_chars=20,
            eval_sets=[],
            canaries=0,
            num_proc=num_proc,
            toxicity=dict(classifier=classifier, classifier_threshold=0.5),
        )
        m = curate(RunConfig(data=data), tmp_path / out)
        q = [json.loads(l) for l in (tmp_path / out / 'quarantine.jsonl').read_text().splitlines()]
        return m, q, (tmp_path / out / 'DATA_CARD.md').read_text()

    m0, q0, card0 = run(None, 'plain')  # the word list alone keeps both
    assert m0['counts']['kept'] == 2 and q0 == []
    assert 'No classifier was configured' in card0 and 'classifier_scored' not in m0['filters']['toxicity']

    m, q, card = run(str(tmp_path / 'tox-bert'), 'model')
    assert m['counts']['kept'] == 1 and m['counts']['removed_by_reason'] == {'toxic_classifier': 1}
    assert m['counts']['removed_by_stage']['toxicity'] == 1
    (removed,) = q
    assert removed['id'] == 'd:docs.jsonl:1' and removed['reason'] == 'toxic_classifier'
    assert removed['detail'].startswith('toxic probability 0.') and removed['detail'].endswith(
        '> 0.5 (model tox-bert)'
    )
    tox = m['filters']['toxicity']
    assert tox['classifier'] == str(tmp_path / 'tox-bert') and tox['classifier_scored'] == 2
    assert tox['classifier_max_score'] > 0.5
    assert (
        'The classifier `tox-bert` scored the 2 documents' in card
        and '(1, reason `toxic_classifier`)' in card
    )
    m2, q2, _ = run(
        str(tmp_path / 'tox-bert'), 'workers', num_proc=2
    )  # scored in the parent: workers change nothing
    assert m2['dataset_sha256'] == m['dataset_sha256'] and q2 == q
