"The curate stage on user sources with every kind of bad input, planted PII, a planted benchmark leak and near duplicates: nothing crashes, nothing vanishes."
import gzip, json
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
import pytest
from conftest import llmwb, make_workspace, run_dirs

FUNC = ('def moving_average(values, window):\n    """Average of each run of `window` consecutive values, as a list.\n\n'
        '    A window longer than the data gives an empty list; a window of one returns the values unchanged.\n    """\n'
        '    if window <= 0:\n        raise ValueError("window must be positive")\n'
        '    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]\n')
EVAL_ITEM = 'Write a function that returns the longest strictly increasing run of consecutive integers found anywhere in a list of numbers'


@pytest.fixture(scope='module')
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp('curate')
    src = root/'src'; src.mkdir()
    lines = [json.dumps({'text': FUNC}).encode(),                                    # 1 kept
             b'{"text": "caf\xe9 au lait, served hot every single morning of the week"}',  # 2 invalid utf-8
             b'{"text": "a broken line',                                              # 3 bad json
             json.dumps({'body': 'the text is under the wrong key'}).encode(),        # 4 missing field
             json.dumps({'text': 42}).encode(),                                       # 5 wrong type
             json.dumps({'text': '   \n\n  '}).encode(),                              # 6 empty
             json.dumps({'text': 'x = "' + 'a' * 5000 + '"'}).encode(),              # 7 huge line (over max_record_bytes)
             json.dumps({'text': 'Contact the on-call engineer at oncall.person@bigcorp-mail.com or +44 20 7946 0958 about '
                                 'the outage; the key AKIAQ3EGRT5ZKVD7NW2X was rotated.\n' + FUNC.replace('moving_average', 'rolling_mean')}).encode(),  # 8 PII
             json.dumps({'text': 'Homework help: ' + EVAL_ITEM + '. My attempt is below, please check it.'}).encode(),  # 9 contaminated
             json.dumps({'text': FUNC}).encode(),                                    # 10 exact duplicate of 1
             json.dumps({'text': FUNC.replace('as a list', 'as a Python list')}).encode()]  # 11 near duplicate of 1
    (src/'docs.jsonl').write_bytes(b'\n'.join(lines) + b'\n')
    (src/'notes').mkdir()
    (src/'notes/binary.bin').write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00')
    (src/'notes/readme.md').write_text('# Notes\n\nThese notes describe how the reporting pipeline turns raw events into daily summaries for the team.\n')
    chats = [{'conversation_id': 'c1', 'messages': [{'role': 'user', 'content': 'How do I reverse a list in Python?'},
                                                     {'role': 'assistant', 'content': 'Use slicing: `items[::-1]`, or `items.reverse()` to do it in place.'}]},
             {'conversation_id': 'c2', 'messages': [{'role': 'user', 'content': 'Is anyone there? Hello? Please answer me.'}]}]
    with gzip.open(src/'chat.jsonl.gz', 'wt') as f: f.write('\n'.join(json.dumps(c) for c in chats) + '\n')
    pq.write_table(pa.Table.from_pylist([
        {'prompt': 'Write a function that adds two numbers together and returns the result.', 'chosen': 'def add(a, b):\n    return a + b', 'rejected': 'def add(a, b):\n    return eval(f"{a}+{b}")'},
        {'prompt': 'Say something, anything at all, about the weather today.', 'chosen': 'same answer', 'rejected': 'same answer'}]), src/'prefs.parquet')
    (root/'eval.jsonl').write_text(json.dumps({'id': 'inc-run', 'question': EVAL_ITEM, 'answer': 'def f(xs): ...'}) + '\n')
    (root/'recipe.yaml').write_text(f"""name: curate-test
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
    ws = make_workspace(root/'ws', tracking='none')
    r = llmwb(ws, 'run', root/'recipe.yaml', '--stages', 'curate', '--no-progress')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = run_dirs(ws)
    m = json.loads((rd/'data/manifest.json').read_text())
    q = [json.loads(l) for l in (rd/'data/quarantine.jsonl').read_text().splitlines()]
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
    assert got[('docs', 'docs.jsonl:10')]['reason'] == 'exact_duplicate' and 'docs:docs.jsonl:1' in got[('docs', 'docs.jsonl:10')]['detail']
    assert got[('docs', 'docs.jsonl:11')]['reason'] == 'near_duplicate'
    assert got[('docs', 'docs.jsonl:9')]['reason'] == 'contaminated' and 'homework:inc-run' in got[('docs', 'docs.jsonl:9')]['detail']
    per_item = json.loads((rd/'data/contamination.json').read_text())
    assert per_item['homework']['inc-run']['docs'] == ['docs:docs.jsonl:9'] and per_item['homework']['inc-run']['seen'] is False
    assert m['contamination']['eval_sets']['homework']['items_hit'] == 1
    train = pq.read_table(rd/'data/train.parquet').to_pylist()
    pii_doc = next(r for r in train if r['id'] == 'docs:docs.jsonl:8')
    for raw in ('oncall.person@bigcorp-mail.com', '7946 0958', 'AKIAQ3EGRT5ZKVD7NW2X'): assert raw not in pii_doc['text']
    for ph in ('<EMAIL>', '<PHONE>', '<SECRET>'): assert ph in pii_doc['text']
    assert m['pii']['kinds'] == {'email': 1, 'phone': 1, 'secret': 1}


def test_accounting_balances_and_formats_survive(curated):
    rd, m, q = curated
    c = m['counts']
    assert c['records_in'] == c['kept'] + c['removed'] == c['kept'] + len(q)
    for s in m['sources']: assert s['records_in'] == s['kept'] + sum(s['removed'].values()), s
    assert {s['name']: s['kept'] for s in m['sources']} == dict(docs=2, notes=1, chat=1, prefs=1, gpl=0)
    train = {r['id']: r for r in pq.read_table(rd/'data/train.parquet').to_pylist()}
    chat = train['chat:chat.jsonl.gz:1']
    assert chat['format'] == 'chat' and json.loads(chat['messages'])[1]['role'] == 'assistant' and chat['group'] == 'c1'
    pref = train['prefs:prefs.parquet#0']
    assert pref['format'] == 'preference' and 'eval(' in pref['rejected']
    assert {s['name']: s['sha256'] is not None for s in m['sources']} == dict(docs=True, notes=True, chat=True, prefs=True, gpl=True)
    card = (rd/'data/DATA_CARD.md').read_text()
    for part in ('## PII', '## Benchmark contamination', '## Near duplicates', '| homework | 1 |'): assert part in card
