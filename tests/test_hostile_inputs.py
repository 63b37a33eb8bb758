"""Hostile inputs never crash curation and never hide: each becomes a quarantine record with its location, or an error
naming the file; accounting balances; memory stays bounded; a source that yields nothing is said out loud."""

import gzip, io, json, os, random, resource, subprocess
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
import pytest
from conftest import LLMWB, llmwb, make_workspace, read_run, run_dirs

GOOD = (
    'def helper_{i}(values):\n    """Sum the values of the list {i} times."""\n    return sum(values) * {i}\n'
)


def _good(i: int) -> str:
    return json.dumps({'text': GOOD.format(i=i)})


def _recipe(ws: Path, sources: str, extra: str = '') -> Path:
    r = ws / 'hostile.yaml'
    r.write_text(f'name: hostile\ndata:\n  canaries: 0\n  sources:\n{sources}{extra}')
    return r


def _vm_hwm_mb(pid: int) -> float:
    "Peak resident memory of process `pid` since its last exec (VmHWM), in MB; 0 when it is gone."
    try:
        line = next(l for l in Path(f'/proc/{pid}/status').read_text().splitlines() if l.startswith('VmHWM:'))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        return 0.0


def _descendants(pid: int) -> list:
    "Every live descendant of `pid` (from /proc)."
    children = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _llmwb_peak_mb(ws: Path, *args) -> tuple:
    """Run `llmwb` in `ws` and sample the peak resident memory of it and every process it starts (VmHWM is per exec,
    so the test runner's own memory, which a forked child's rusage inherits, does not count)."""
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
    p = subprocess.Popen(
        [str(LLMWB), *map(str, args)],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0.0
    while p.poll() is None:
        peak = max([peak, _vm_hwm_mb(p.pid), *(_vm_hwm_mb(c) for c in _descendants(p.pid))])
        time.sleep(0.2)
    out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), peak


def _curate(ws: Path, recipe: Path):
    r = llmwb(ws, 'run', recipe, '--stages', 'curate', '--no-progress')
    rd = run_dirs(ws)[-1] if run_dirs(ws) else None
    q = (
        [json.loads(l) for l in (rd / 'data/quarantine.jsonl').read_text().splitlines()]
        if rd and (rd / 'data/quarantine.jsonl').exists()
        else []
    )
    m = (
        json.loads((rd / 'data/manifest.json').read_text())
        if rd and (rd / 'data/manifest.json').exists()
        else None
    )
    return r, rd, m, q


def _balanced(m: dict, q: list):
    c = m['counts']
    assert c['records_in'] == c['kept'] + c['removed'] == c['kept'] + len(q), c
    for s in m['sources']:
        assert s['records_in'] == s['kept'] + sum(s['removed'].values()), s


def test_hostile_jsonl_lines_are_quarantined(tmp_path):
    "Huge numbers, deep nesting and a truncated gzip: quarantined with file:line, never a crash."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    d = ws / 'in'
    d.mkdir()
    lines = [
        _good(1),
        '{"text": ' + '9' * 5000 + '}',
        '[' * 100_000 + ']' * 100_000,
        _good(2),
        '{"text": {"a": ' * 3000 + '1' + '}' * 3000 + '}',
    ]
    (d / 'odd.jsonl').write_text('\n'.join(lines) + '\n')
    raw = gzip.compress(('\n'.join(_good(i) for i in range(10, 40)) + '\n').encode())
    (d / 'cut.jsonl.gz').write_bytes(raw[: len(raw) // 2])  # truncated mid-stream
    recipe = _recipe(
        ws,
        '    - {name: odd, kind: jsonl, path: in/odd.jsonl, license: MIT}\n'
        '    - {name: cut, kind: jsonl, path: in/cut.jsonl.gz, license: MIT}\n',
    )
    r, rd, m, q = _curate(ws, recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = {(x['source'], x['location']): x['reason'] for x in q}
    assert (
        ('odd', 'odd.jsonl:2') in got and ('odd', 'odd.jsonl:3') in got and ('odd', 'odd.jsonl:5') in got
    ), got
    assert any(s == 'cut' and 'truncat' in reason for (s, _), reason in got.items()), got
    _balanced(m, q)


DOCTESTED = 'def twice(x):\n    """Double x.\n\n    >>> twice(2)\n    4\n    """\n    y = x\n    return 2 * y\n\n\n'
DEEP = {  # Python sources that parse badly: each crashed ast.parse callers with RecursionError or MemoryError
    'chain': 'TABLE = ' + '1 + ' * 3000 + '1\n',  # RecursionError inside ast.parse
    'minus': 'SIGN = ' + '-' * 200_000 + '1\n',  # MemoryError (parser stack overflow)
    'parses-deep': 'TABLE = ' + '1 + ' * 400 + '1\n',  # parses, but too deep for ast.unparse and visitors
}


def test_deeply_nested_code_is_unparsable_everywhere_never_a_crash(tmp_path):
    "Deep expression chains in a source, a task or a model's answer: curate, tasks, scans and rewards go on."
    from llm_workbench.align.grpo import SandboxReward
    from llm_workbench.config import SandboxConfig
    from llm_workbench.data.pairs import extract_functions
    from llm_workbench.eval.robustness import perturb
    from llm_workbench.eval.safety import scan_codes
    from llm_workbench.eval.tasks import docstring_choice_tasks, doctest_tasks

    ws = make_workspace(tmp_path / 'ws', tracking='none')
    d = ws / 'in'
    d.mkdir()
    texts = [DOCTESTED + deep for deep in DEEP.values()]
    (d / 'deep.jsonl').write_text('\n'.join([_good(1), *(json.dumps({'text': t}) for t in texts), _good(2)]) + '\n')
    recipe = _recipe(ws, '    - {name: deep, kind: jsonl, path: in/deep.jsonl, license: MIT}\n')
    r, rd, m, q = _curate(ws, recipe)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _balanced(m, q)
    assert all(x['reason'] for x in q)
    for t in texts:  # the file does not parse as a whole: no pairs, no tasks from it, and no exception
        assert extract_functions(t) == []
    records = [dict(id=f'r{i}', text=t, location='', group=str(i)) for i, t in enumerate(texts)]
    rep = {}
    assert doctest_tasks(records, timeout=10, report=rep) == [] and rep['candidates'] == 0
    assert docstring_choice_tasks(records) == []
    scans = scan_codes([deep for deep in DEEP.values()] + ['x = 1\n'])
    assert [s['parsable'] for s in scans] == [False, False, False, True], scans
    assert all('nested' in s['error'] for s in scans[:3]), scans
    for t in texts:
        perturb(t, 'rename', seed=0)  # no exception: an unparsable source is left as it is or lightly edited
    (task,) = doctest_tasks([dict(id='ok', text=DOCTESTED, location='')], timeout=10)
    answers = ['\n    return ' + '1 + ' * 3000 + 'x\n', '\n    return 2 * x\n']  # a policy's degenerate sample
    cols = dict(tests=[task['tests']] * 2, task_prompt=[task['prompt']] * 2, entry_point=['twice'] * 2)
    rewards = SandboxReward(SandboxConfig(timeout_s=10))([task['prompt']] * 2, answers, **cols)
    assert rewards == [-0.1, 1.0], rewards  # the deep one is unparsable (its penalty), the right one passes


def test_a_huge_line_is_read_with_a_bound(tmp_path):
    "A 400 MB line inside a small gzip is skipped in chunks: quarantined as too large, memory stays bounded."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode='wb', compresslevel=9) as g:
        g.write((_good(1) + '\n').encode())
        g.write(b'{"text": "')
        chunk = b'a' * (1 << 20)
        for _ in range(400):
            g.write(chunk)
        g.write(b'"}\n')
        g.write((_good(2) + '\n').encode())
    (ws / 'big.jsonl.gz').write_bytes(buf.getvalue())
    assert (ws / 'big.jsonl.gz').stat().st_size < 2_000_000
    recipe = _recipe(ws, '    - {name: big, kind: jsonl, path: big.jsonl.gz, license: MIT}\n')
    r, peak_mb = _llmwb_peak_mb(ws, 'run', recipe, '--stages', 'curate', '--no-progress')
    rd = run_dirs(ws)[-1]
    q = [json.loads(line) for line in (rd / 'data/quarantine.jsonl').read_text().splitlines()]
    m = json.loads((rd / 'data/manifest.json').read_text())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {(x['location'], x['reason']) for x in q} >= {('big.jsonl.gz:2', 'too_large')}, q
    assert m['counts']['kept'] == 2
    assert peak_mb < 1500, f'peak RSS of the curate processes {peak_mb:.0f} MB'  # the line alone is 400 MB
    _balanced(m, q)


def test_links_loops_and_special_files_in_a_text_folder(tmp_path):
    "A link out of the folder is never read as data, a loop is counted, a FIFO is never opened."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    notes = ws / 'notes'
    notes.mkdir()
    (notes / 'real.txt').write_text('A real note about sorting lists in Python, long enough to keep. ' * 3)
    secret = tmp_path / 'outside-secret.txt'
    secret.write_text('TOP SECRET host file that must never become training data. ' * 3)
    os.symlink(secret, notes / 'escape.txt')
    os.symlink(notes / 'loop-b.txt', notes / 'loop-a.txt')
    os.symlink(notes / 'loop-a.txt', notes / 'loop-b.txt')
    os.mkfifo(notes / 'pipe.txt')
    os.symlink(notes, notes / 'self-dir')
    (
        notes / ('caf\udce9.txt').encode('utf-8', 'surrogateescape').decode('utf-8', 'surrogateescape')
    ).write_bytes(b'A note whose file name is not valid UTF-8, it must not crash the manifest. ' * 2)
    recipe = _recipe(ws, '    - {name: notes, kind: text, path: notes, license: CC0-1.0}\n')
    r, rd, m, q = _curate(ws, recipe)  # a FIFO open would hang here
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    train = (
        pq.read_table(rd / 'data/train.parquet').to_pylist()
        + pq.read_table(rd / 'data/val.parquet').to_pylist()
        + pq.read_table(rd / 'data/test.parquet').to_pylist()
    )
    assert not any('TOP SECRET' in row['text'] for row in train)
    reasons = {x['location']: x['reason'] for x in q}
    assert {'escape.txt', 'loop-a.txt', 'loop-b.txt', 'pipe.txt'} <= set(reasons), reasons
    _balanced(m, q)


def test_a_corrupt_parquet_file_is_named(tmp_path):
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    pq.write_table(pa.table({'text': [GOOD.format(i=i) for i in range(5)]}), ws / 'ok.parquet')
    data = (ws / 'ok.parquet').read_bytes()
    (ws / 'bad.parquet').write_bytes(data[:40] + b'\x00' * 64 + data[104:])
    recipe = _recipe(ws, '    - {name: pq, kind: parquet, path: bad.parquet, license: MIT}\n')
    r, rd, m, q = _curate(ws, recipe)
    text = r.stdout + r.stderr + (json.dumps(q) if q else '')
    assert 'bad.parquet' in text and 'Traceback (most recent call last)' not in r.stderr, text[-3000:]


def test_a_source_that_yields_nothing_is_said_out_loud(tmp_path):
    "A folder of .txt files declared with the default kind (jsonl): a warning naming the source, or an error on request."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    (ws / 'prose').mkdir()
    for i in range(3):
        (ws / 'prose' / f'p{i}.txt').write_text('Some prose paragraph. ' * 20)
    src = '    - {name: prose, path: prose, license: CC0-1.0}\n    - {name: code, kind: jsonl, path: code.jsonl, license: MIT}\n'
    (ws / 'code.jsonl').write_text('\n'.join(_good(i) for i in range(5)) + '\n')
    r, rd, m, q = _curate(ws, _recipe(ws, src))
    assert r.returncode == 0
    assert "source 'prose'" in r.stdout and 'no records' in r.stdout, r.stdout[-2000:]
    html = (ws / 'reports' / rd.name / 'curate.html').read_text()
    assert "source 'prose'" in html and 'no records' in html
    r, rd, m, q = _curate(ws, _recipe(ws, src, '  empty_source: error\n'))
    assert r.returncode == 1 and "source 'prose'" in r.stdout + r.stderr


def test_prose_is_not_judged_by_code_rules(tmp_path):
    "Long-paragraph prose survives the prose quality profile (the code profile's long-line rule removed all of it)."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    rng = random.Random(0)
    words = (
        'the of and to in is that it was for on are as with his they at be this from have or by one had not but '
        'river garden lantern morning quiet village harbor letter winter summer teacher window mountain story'
    ).split()
    docs = [' '.join(rng.choice(words) for _ in range(400)) + '.' for _ in range(20)]
    (ws / 'essays.jsonl').write_text('\n'.join(json.dumps({'text': d}) for d in docs) + '\n')
    r, rd, m, q = _curate(
        ws,
        _recipe(
            ws, '    - {name: essays, kind: jsonl, path: essays.jsonl, license: CC0-1.0, quality: prose}\n'
        ),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not any(x['reason'] == 'long_line' for x in q)
    _balanced(m, q)


# --- a property-style test: generated hostile folders, a fixed list of seeds ---

SECRET = 'TOP SECRET host file that must never become training data'


def _hostile_line(rng: random.Random, bound: int) -> bytes:
    "One JSONL line of a randomly chosen hostile (or good) kind."
    kind = rng.choice(
        [
            'good',
            'good',
            'good',
            'int',
            'deep',
            'deep_messages',
            'utf8',
            'surrogate',
            'bom',
            'utf16',
            'bytes',
            'long',
            'array',
            'nested_text',
            'blank',
            'nan',
            'license',
        ]
    )
    text = GOOD.format(i=rng.randrange(10**6)) * rng.randint(1, 4)
    if kind == 'good':
        return json.dumps({'text': text}).encode()
    if kind == 'int':
        return b'{"text": ' + b'7' * rng.choice([4400, 5000, 50_000]) + b'}'
    if kind == 'deep':
        d = rng.choice([50, 2000, 100_000])
        return b'{"text": ' + b'[' * d + b']' * d + b'}'
    if kind == 'deep_messages':
        d = rng.choice([50, 3000])
        return b'{"messages": [{"role": "user", "content": ' + b'{"a": ' * d + b'1' + b'}' * d + b'}]}'
    if kind == 'utf8':
        return b'{"text": "caf\xe9 ' + text.encode()[:50].replace(b'"', b"'").replace(b'\n', b' ') + b'"}'
    if kind == 'surrogate':
        return b'{"text": "lone \\ud800 surrogate ' + b'x' * 80 + b'"}'
    if kind == 'bom':
        return b'\xef\xbb\xbf' + json.dumps({'text': text}).encode()
    if kind == 'utf16':
        return json.dumps({'text': text}).encode('utf-16')
    if kind == 'bytes':
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))).replace(b'\n', b'')
    if kind == 'long':
        return b'{"text": "' + b'b' * rng.randint(bound, 4 * bound) + b'"}'
    if kind == 'array':
        return b'[1, 2, 3]'
    if kind == 'nested_text':
        return json.dumps({'text': {'a': [text]}}).encode()
    if kind == 'blank':
        return b'   '
    if kind == 'nan':
        return b'{"text": NaN}'
    return json.dumps({'text': text, 'license': {'spdx': ['MIT']}, 'conversation_id': [[['x']]]}).encode()


def _write_jsonl(rng: random.Random, path: Path, bound: int):
    "A JSONL file of hostile lines, maybe gzipped, maybe cut short at a random byte."
    raw = b'\n'.join(_hostile_line(rng, bound) for _ in range(rng.randint(3, 25))) + b'\n'
    if rng.random() < 0.5:
        path = path.with_name(path.name + '.gz')
        raw = gzip.compress(raw, compresslevel=1)
    if rng.random() < 0.3:
        raw = raw[: rng.randrange(1, len(raw))]
    path.write_bytes(raw)


def _write_text_folder(rng: random.Random, folder: Path, outside: Path):
    "Text files in random encodings, with links out, loops, dangling links, a FIFO and a non-UTF-8 name."
    folder.mkdir()
    prose = 'The river ran past the village and the children learned to read the color of the water. '
    for i in range(rng.randint(2, 6)):
        enc = rng.choice(['utf-8', 'latin-1', 'utf-16', 'bytes', 'empty'])
        body = prose * rng.randint(1, 40) + 'café'
        data = (
            bytes(rng.randrange(256) for _ in range(200))
            if enc == 'bytes'
            else b''
            if enc == 'empty'
            else body.encode(enc)
        )
        (folder / f'doc{i}.txt').write_bytes(data)
    links = dict(escape=outside, alias=folder / 'doc0.txt', dangling=folder / 'nowhere.txt', up=folder)
    for name, target in rng.sample(sorted(links.items()), rng.randint(1, 4)):
        os.symlink(target, folder / f'{name}.txt')
    if rng.random() < 0.7:
        os.symlink(folder / 'loop2.txt', folder / 'loop1.txt')
        os.symlink(folder / 'loop1.txt', folder / 'loop2.txt')
    if rng.random() < 0.7:
        os.mkfifo(folder / 'pipe.txt')
    if rng.random() < 0.7:
        (folder / os.fsdecode(b'name-\xff\xfe.txt')).write_bytes((prose * 10).encode())


def _write_parquet_folder(rng: random.Random, folder: Path):
    "Parquet files: good, cut short at a random byte, or random bytes."
    folder.mkdir()
    for i in range(rng.randint(1, 3)):
        path = folder / f'part{i}.parquet'
        rows = [{'text': GOOD.format(i=rng.randrange(10**6))} for _ in range(rng.randint(1, 20))]
        pq.write_table(pa.table({'text': [r['text'] for r in rows]}), path)
        data = path.read_bytes()
        how = rng.choice(['good', 'cut', 'noise'])
        if how == 'cut':
            path.write_bytes(data[: rng.randrange(1, len(data))])
        if how == 'noise':
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000))))


def _hostile_workspace(seed: int, root: Path, bound: int, huge_mb: int) -> Path:
    "A recipe over generated hostile sources; seed 0 also gets a line of `huge_mb` MB inside a small gzip."
    rng = random.Random(seed)
    d = root / f'seed{seed}'
    (d / 'lines').mkdir(parents=True)
    outside = d / 'outside.txt'
    outside.write_text((SECRET + '. ') * 10)
    for i in range(rng.randint(1, 4)):
        _write_jsonl(rng, d / 'lines' / f'f{i}.jsonl', bound)
    if seed == 0:
        with gzip.open(d / 'lines' / 'huge.jsonl.gz', 'wb', compresslevel=1) as g:
            g.write(b'{"text": "')
            for _ in range(huge_mb):
                g.write(b'c' * (1 << 20))
            g.write(b'"}\n' + _good(1).encode() + b'\n')
    _write_text_folder(rng, d / 'notes', outside)
    _write_parquet_folder(rng, d / 'tables')
    fmt = rng.choice(['text', 'chat'])
    recipe = d / 'recipe.yaml'
    recipe.write_text(
        f'name: prop{seed}\nseed: {seed}\ndata:\n  canaries: 0\n  eval_sets: []\n'
        f'  max_record_bytes: {bound}\n  shard_size: {rng.choice([3, 50])}\n  sources:\n'
        f'    - {{name: lines, kind: jsonl, format: {fmt}, path: {d / "lines"}, license: MIT}}\n'
        f'    - {{name: notes, kind: text, path: {d / "notes"}, license: MIT}}\n'
        f'    - {{name: tables, kind: parquet, path: {d / "tables"}, license: MIT}}\n'
    )
    return recipe


def _curate_recipes(recipes: list) -> dict:
    "Curate each recipe in this process (run as a script); return the manifests, quarantines and peak RSS (MB)."
    from llm_workbench.config import load_config
    from llm_workbench.data.curate import curate

    out = {}
    for recipe in map(Path, recipes):
        m = curate(load_config(recipe), recipe.parent / 'out')
        q = [
            json.loads(l)
            for l in (recipe.parent / 'out' / 'quarantine.jsonl').read_text(encoding='utf-8').splitlines()
        ]
        kept = [
            r
            for s in ('train', 'val', 'test')
            for r in pq.read_table(recipe.parent / 'out' / f'{s}.parquet').to_pylist()
        ]
        out[str(recipe)] = dict(
            manifest=m, quarantine=q, secret=any(SECRET in (r['text'] or '') for r in kept)
        )
    out['peak_mb'] = _vm_hwm_mb(os.getpid())  # this process since its exec: not the parent's memory
    return out


def test_generated_hostile_sources_never_crash_leak_or_unbalance(tmp_path):
    "Random sizes, encodings, nesting depths, truncation points and links (fixed seeds): no crash, bounded memory, balanced accounting."
    import sys, time

    bound, huge_mb = 200_000, 300
    t0 = time.time()
    recipes = [_hostile_workspace(seed, tmp_path, bound, huge_mb) for seed in range(6)]
    script = (
        'import json, sys; sys.path.insert(0, sys.argv[1]); from test_hostile_inputs import _curate_recipes; '
        'print(json.dumps(_curate_recipes(sys.argv[2:])))'
    )
    r = subprocess.run(
        [sys.executable, '-c', script, str(Path(__file__).parent), *map(str, recipes)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res['peak_mb'] < 700, f"peak RSS {res['peak_mb']:.0f} MB (seed 0 holds a {huge_mb} MB line)"
    for recipe in recipes:
        got = res[str(recipe)]
        _balanced(got['manifest'], got['quarantine'])
        assert not got['secret'], recipe
        assert all(x['location'] and x['reason'] for x in got['quarantine'])
        assert 'outside.txt' not in json.dumps(
            got['quarantine']
        )  # a link is named by itself, never its target
    q0 = res[str(recipes[0])]['quarantine']
    assert {'lines', 'huge.jsonl.gz:1', 'too_large'} <= {x['source'] for x in q0} | {
        x['location'] for x in q0
    } | {x['reason'] for x in q0}
    assert time.time() - t0 < 300
