"`llmwb lab` starts a real JupyterLab on 127.0.0.1 with the project's kernel."
import json, os, signal, socket, subprocess, time, urllib.request
from conftest import LLMWB, make_workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_lab_serves_on_loopback_with_project_kernel(tmp_path):
    ws = make_workspace(tmp_path/'ws')
    port, token = free_port(), 'llmwb-test-token'
    env = dict(os.environ, LLMWB_LAB_TOKEN=token, JUPYTER_CONFIG_DIR=str(tmp_path/'cfg'), JUPYTER_RUNTIME_DIR=str(tmp_path/'rt'),
               IPYTHONDIR=str(tmp_path/'ipy'))
    p = subprocess.Popen([str(LLMWB), 'lab', '--port', str(port), '--dir', str(ws)], cwd=ws, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, status = time.time() + 90, None
        while time.time() < deadline and status is None:
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/kernelspecs?token={token}', timeout=5) as r:
                    status = json.loads(r.read())
            except OSError: time.sleep(0.5)
        assert status is not None, 'JupyterLab did not answer'
        assert 'llm-workbench' in status['kernelspecs'] and status['default'] == 'llm-workbench'
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/lab?token={token}', timeout=10) as r:
            assert r.status == 200 and b'JupyterLab' in r.read()
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        out = p.communicate(timeout=30)[0]
    assert f'http://127.0.0.1:{port}/lab?token={token}' in out
