"The fifth tutorial, `05_close_the_loop`, executed with papermill in a fresh workspace: release, serve, traffic, monitor, export, next run, compare, promote or roll back."

import json, sqlite3
import pytest
from conftest import make_workspace, read_run, run_dirs
from test_tutorials import cell, execute, text

pytest.importorskip('openai')


def test_05_close_the_loop(tmp_path):
    from llm_workbench.core import RunLayout
    from llm_workbench.release.registry import Registry

    ws = make_workspace(tmp_path / 'ws', tracking='none')
    nb = execute('05_close_the_loop', ws)
    runs = [read_run(d) for d in run_dirs(ws)]
    assert [r['status'] for r in runs] == ['completed', 'completed'], [r.get('error') for r in runs]
    first, second = sorted(runs, key=lambda r: r['run_id'])
    reg = Registry(ws / 'registry', create=False)
    versions = {v['run_id']: v for v in reg.versions('loop')}
    v_a, v_b = versions[first['run_id']], versions[second['run_id']]

    # served, with traffic logged redacted and tagged; the consented part exported with provenance
    rows = sqlite3.connect(ws / 'serving' / 'traffic.db').execute(
        'SELECT consent, status, prompt FROM requests'
    )
    rows = rows.fetchall()
    assert len(rows) >= 6 and all(status == 'ok' for _, status, _ in rows), rows
    assert [c for c, _, _ in rows[:6]] == ['user-consent'] * 5 + [None]
    assert not any('jane.doe@gmail.com' in p for _, _, p in rows)
    lines = [json.loads(x) for x in (ws / 'traffic.jsonl').read_text().splitlines()]
    assert len(lines) == 5 and {x['served'] for x in lines} == {v_a['ref']}
    assert lines[-1]['text'] == 'Please mail the failing test output to <EMAIL>'
    assert 'exported 5 request(s)' in text(cell(nb, 'from llm_workbench.monitor_loop import export_traffic'))

    # the monitor ran and wrote its offline report
    assert (ws / 'reports' / 'monitor' / 'loop.html').is_file()
    assert 'request(s) logged for loop' in text(cell(nb, 'time.sleep(1)'))

    # the next run read the exported source through curate
    manifest = json.loads(RunLayout(second['run_dir']).manifest.read_text())
    (src,) = [s for s in manifest['sources'] if s['name'] == 'traffic']
    assert src['records_in'] == 5 and src['kept'] >= 1, src
    assert second['config']['data']['sources'][-1]['name'] == 'traffic'

    # the rule decided, and the registry and the server followed it
    decided = text(cell(nb, 'def val_ppl('))
    promote = 'decision: promote' in decided
    assert promote or 'decision: roll back' in decided, decided
    target = v_b if promote else v_a
    assert reg.production('loop')['ref'] == target['ref']
    served = text(cell(nb, 'deadline = time.monotonic() + 300\nwhile client.models'))
    assert f"now serving {target['ref']}; this answer came from {target['ref']}" in served, served
    out = (ws / 'serve.out').read_text()
    if promote:  # the running server switched to the new version without a restart
        assert f"now serving {v_b['ref']} (was {v_a['ref']}" in out, out
        assert f"stopped the engine of {v_a['ref']}" in out, out
