"Hostile generated code in the real sandbox: each snippet is scored as not passed AND the host is unharmed."
import os, socket, statistics, sys, tempfile, threading, time
from pathlib import Path
import pytest
from llm_workbench.eval import sandbox
from llm_workbench.eval.sandbox import run_sandboxed, run_with_tests, run_many

SECRET = 's3cr3t-7f3a9c1e55'


def _leftover_procs(base: Path) -> list[str]:
    "Live processes whose command line names a sandbox dir under `base` (a fork keeps the bootstrap's argv)."
    out, key = [], os.fsencode(str(base))
    for p in Path('/proc').iterdir():
        if not p.name.isdigit(): continue
        try: cmd, state = (p/'cmdline').read_bytes(), (p/'stat').read_text().rsplit(')', 1)[1].split()[0]
        except (OSError, IndexError): continue
        if key in cmd and state != 'Z': out.append(p.name)
    return out


@pytest.fixture(params=['all', 'portable'], autouse=True)
def layers(request, monkeypatch, tmp_path):
    """Run every test with all layers this machine allows, and with only the portable ones (audit hook, rlimits,
    no namespaces, no uid change: what CI without root or user namespaces gets). Afterwards the host must be clean."""
    if request.param == 'portable': monkeypatch.setattr(sandbox, '_LAYERS', {'namespaces': False, 'drop_uid': False, 'audit_hook': True})
    sbx = tmp_path/'sbx'; sbx.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(sbx))                 # the sandbox dirs land here, so we can check them
    yield request.param
    assert list(sbx.iterdir()) == [], 'a throwaway dir was left behind'
    for _ in range(20):
        if not _leftover_procs(sbx): break
        time.sleep(0.05)
    assert _leftover_procs(sbx) == [], 'a sandboxed process outlived its run'


@pytest.fixture
def host(tmp_path):
    "A host directory with a sentinel file the snippets try to damage."
    d = tmp_path/'host'; d.mkdir()
    (d/'sentinel.txt').write_text('precious')
    return d


def _intact(host: Path):
    assert (host/'sentinel.txt').read_text() == 'precious'
    assert sorted(p.name for p in host.iterdir()) == ['sentinel.txt']


def test_leftover_check_sees_a_running_sandbox(layers):
    "The host checks of the autouse fixture are real: during a run the sandbox process is visible, afterwards gone."
    base, seen = Path(tempfile.tempdir), []
    t = threading.Thread(target=lambda: seen.append(run_sandboxed('import time\ntime.sleep(0.6)')))
    t.start(); time.sleep(0.3)
    during, dirs = _leftover_procs(base), list(base.iterdir())
    t.join()
    assert during and len(dirs) == 1 and seen[0].passed, (during, dirs, seen)
    assert _leftover_procs(base) == [] and list(base.iterdir()) == []


def test_correct_program_passes_fast(capsys):
    code = 'import json, re, collections\nprint(json.dumps(collections.Counter(re.findall("a", "banana"))))'
    rs = [run_sandboxed(code) for _ in range(5)]
    assert all(r.passed for r in rs), rs[0]
    assert rs[0].stdout == '{"a": 3}\n'
    med = statistics.median(r.seconds for r in rs)
    assert med < 0.5, med
    with capsys.disabled(): print(f'\n  per-run overhead (median of 5): {med * 1000:.0f} ms; layers: {rs[0].isolation}')


def test_legitimate_stdlib_use_is_not_blocked():
    code = '''
import asyncio, dataclasses, itertools, os, tempfile, threading, math, json, subprocess
@dataclasses.dataclass
class P: x: int
async def twice(v): await asyncio.sleep(0); return 2 * v
assert asyncio.run(twice(21)) == 42
with tempfile.NamedTemporaryFile('w', delete=False) as f: f.write('hi')
assert open(f.name).read() == 'hi' and f.name.startswith(os.getcwd())
os.makedirs('a/b'); os.rename(f.name, 'a/b/c.txt'); os.remove('a/b/c.txt')
with open('/dev/null', 'w') as f: f.write('x')
res = []
t = threading.Thread(target=lambda: res.append(math.factorial(10))); t.start(); t.join()
assert res == [3628800] and P(1).x == 1 and len(open('/etc/passwd').read()) > 0
print('ok')
'''
    r = run_sandboxed(code)
    assert r.status == 'passed' and r.stdout == 'ok\n', r


@pytest.mark.parametrize('code', [
    'import os\nwhile True: os.fork()',
    'import subprocess, sys\nwhile True: subprocess.Popen([sys.executable, "-c", "pass"])',
    'import os\nos.system(":(){ :|:& };:")',
    'import multiprocessing as mp\nwhile True: mp.Process(target=print).start()',
    'import _posixsubprocess, sys\nsys.modules.pop("_posixsubprocess")\nimport _posixsubprocess',
    'import os\nwhile True:\n    try: os.fork()\n    except OSError: pass',
], ids=['os.fork', 'subprocess', 'shell', 'multiprocessing', 'fork_exec-reimport', 'fork-caught'])
def test_fork_bombs(code):
    r = run_sandboxed(code, timeout=5)
    assert not r.passed and r.status in ('blocked', 'failed'), r
    assert r.seconds < 3, r.seconds


def test_infinite_loop():
    r = run_sandboxed('while True: pass', timeout=1)
    assert r.status == 'timeout' and 1 <= r.seconds < 3, r


@pytest.mark.parametrize('code', [
    'import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):\n    signal.signal(s, signal.SIG_IGN)\nwhile True: pass',
    'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)',
    'import os\ntry: os.setsid()\nexcept OSError: pass\nwhile True: pass',
], ids=['ignore-signals', 'sleeping', 'setsid'])
def test_escaping_the_time_limit(code):
    r = run_sandboxed(code, timeout=1)
    assert r.status == 'timeout' and r.seconds < 3, r


@pytest.mark.parametrize('code', [
    'x = bytearray(8 * 2**30)',
    'xs = []\nwhile True: xs.append(bytearray(50 * 2**20))',
    'x = "a" * (4 * 2**30)',
])
def test_memory_hog(code):
    r = run_sandboxed(code, memory_mb=256)
    assert r.status == 'memory', r


@pytest.mark.parametrize('tmpl', [
    'import os\nos.remove({f!r})',
    'import shutil\nshutil.rmtree({d!r})',
    'import os\nos.rename({f!r}, "stolen.txt")',
    'import os\nos.replace("x", {f!r}) if open("x", "w").write("evil") else None',
    'open({f!r}, "w").write("evil")',
    'open({f!r}, "a").write("evil")',
    'import pathlib\npathlib.Path({f!r}).unlink()',
    'import os\nos.chmod({f!r}, 0)',
    'import os\nos.truncate({f!r}, 0)',
    'import os\nos.symlink({f!r}, "link")\nopen("link", "w").write("evil")',
    'import os\nos.link({f!r}, "hard")\nopen("hard", "w").write("evil")',
    'import os\nfd = os.open({d!r}, os.O_RDONLY)\nos.unlink("sentinel.txt", dir_fd=fd)',
    'import os\nfd = os.open({d!r}, os.O_RDONLY)\nos.close(os.open("sentinel.txt", os.O_WRONLY | os.O_TRUNC, dir_fd=fd))',
    'import os\nos.chdir({d!r})\nos.remove("sentinel.txt")',
    'import os\nos.chdir("..")\nos.remove({f!r})',
    'open({new!r}, "w").write("evil")',
    'import os, posixpath, builtins\nposixpath.realpath = os.path.realpath = lambda p, **k: os.getcwd()\nbuiltins.isinstance = lambda *a: False\nos.remove({f!r})',
    'import os\nos.mkdir({newdir!r})',
    'import shutil\nshutil.copyfile("/etc/hostname", {new!r})',
    'import shutil, os\nos.mkdir("t"); shutil.move("t", {newdir!r})',
], ids=['remove', 'rmtree', 'rename', 'replace', 'overwrite', 'append', 'pathlib', 'chmod', 'truncate', 'symlink',
        'hardlink', 'dir_fd-unlink', 'dir_fd-open', 'chdir', 'dotdot', 'create', 'monkeypatch', 'mkdir', 'copyfile', 'move'])
def test_deleting_and_writing_outside(host, tmpl):
    f, d = str(host/'sentinel.txt'), str(host)
    r = run_sandboxed(tmpl.format(f=f, d=d, new=str(host/'new.txt'), newdir=str(host/'newdir')))
    assert not r.passed, r
    _intact(host)


def test_writes_to_system_places_fail(tmp_path):
    name = f'llmwb-evil-{os.getpid()}'
    r = run_sandboxed(f'open("/tmp/{name}", "w").write("x")\nopen("/dev/shm/{name}", "w").write("x")')
    assert not r.passed and not Path(f'/tmp/{name}').exists() and not Path(f'/dev/shm/{name}').exists(), r


def test_disk_hog():
    r = run_sandboxed('for i in range(10000):\n    with open(f"f{i}", "wb") as f: f.write(b"x" * (8 << 20))', timeout=10)
    assert not r.passed and r.seconds < 8, r


@pytest.fixture
def listener():
    "A TCP server on 127.0.0.1 that records everything it receives."
    srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(); srv.settimeout(0.2)
    got, stop = [], threading.Event()
    def serve():
        while not stop.is_set():
            try: c, _ = srv.accept()
            except OSError: continue
            got.append(b'<connected>')
            c.settimeout(1)
            try: got.append(c.recv(1000))
            except OSError: pass
            c.close()
    t = threading.Thread(target=serve, daemon=True); t.start()
    yield srv.getsockname()[1], got
    stop.set(); t.join(); srv.close()


@pytest.mark.parametrize('tmpl', [
    'import socket\ns = socket.create_connection(("127.0.0.1", {port}), timeout=2)\ns.sendall(b"exfil")',
    'import socket\ns = socket.socket()\ns.connect(("127.0.0.1", {port}))\ns.sendall(b"exfil")',
    'import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"exfil", ("127.0.0.1", {port}))',
    'import urllib.request\nurllib.request.urlopen("http://127.0.0.1:{port}/exfil", timeout=2)',
    'import socket\nsocket.getaddrinfo("example.com", 80)',
    'import socket\na, b = socket.socketpair()\nb.connect(("127.0.0.1", {port}))',
], ids=['create_connection', 'connect', 'udp', 'urllib', 'dns', 'unix-then-connect'])
def test_sockets(listener, tmpl):
    port, got = listener
    r = run_sandboxed(tmpl.format(port=port))
    time.sleep(0.3)
    assert not r.passed, r
    assert got == [], got


def test_secrets_invisible(monkeypatch, tmp_path):
    monkeypatch.setenv('LLMWB_SANDBOX_SECRET', SECRET)
    home = tmp_path/'home'; (home/'.config').mkdir(parents=True)
    (home/'.netrc').write_text(f'machine x password {SECRET}\n'); (home/'.config'/'token').write_text(SECRET)
    monkeypatch.setenv('HOME', str(home))
    code = f'''
import os
seen = [repr(dict(os.environ)), open('/proc/self/environ').read()]
for p in ['/proc/{os.getpid()}/environ', '/proc/{os.getppid()}/environ', '/proc/1/environ', {str(home/'.netrc')!r},
          {str(home/'.config'/'token')!r}, os.path.expanduser('~/.netrc')]:
    try: seen.append(open(p).read())
    except Exception as e: seen.append(repr(e))
try: seen += os.listdir({str(home)!r})
except Exception as e: seen.append(repr(e))
print(seen)
assert ''.join(reversed({SECRET[::-1]!r})) in ' '.join(seen), 'no secret found'
'''
    r = run_sandboxed(code)
    assert not r.passed, r
    assert SECRET not in r.stdout + r.stderr and 'LLMWB_SANDBOX_SECRET' not in r.stdout + r.stderr
    assert "'.netrc'" not in r.stdout                         # the home dir cannot be listed


@pytest.mark.parametrize('code', [
    'import os\nos.kill(os.getppid(), 9)',
    f'import os\nos.kill({os.getpid()}, 9)',
    f'import os\nos.killpg(os.getpgid({os.getpid()}), 9)',
    'import os\nos.kill(-1, 9)',
], ids=['getppid', 'pid', 'killpg', 'everyone'])
def test_killing_the_parent(code):
    r = run_sandboxed(code)
    assert not r.passed, r                                     # and we are still here to check it


def test_output_flood():
    r = run_sandboxed('while True: print("x" * 10000)', timeout=10, max_output=5000)
    assert not r.passed and r.seconds < 5, r
    assert len(r.stdout) <= 5000 + 100 and len(r.stderr) <= 5000 + 300


def test_ctypes_and_introspection_blocked():
    for code in ['import ctypes\nctypes.CDLL("libc.so.6").fork()', 'import gc\ngc.get_objects()']:
        r = run_sandboxed(code)
        assert r.status == 'blocked', (code, r)


def test_caught_refusal_still_scored_blocked(host):
    r = run_sandboxed(f'import os\ntry: os.remove({str(host/"sentinel.txt")!r})\nexcept PermissionError: pass\nprint("fine")')
    assert r.status == 'blocked' and r.stdout == 'fine\n' and r.refused, r
    _intact(host)


def test_throwaway_dir_is_removed():
    r = run_sandboxed('import os\nprint(os.getcwd())\nopen("f.txt", "w").write("x")\nos.mkdir("d")\nos.chmod("d", 0)')
    assert r.passed, r
    d = r.stdout.strip()
    assert os.path.basename(d).startswith('llmwb-sbx-') and not os.path.exists(d)


def test_run_with_tests_and_early_exit():
    prog = 'def add(a, b):\n    return a + b\n'
    assert run_with_tests(prog, 'assert add(2, 3) == 5').passed
    assert run_with_tests(prog, 'assert add(2, 3) == 6').status == 'failed'
    for cheat in ('exit()', 'import sys; sys.exit(0)', 'import os; os._exit(0)', 'raise SystemExit'):
        r = run_with_tests(prog + cheat, 'assert add(2, 3) == 6')
        assert r.status == 'failed', (cheat, r)


def test_run_many_in_order():
    prog = 'def sq(x):\n    return x * x\n'
    jobs = [(prog, f'assert sq({i}) == {i * i if i % 2 else -1}') for i in range(6)] + [('while True: pass', '')]
    rs = run_many(jobs, workers=3, timeout=1)
    assert [r.status for r in rs] == ['failed', 'passed', 'failed', 'passed', 'failed', 'passed', 'timeout']


@pytest.mark.parametrize('tmpl', [
    'import os\nwhile True:\n    try: os.fork()\n    except OSError: pass',
    'import os\nif os.fork() == 0:\n    os.setsid()\n    while True: pass\nwhile True: pass',
    'import os\nos.remove({f!r})',
    'open({f!r}, "w").write("evil")',
    'open({new!r}, "w").write("evil")',
    'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"exfil")',
    'import os\nos.kill({ppid}, 9)',
    'for i in range(1000):\n    open(f"f{{i}}", "wb").write(b"x" * (8 << 20))',
], ids=['fork-bomb', 'setsid-escape', 'remove', 'overwrite', 'create', 'socket', 'kill-parent', 'disk'])
def test_os_layers_alone_protect_the_host(layers, monkeypatch, host, listener, tmpl):
    "With the audit hook off, the namespaces, uid change and rlimits still hold (where this machine allows them)."
    if layers == 'portable': pytest.skip('this test checks the OS layers')
    monkeypatch.setattr(sandbox, '_LAYERS', {'namespaces': True, 'drop_uid': True, 'audit_hook': False})
    iso = run_sandboxed('pass').isolation
    if not (iso['netns'] and iso['mountns'] and iso['pidns'] and iso['readonly']): pytest.skip(f'no namespaces here: {iso}')
    port, got = listener
    r = run_sandboxed(tmpl.format(f=str(host/'sentinel.txt'), new=str(host/'new.txt'), port=port, ppid=os.getpid()), timeout=2)
    time.sleep(0.2)
    assert not r.passed and not r.isolation['audit_hook'], r
    assert got == [] and r.seconds < 4
    _intact(host)
