"`llmwb lab` starts a real JupyterLab on 127.0.0.1 with the project's kernel and the guided tutorials; a headless Chromium opens a tutorial, runs it and finds the rendered widget."

import json, os, shutil, signal, socket, subprocess, time, urllib.request
import pytest
from conftest import LLMWB, make_workspace

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
TUTORIAL = '01_curate_your_own_data.ipynb'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_lab(ws, tmp_path, token: str, lab_config: dict | None = None):
    "`llmwb lab` on a free port with Jupyter's state in `tmp_path`; returns (process, port, kernelspecs) once the server answers."
    port, cfg = free_port(), tmp_path / 'cfg'
    cfg.mkdir(exist_ok=True)
    if lab_config:
        (cfg / 'jupyter_lab_config.json').write_text(json.dumps(lab_config))
    env = dict(
        os.environ,
        LLMWB_LAB_TOKEN=token,
        JUPYTER_CONFIG_DIR=str(cfg),
        JUPYTER_RUNTIME_DIR=str(tmp_path / 'rt'),
        JUPYTER_DATA_DIR=str(tmp_path / 'data'),
        IPYTHONDIR=str(tmp_path / 'ipy'),
    )
    p = subprocess.Popen(
        [str(LLMWB), 'lab', '--port', str(port), '--dir', str(ws)],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline, status = time.time() + 90, None
    while time.time() < deadline and status is None and p.poll() is None:
        try:
            with urllib.request.urlopen(
                f'http://127.0.0.1:{port}/api/kernelspecs?token={token}', timeout=5
            ) as r:
                status = json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    if status is None:
        out = stop(p)
        raise AssertionError(f'JupyterLab did not answer:\n{out[-3000:]}')
    return p, port, status


def stop(p) -> str:
    "Stop the `llmwb lab` process group; return what it printed."
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    return p.communicate(timeout=30)[0]


def test_lab_serves_on_loopback_with_project_kernel(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    token = 'llmwb-test-token'
    p, port, status = start_lab(ws, tmp_path, token)
    try:
        assert 'llm-workbench' in status['kernelspecs'] and status['default'] == 'llm-workbench'
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/lab?token={token}', timeout=10) as r:
            assert r.status == 200 and b'JupyterLab' in r.read()
    finally:
        out = stop(p)
    assert f'http://127.0.0.1:{port}/lab?token={token}' in out
    assert (
        sorted(n.name for n in (ws / 'tutorials').glob('*.ipynb'))[0] == TUTORIAL
        and 'Tutorials: copied' in out
    )
    # the next start keeps a user's edited tutorial as it is
    (ws / 'tutorials' / TUTORIAL).write_text('{"edited": true}')
    p, port, _ = start_lab(ws, tmp_path, token)
    out = stop(p)
    assert (ws / 'tutorials' / TUTORIAL).read_text() == '{"edited": true}' and 'already there' in out


class CDP:
    "A minimal Chrome DevTools Protocol client on one page; records every URL the page requests or opens a websocket to."

    def __init__(self, ws_url: str):
        import websocket  # websocket-client: a dependency of jupyter_server

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.n, self.urls = 0, []

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps(dict(id=self.n, method=method, params=params)))
        while True:
            m = json.loads(self.ws.recv())
            if m.get('method') == 'Network.requestWillBeSent':
                self.urls.append(m['params']['request']['url'])
            elif m.get('method') == 'Network.webSocketCreated':
                self.urls.append(m['params']['url'])
            elif m.get('id') == self.n:
                if 'error' in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m['result']

    def js(self, expr: str):
        "The value of a JavaScript expression in the page (promises awaited)."
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r:
            raise RuntimeError(
                f"{expr[:100]}: {r['exceptionDetails'].get('exception', {}).get('description')}"
            )
        return r['result'].get('value')

    def wait(self, expr: str, timeout: float, what: str):
        "Poll `expr` until it is truthy; its value."
        deadline = time.time() + timeout
        while time.time() < deadline:
            if v := self.js(expr):
                return v
            time.sleep(0.5)
        raise AssertionError(f'timed out after {timeout:.0f}s waiting for {what}')


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        if os.environ.get('CI'):
            pytest.fail('chromium is not installed: `make browser` installs it (Debian package chromium)')
        pytest.skip('chromium not installed (make browser)')
    return CHROMIUM


def start_chromium(chromium: str, profile) -> tuple:
    "Headless Chromium that reaches 127.0.0.1 only (everything else goes to a dead proxy, every other host name fails to resolve); (process, CDP of its page)."
    p = subprocess.Popen(
        [
            chromium,
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--disable-extensions',
            '--proxy-server=127.0.0.1:9',
            '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
            '--remote-debugging-port=0',
            f'--user-data-dir={profile}',
            '--window-size=1400,1000',
            'about:blank',
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file, deadline = profile / 'DevToolsActivePort', time.time() + 60
    while time.time() < deadline and not (port_file.is_file() and port_file.read_text().strip()):
        assert p.poll() is None, 'chromium exited'
        time.sleep(0.2)
    port = int(port_file.read_text().split()[0])
    pages = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10).read())
    return p, CDP(next(t for t in pages if t['type'] == 'page')['webSocketDebuggerUrl'])


PANEL = f"[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === 'tutorials/{TUTORIAL}')"
STATE = f"""(() => {{
  const p = {PANEL};
  if (!p || !p.sessionContext.isReady || !p.sessionContext.session || !p.sessionContext.session.kernel) return '';
  const cells = p.content.widgets.filter(c => c.model.type === 'code');
  const err = cells.flatMap(c => c.model.outputs.toJSON()).find(o => o.output_type === 'error');
  if (err) return 'error ' + err.ename + ': ' + err.evalue;
  return p.sessionContext.session.kernel.status === 'idle' && cells.every(c => c.model.executionCount !== null) ? 'done' : '';
}})()"""
EXPLORER = """(() => {
  const w = [...document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets')].find(e => e.textContent.includes('records in'));
  if (!w) return null;
  w.scrollIntoView();
  return {text: w.textContent, selects: w.querySelectorAll('select').length, lists: w.querySelectorAll('select[size]').length,
          tabs: [...w.querySelectorAll('.lm-TabBar-tab')].map(t => t.textContent), plots: document.querySelectorAll('.jp-Notebook .js-plotly-plot .main-svg').length};
})()"""


def test_lab_runs_a_tutorial_in_chromium_and_renders_the_widget(chromium, tmp_path):
    "The newcomer's path: `llmwb lab`, open tutorial 01 in the browser, Run All, and the data explorer widget renders live from the kernel."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    token = 'llmwb-browser-token'
    lab, port, _ = start_lab(
        ws, tmp_path, token, lab_config={'LabApp': {'expose_app_in_browser': True}}
    )  # window.jupyterapp, as Galata uses
    browser, cdp = None, None
    try:
        assert (ws / 'tutorials' / TUTORIAL).is_file()
        browser, cdp = start_chromium(chromium, tmp_path / 'profile')
        cdp.call('Network.enable')
        cdp.call('Page.enable')
        cdp.call('Page.navigate', url=f'http://127.0.0.1:{port}/lab/tree/tutorials/{TUTORIAL}?token={token}')
        cdp.wait(
            f"!!(window.jupyterapp && {PANEL} && document.querySelector('.jp-Notebook .jp-Cell'))",
            120,
            'JupyterLab to open the tutorial',
        )
        cdp.wait(
            f"(() => {{ const p = {PANEL}; return p.sessionContext.isReady && p.sessionContext.session.kernel.status === 'idle'; }})()",
            120,
            'its kernel',
        )
        cdp.js(
            f"(() => {{ const p = {PANEL}; window.jupyterapp.shell.activateById(p.id); window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }})()"
        )
        state = cdp.wait(STATE, 300, 'Run All to finish')
        assert state == 'done', state
        w = cdp.wait(EXPLORER, 30, 'the data explorer widget in the output')
        assert (
            '14 records in, 7 kept, 7 removed' in w['text']
        )  # the live widget's header, not the static snapshot
        assert (
            'code:geometry.jsonl:1' in w['text'] and 'exact_duplicate' in w['text']
        )  # the kept and removed lists are filled
        assert w['lists'] == 2 and w['selects'] >= 6 and w['tabs'] == ['Records', 'Charts']
        assert w['plots'] >= 3  # funnel, reasons and licenses drawn by JupyterLab's plotly renderer
        local = (f'http://127.0.0.1:{port}/', f'ws://127.0.0.1:{port}/', 'data:', 'blob:', 'about:')
        assert cdp.urls and not [u for u in cdp.urls if not u.startswith(local)], [
            u for u in cdp.urls if not u.startswith(local)
        ][:10]
    except Exception:
        if cdp is not None:
            try:
                (tmp_path / 'failure.png').write_bytes(
                    __import__('base64').b64decode(cdp.call('Page.captureScreenshot')['data'])
                )
            except Exception:
                pass
        raise
    finally:
        if browser is not None:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(30)
        out = stop(lab)
    assert 'Tutorials: copied' in out
    assert (ws / 'runs').is_dir() and any(
        (ws / 'runs').glob('*/data/quarantine.jsonl')
    )  # the tutorial ran in the workspace
