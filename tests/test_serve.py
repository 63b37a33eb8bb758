"`llmwb serve` as a user meets it: a released micro model behind the gateway, called by the `openai` client."

import contextlib, json, os, shutil, signal, sqlite3, subprocess, threading, time
import urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest
from conftest import LLMWB, MICRO, complete_micro_run, llmwb, make_workspace
from llm_workbench.report import external_resources

openai = pytest.importorskip('openai')

EMAIL = 'jane.doe@gmail.com'


def _tail(proc: subprocess.Popen, n: int = 3000) -> str:
    "The end of a server's output (a file for long-lived servers: a full pipe would block them)."
    path = getattr(proc, 'out_path', None)
    if path is not None:
        return Path(path).read_text(errors='replace')[-n:]
    return proc.stdout.read()[-n:] if proc.poll() is not None else '(still running)'


def _health(url: str) -> str:
    "The gateway's /health answer, whatever its status."
    try:
        with urllib.request.urlopen(f'{url}/health', timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return f'HTTP {e.code}: {e.read().decode(errors="replace")}'
    except OSError as e:
        return repr(e)


def _start_serve(ws: Path, args: list, out: Path, **env) -> subprocess.Popen:
    "`llmwb serve ARGS` in workspace `ws`, its output in the file `out`."
    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')} | {'OMP_NUM_THREADS': '1'} | env
    with open(out, 'w') as f:
        proc = subprocess.Popen(
            [str(LLMWB), 'serve', *map(str, args)],
            cwd=ws,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            text=True,
        )
    proc.out_path = out
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # graceful: up to 15 s for requests in flight, 10 s for the engine
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f'llmwb serve exited with {proc.returncode}:\n{_tail(proc)}')
        try:
            with urllib.request.urlopen(f'{url}/health', timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f'llmwb serve never got healthy: {_health(url)}\n{_tail(proc)}')


def _free_port() -> int:
    from llm_workbench.serve import free_port

    return free_port()


@pytest.fixture(scope='module')
def micro_run(tmp_path_factory):
    "This module's own micro run: other modules promote the shared one's version, and the door tests need a candidate."
    return complete_micro_run(make_workspace(tmp_path_factory.mktemp('serve-ws')))


@pytest.fixture(scope='module')
def candidate_registry(micro_run, tmp_path_factory):
    "A copy of the micro run's registry taken while its version is still a candidate."
    ws, _, _ = micro_run
    copy = tmp_path_factory.mktemp('reg') / 'registry'
    shutil.copytree(ws / 'registry', copy)
    return copy


@pytest.fixture(scope='module')
def served(micro_run, candidate_registry):
    "`llmwb serve micro@staging` running in the micro run's workspace: (workspace, base URL, process)."
    ws, _, _ = micro_run
    r = llmwb(ws, 'registry', 'promote', 'micro:1', 'staging')
    force = []
    if (
        r.returncode != 0
    ):  # the micro model may fail its gate: an owner overrides it, with a reason on record,
        assert 'failed its release gate' in r.stderr, r.stderr  # when promoting and again when serving
        force = ['--force', '--reason', 'serving tests on a micro model']
        r = llmwb(ws, 'registry', 'promote', 'micro:1', 'staging', *force)
    assert r.returncode == 0, r.stderr
    port = _free_port()
    proc = _start_serve(ws, ['micro@staging', '--port', port, *force], ws / 'serve-staging.out')
    url = f'http://127.0.0.1:{port}'
    try:
        _wait_healthy(url, proc)
        yield ws, url, proc
    finally:
        _stop(proc)


@pytest.fixture(scope='module')
def client(served):
    c = openai.OpenAI(base_url=f'{served[1]}/v1', api_key='unused', max_retries=0, timeout=120)
    yield c
    c.close()


def _rows(ws: Path) -> list:
    c = sqlite3.connect(ws / 'serving' / 'traffic.db')
    c.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in c.execute('SELECT * FROM requests ORDER BY id')]
    finally:
        c.close()


def _wait_rows(served: tuple, n: int, timeout: float = 30) -> list:
    "The log's rows once it holds `n` (the writer commits a moment after the answer); else why not."
    ws, url, proc = served
    deadline = time.monotonic() + timeout
    while len(rows := _rows(ws)) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    if len(rows) < n:
        raise AssertionError(
            f'the traffic log holds {len(rows)} rows, not {n}, after {timeout:.0f} s\n'
            f'gateway /health: {_health(url)}\nllmwb serve output:\n{_tail(proc)}'
        )
    return rows


def test_models_report_the_served_version(served, client):
    ws = served[0]
    (m,) = client.models.list().data
    show = json.loads(llmwb(ws, 'registry', 'show', 'micro:1', '--json').stdout)
    assert m.id == 'micro:1'
    facts = m.model_extra['llmwb']
    assert (facts['stage'], facts['gate_passed'], facts['engine']) == (
        'staging',
        show['gate_passed'],
        'transformers',
    )
    assert facts['checksums'] == show['checksums'] and facts['bundle_sha256'] == show['bundle_sha256']
    assert facts['gate'] == show['gate']
    assert facts['forced'] == (
        not show['gate_passed']
    )  # a failed gate is served only with a recorded override
    assert len(facts['engine_models']) == 1 and facts['engine_models'][0].endswith('micro-v1')


def test_chat_and_completion_round_trips(served, client):
    ws, before = served[0], len(_rows(served[0]))
    chat = client.chat.completions.create(
        model='micro:1', messages=[{'role': 'user', 'content': 'def add(a, b):'}], max_tokens=8
    )
    assert chat.model == 'micro:1' and isinstance(chat.choices[0].message.content, str)
    assert 0 < chat.usage.completion_tokens <= 8 and chat.usage.prompt_tokens > 0
    comp = client.completions.create(model='micro', prompt='import os\n', max_tokens=6, temperature=0)
    assert comp.model == 'micro:1' and 0 < comp.usage.completion_tokens <= 6
    stream = client.chat.completions.create(
        model='micro:1', messages=[{'role': 'user', 'content': 'print'}], max_tokens=8, stream=True
    )
    chunks = list(stream)
    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
    assert chunks and all(c.model == 'micro:1' for c in chunks)
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 8
    parts = list(client.completions.create(model='micro:1', prompt='def f(x):', max_tokens=5, stream=True))
    streamed = ''.join(p.choices[0].text for p in parts if p.choices)
    rows = _wait_rows(served, before + 4)[before:]
    assert [(r['endpoint'], r['stream'], r['status'], r['http_status']) for r in rows] == [
        ('/v1/chat/completions', 0, 'ok', 200),
        ('/v1/completions', 0, 'ok', 200),
        ('/v1/chat/completions', 1, 'ok', 200),
        ('/v1/completions', 1, 'ok', 200),
    ]
    assert rows[0]['response'] == chat.choices[0].message.content and rows[2]['response'] == text
    assert rows[3]['response'] == streamed and rows[1]['response'] == comp.choices[0].text
    assert rows[0]['completion_tokens'] == chat.usage.completion_tokens
    assert (
        rows[2]['completion_tokens'] == chunks[-1].usage.completion_tokens and rows[2]['ttft_ms'] is not None
    )
    assert all(r['model'] == 'micro:1' and r['version'] == 1 and r['latency_ms'] > 0 for r in rows)


def test_the_log_is_redacted_and_complete(served, client):
    ws, before = served[0], len(_rows(served[0]))
    client.chat.completions.create(
        model='micro:1', messages=[{'role': 'user', 'content': f'mail {EMAIL} the report'}], max_tokens=4
    )
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model='gpt-4', prompt=f'from {EMAIL}', max_tokens=4)
    rows = _wait_rows(served, before + 2)[before:]
    assert [(r['status'], r['http_status']) for r in rows] == [('ok', 200), ('error', 404)]
    assert json.loads(rows[0]['prompt']) == [{'role': 'user', 'content': 'mail <EMAIL> the report'}]
    assert json.loads(rows[0]['pii_prompt']) == {'email': 1} and rows[1]['prompt'] == 'from <EMAIL>'
    for f in (ws / 'serving').glob('traffic.db*'):  # the address is nowhere on disk, WAL included
        assert EMAIL.encode() not in f.read_bytes(), f
    with contextlib.closing(sqlite3.connect(ws / 'serving' / 'traffic.db')) as c:  # closed: a refused DELETE
        with pytest.raises(sqlite3.DatabaseError, match='append-only'):  # leaves its transaction open, and
            c.execute('DELETE FROM requests')  # an unclosed connection would block the gateway's writer
    #  until the garbage collector found it (the CI failure of the export test)


def test_health_and_curl(served):
    out = subprocess.run(['curl', '-sf', f'{served[1]}/health'], capture_output=True, text=True, timeout=30)
    if out.returncode == 127:
        pytest.skip('no curl')
    health = json.loads(out.stdout)
    assert (health['status'], health['model'], health['engine']) == ('ok', 'micro:1', 'transformers')


def test_monitor_reports_and_fails_on_policy(served, client):
    ws, before = served[0], len(_rows(served[0]))
    client.completions.create(model='micro:1', prompt='x = ', max_tokens=3)
    with pytest.raises(openai.NotFoundError):  # an error in the log: above the default 5% error rate
        client.completions.create(model='no-such-model', prompt='x', max_tokens=3)
    n = len(_wait_rows(served, before + 2))  # both committed (the writer commits a moment after the answer)
    r = llmwb(ws, 'monitor', 'micro', '--since', '1h')
    assert r.returncode == 1 and 'monitoring policy violated: max_error_rate' in r.stderr, r.stdout + r.stderr
    assert f'{n} request(s) logged for micro since 1h' in r.stdout, r.stdout
    page = (ws / 'reports' / 'monitor' / 'micro.html').read_text()
    assert 'POLICY VIOLATED' in page and 'micro:1' in page and external_resources(page) == []
    settings = ws / 'settings.ini'
    before = settings.read_text()
    try:
        settings.write_text(before + '[monitor]\nmax_error_rate = 0.9\n')
        r = llmwb(ws, 'monitor', 'micro', '--out', ws / 'ok.html')
        assert r.returncode == 0, r.stdout + r.stderr
        assert (ws / 'ok.html').is_file() and 'pass    max_error_rate' in r.stdout, r.stdout
    finally:
        settings.write_text(before)


def test_the_door_refuses_a_candidate_and_records_an_override(candidate_registry, micro_run):
    ws, reg = micro_run[0], candidate_registry
    r = llmwb(ws, 'serve', 'micro:1', '--registry-path', reg, '--check')
    assert r.returncode == 1 and "stage is 'candidate'" in r.stderr, r.stderr
    r = llmwb(ws, 'serve', 'micro:1', '--registry-path', reg, '--check', '--force')
    assert r.returncode == 1 and 'needs a reason' in r.stderr, r.stderr
    r = llmwb(ws, 'serve', 'micro:1', '--registry-path', reg, '--check', '--force', '--reason', 'dry')
    assert r.returncode == 0 and 'dry run: not recorded' in r.stdout, r.stdout + r.stderr
    live = ws / 'serving' / 'models' / 'micro-v1' / 'serving.json'  # the folder of the module's own server
    before = live.stat().st_ino if live.exists() else None
    port = _free_port()
    args = ['micro:1', '--registry-path', reg, '--port', port, '--force', '--reason', 'staging smoke test']
    proc = _start_serve(ws, args + ['--actor', 'dana'], ws / 'serve-door.out')
    try:
        _wait_healthy(f'http://127.0.0.1:{port}', proc)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    show = json.loads(llmwb(ws, 'registry', '--registry-path', reg, 'show', 'micro:1', '--json').stdout)
    last = show['history'][-1]
    assert (last['actor'], last['from_stage'], last['to_stage'], last['forced']) == (
        'dana',
        'candidate',
        'served',
        True,
    )
    assert 'staging smoke test' in last['reason'] and "stage is 'candidate'" in last['reason']
    assert [e['to_stage'] for e in show['history']] == ['candidate', 'served']  # the dry run left no event
    if (
        before is not None
    ):  # a second server in the workspace reused the live engine's folder, never replaced it
        assert live.stat().st_ino == before


def test_a_tampered_bundle_is_refused_even_forced(candidate_registry, micro_run, tmp_path):
    ws, reg = micro_run[0], tmp_path / 'registry'
    shutil.copytree(candidate_registry, reg)
    weights = reg / 'bundles' / 'micro' / 'v1' / 'model' / 'model.safetensors'
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1  # one byte changed
    weights.write_bytes(bytes(data))
    for extra in ([], ['--force', '--reason', 'please']):
        r = llmwb(ws, 'serve', 'micro:1', '--registry-path', reg, '--port', str(_free_port()), *extra)
        assert r.returncode == 1, r.stdout + r.stderr
        assert 'fails verification: changed: model/model.safetensors' in r.stderr, r.stderr
    assert 'door:' not in r.stdout  # refused before anything was loaded


def _humaneval_quote() -> tuple[str, str]:
    "(item id, the first 200 characters of its prompt) of the first HumanEval item the curate stage checks."
    from llm_workbench.config import EvalSetConfig
    from llm_workbench.data.contamination import eval_set_items

    es = EvalSetConfig(name='humaneval', kind='humaneval', fields=['prompt'], id_field='task_id')
    item_id, text = eval_set_items(es)[0]
    return item_id, text[:200]


CONSENT = {'X-LLMWB-Consent': 'user-consent'}
CODE_PROMPTS = [
    'def moving_average(values, window):\n    """Return the moving averages of values over window."""',
    'class LRUCache:\n    """A least-recently-used cache of at most capacity entries."""\n'
    '    def get(self, key):',
    'import csv\n\ndef read_rows(path):\n    """Read the rows of a CSV file at path as dictionaries."""',
]


def _micro_recipe_with(source: Path, dest: Path) -> Path:
    "The micro recipe, smaller, with the exported traffic as an extra source its license policy allows."
    import yaml
    from llm_workbench.config import PERMISSIVE

    recipe = yaml.safe_load(MICRO.read_text())
    recipe['data']['sources'][0]['max_docs'] = 20
    recipe['data']['sources'][1]['max_docs'] = 10
    recipe['data']['sources'].append(
        dict(name='traffic', kind='jsonl', path=str(source), format='text', quality='none')
    )
    recipe['data']['license_policy'] = dict(allow=PERMISSIVE + ['LicenseRef-user-consent'])
    dest.write_text(yaml.safe_dump(recipe))
    return dest


def test_export_consented_traffic_feeds_the_next_curate(served, client, tmp_path):
    "Consented answers exported redacted, with provenance; the next curate keeps them but a HumanEval quote."
    import pyarrow.parquet as pq
    from llm_workbench.config import load_config
    from llm_workbench.core import RunLayout
    from llm_workbench.data.curate import curate
    from llm_workbench.monitor_loop import export_traffic

    ws = served[0]
    before = len(_rows(ws))
    item_id, quote = _humaneval_quote()
    mail = f'Please send the summary of the failing tests to {EMAIL} by noon, with the traceback.'
    consented = CODE_PROMPTS + [f'Why does this fail?\n{quote}', mail]
    for i, text in enumerate(consented):
        headers = CONSENT | {'X-Request-Id': f'export-{i}'}
        if i % 2:
            client.completions.create(model='micro:1', prompt=text, max_tokens=3, extra_headers=headers)
        else:
            msgs = [{'role': 'user', 'content': text}]
            client.chat.completions.create(
                model='micro:1', messages=msgs, max_tokens=3, extra_headers=headers
            )
    client.completions.create(model='micro:1', prompt=CODE_PROMPTS[0] + '\n', max_tokens=3)  # no consent
    no = {'X-LLMWB-Consent': 'no'}
    client.completions.create(model='micro:1', prompt=CODE_PROMPTS[1] + '\n', max_tokens=3, extra_headers=no)
    rows = _wait_rows(served, before + len(consented) + 2)[before:]
    assert [r['consent'] for r in rows] == ['user-consent'] * len(consented) + [None, 'no']
    assert all(r['status'] == 'ok' for r in rows), [r['error'] for r in rows]

    out = tmp_path / 'traffic.jsonl'
    res = export_traffic(ws / 'serving', out, 'micro')  # the default policy exports `user-consent` only
    assert res['exported'] == len(consented) and res['versions'] == {'micro:1': len(consented)}
    assert res['skipped']['consent_not_allowed'] == 1 and res['skipped']['no_consent'] >= 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x['request_id'] for x in lines] == [f'export-{i}' for i in range(len(consented))]
    provenance = {(x['served'], x['version'], x['license'], x['consent']) for x in lines}
    assert provenance == {('micro:1', 1, 'LicenseRef-user-consent', 'user-consent')}
    assert lines[-1]['text'] == mail.replace(EMAIL, '<EMAIL>') and EMAIL not in out.read_text()
    assert lines[0]['text'] == CODE_PROMPTS[0] and lines[0]['completion'] == rows[0]['response']

    recipe = _micro_recipe_with(out, tmp_path / 'next.yaml')
    m = curate(load_config(recipe), tmp_path / 'run' / 'data')
    (src,) = [s for s in m['sources'] if s['name'] == 'traffic']
    n = len(consented)
    assert (src['records_in'], src['kept'], src['removed']) == (n, n - 1, {'contaminated': 1}), src
    assert m['licenses']['LicenseRef-user-consent']['records'] == len(consented) - 1
    layout = RunLayout(tmp_path / 'run')
    quarantined = [json.loads(x) for x in layout.quarantine.read_text().splitlines()]
    (hit,) = [q for q in quarantined if q['source'] == 'traffic']
    assert hit['id'] == 'traffic:traffic.jsonl:4' and item_id in hit['detail'], hit
    kept = [t for s in ('train', 'val', 'test') for t in pq.read_table(layout.split(s)).to_pylist()]
    texts = {t['text'] for t in kept if t['source'] == 'traffic'}
    assert texts == {x['text'] for x in lines} - {lines[3]['text']}
    cli_out = tmp_path / 'cli.jsonl'  # the same export from the command line
    r = llmwb(ws, 'monitor', 'micro', '--export', cli_out)
    assert r.returncode == 0 and f'exported {len(consented)} of' in r.stdout, r.stdout + r.stderr
    assert cli_out.read_text() == out.read_text()


def test_monitor_measures_drift_against_the_train_split(served, client, tmp_path):
    "Prose prompts to a model trained on Python are beyond the val split's novelty; the policy can fail."
    from llm_workbench.monitor import MONITOR_DEFAULTS, monitor
    from llm_workbench.release.registry import Registry

    ws = served[0]
    before = len(_rows(ws))
    prose = 'Quelle est la meilleure saison pour visiter les montagnes du nord avec des enfants ?'
    client.completions.create(
        model='micro:1', prompt=prose, max_tokens=3, extra_headers={'X-Request-Id': 'drift-prose'}
    )
    client.completions.create(
        model='micro:1', prompt='import os\nimport sys\n\n\ndef main():\n    return 0\n', max_tokens=3
    )
    _wait_rows(served, before + 2)
    reg = Registry(ws / 'registry', create=False)
    policy = MONITOR_DEFAULTS | dict(min_requests=1, max_drift_share=0.0, max_error_rate=None)
    res = monitor(ws / 'serving', tmp_path / 'drift.html', 'micro', registry=reg, policy=policy)
    drift = res['drift']
    assert 0 < drift['thresholds']['micro:1'] <= 1 and drift['measured'] >= 2, drift
    novel = [x['request_id'] for x in drift['most_novel'] if x['novelty'] == 1.0]
    assert 'drift-prose' in novel, drift['most_novel']
    assert 0 < drift['drift_share'] < 1 and 'max_drift_share' in res['failed'], res['checks']
    assert 'drifted share' in (tmp_path / 'drift.html').read_text()
    policy |= dict(max_drift_share=1)
    res = monitor(ws / 'serving', tmp_path / 'ok.html', 'micro', registry=reg, policy=policy)
    assert 'max_drift_share' not in res['failed']


def test_live_eval_rescores_the_endpoint_against_the_release(served, tmp_path):
    "The release's saved suite, re-run through the OpenAI API of the live endpoint, compared item by item."
    from llm_workbench.monitor_loop import live_eval
    from llm_workbench.release.registry import Registry

    ws, url = served[0], served[1]
    res = live_eval(f'{url}/v1', Registry(ws / 'registry', create=False), tmp_path / 'eval.json')
    bundle = Path(Registry(ws / 'registry', create=False).get('micro:1')['path'])
    suite = json.loads((bundle / 'eval' / 'suite.json').read_text())
    release = json.loads((bundle / 'eval' / 'results.json').read_text())
    assert (res['served'], res['suite_sha256']) == ('micro:1', suite['sha256'])
    generation = {t for t, info in suite['tasks'].items() if info['kind'] == 'generation' and info['items']}
    assert set(res['live']) == generation and generation, res
    assert set(res['skipped']) == set(suite['tasks']) - generation
    for row in res['rows']:
        assert row['n'] == len(release['items'][row['metric']]) == suite['tasks'][row['metric']]['items']
    assert res['regressions'] == [], res['rows']
    assert json.loads((tmp_path / 'eval.json').read_text())['rows'] == res['rows']
    r = llmwb(ws, 'monitor', '--eval', '--url', f'{url}/v1', '--out', tmp_path / 'cli-eval.json')
    assert r.returncode == 0 and 'results ' in r.stdout, r.stdout + r.stderr  # the cron line's command
    assert json.loads((tmp_path / 'cli-eval.json').read_text())['regressions'] == []


def _reload_registry(candidate_registry: Path, dest: Path) -> Path:
    "A registry copy with micro:2 and micro:3 (the micro bundle again, gate passed), micro:2 in production."
    from llm_workbench.release.registry import Registry

    shutil.copytree(candidate_registry, dest)
    reg = Registry(dest, create=False)
    v1 = reg.get('micro:1')
    for run_id in ('reload-a', 'reload-b'):
        reg.register(
            'micro', v1['path'], run_id=run_id, config_hash=v1['config_hash'],
            dataset_sha256=v1['dataset_sha256'], eval_summary=v1['eval_summary'],
            gate=dict(passed=True, failed=[]),
        )  # fmt: skip
    reg.promote('micro:2', 'production')
    return dest


def test_a_promotion_reloads_without_dropping_requests(served, candidate_registry, tmp_path):
    "Clients keep calling across a promotion (blue/green): all answered, the later ones by the new version."
    ws = served[0]  # a second server in the same workspace, next to the module's own
    reg = _reload_registry(candidate_registry, tmp_path / 'registry')
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    proc = _start_serve(
        ws, ['micro@production', '--registry-path', reg, '--port', port], tmp_path / 'serve.out',
        LLMWB_SERVE_RELOAD_S='1',
    )  # fmt: skip
    client = openai.OpenAI(base_url=f'{url}/v1', api_key='unused', max_retries=0, timeout=120)
    answers, errors, stop = [], [], threading.Event()

    def call(worker: int) -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            rid = f'reload-{worker}-{i}'
            try:
                if i % 2:
                    parts = list(client.completions.create(
                        model='micro', prompt='def f(x):', max_tokens=16, stream=True,
                        extra_headers={'X-Request-Id': rid},
                    ))  # fmt: skip
                    answers.append((rid, parts[-1].model))
                else:
                    msgs = [{'role': 'user', 'content': 'def add(a, b):'}]
                    chat = client.chat.completions.create(
                        model='micro', messages=msgs, max_tokens=16, extra_headers={'X-Request-Id': rid}
                    )
                    answers.append((rid, chat.model))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors.append(f'{rid}: {e!r}')

    try:
        _wait_healthy(url, proc)
        assert client.models.list().data[0].id == 'micro:2'
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(call, w) for w in range(4)]
            time.sleep(2)
            r = llmwb(ws, 'registry', '--registry-path', reg, 'promote', 'micro:3', 'production')
            assert r.returncode == 0, r.stdout + r.stderr
            deadline = time.monotonic() + 180
            while json.loads(_health(url)).get('model') != 'micro:3' and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3)  # clients keep calling the new version
            stop.set()
            for f in futures:
                f.result()
        health = json.loads(_health(url))
        assert health['model'] == 'micro:3', f'{health}\n{_tail(proc)}'
        assert errors == [], errors[:5]
        models = [m for _, m in answers]
        assert models[0] == 'micro:2' and models[-1] == 'micro:3' and set(models) == {'micro:2', 'micro:3'}
        (m,) = client.models.list().data
        assert (m.id, m.model_extra['llmwb']['stage']) == ('micro:3', 'production')
        ours = {rid: model for rid, model in answers}
        rows = [r for r in _rows(ws) if r['request_id'] in ours]
        while len(rows) < len(ours) and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = [r for r in _rows(ws) if r['request_id'] in ours]
        assert len(rows) == len(ours) and all(r['status'] == 'ok' for r in rows)
        assert all(ours[r['request_id']] == r['model'] == f"micro:{r['version']}" for r in rows)
        started = sorted((r['time'], r['version']) for r in rows)  # one switch: v2 requests, then v3 ones
        assert [v for _, v in started] == sorted(v for _, v in started)
        deadline = time.monotonic() + 60  # the old engine is stopped once its requests are done
        while not any('stopped the engine of micro:2' in e['event'] for e in health['reload']['events']):
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
            health = json.loads(_health(url))
        events = [e['event'] for e in health['reload']['events']]
        assert any(e.startswith('now serving micro:3 (was micro:2') for e in events), events

        # a promoted version the door refuses (its gate failed; forced in the registry) is not served
        from llm_workbench.release.registry import Registry

        v1 = Registry(reg, create=False).get('micro:1')
        Registry(reg, create=False).register(
            'micro', v1['path'], run_id='reload-c', config_hash='', dataset_sha256='', eval_summary={},
            gate=dict(passed=False, failed=['regressions']),
        )  # fmt: skip
        r = llmwb(
            ws,
            'registry',
            '--registry-path',
            reg,
            'promote',
            'micro:4',
            'production',
            '--force',
            '--reason',
            'x',
        )
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.monotonic() + 60
        while not any('micro:4' in e['event'] for e in health['reload']['events']):
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
            health = json.loads(_health(url))
        assert health['model'] == 'micro:3' and health['status'] == 'ok', health
        (refusal,) = [e['event'] for e in health['reload']['events'] if 'micro:4' in e['event']]
        assert refusal.startswith('keeps serving micro:3: ServeRefused') and 'release gate failed' in refusal
        assert client.completions.create(model='micro', prompt='x', max_tokens=2).model == 'micro:3'
    finally:
        client.close()
        _stop(proc)
    assert 'keeps serving micro:3' in _tail(proc, 20000)  # the refusal is in the server's output too
