"Runs under faults and concurrency: a locked run dir, source edits that re-run curate, a full disk that fails cleanly."

import json, os, random, shutil, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import LLMWB, MICRO, llmwb, make_workspace, read_run


def _docs(n: int, seed: int = 0) -> str:
    "n distinct JSONL records of plausible Python, long enough to pass the default filters."
    rng = random.Random(seed)
    words = [
        'alpha',
        'bravo',
        'charlie',
        'delta',
        'echo',
        'foxtrot',
        'golf',
        'hotel',
        'india',
        'juliet',
        'kilo',
        'lima',
    ]
    rows = []
    for i in range(n):
        name = '_'.join(rng.sample(words, 3)) + f'_{i}'
        doc = ' '.join(rng.sample(words, 8))
        text = f'def {name}(x, y):\n    """Return {doc}."""\n    total = x * {i + 2} + y\n    return total - {i}\n'
        rows.append(json.dumps({'text': text}))
    return '\n'.join(rows) + '\n'


def _recipe(ws: Path) -> Path:
    r = ws / 'own.yaml'
    r.write_text(
        'name: own\ndata:\n  sources:\n    - {name: mine, kind: jsonl, path: docs.jsonl, license: MIT}\n'
        '  canaries: 0\n'
    )
    return r


def test_editing_a_source_reruns_curate(tmp_path):
    "The curate stage's inputs hash covers the contents of its sources, not only their paths."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    (ws / 'docs.jsonl').write_text(_docs(30))
    recipe = _recipe(ws)
    r = llmwb(ws, 'run', recipe, '--stages', 'curate', '--run-dir', 'runs/r', '--no-progress')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert read_run(ws / 'runs/r')['stages']['curate']['metrics']['records_in'] == 30
    r = llmwb(ws, 'run', recipe, '--stages', 'curate', '--run-dir', 'runs/r', '--no-progress')
    assert 'unchanged' in r.stdout and 'skipped' in r.stdout  # same contents: skipped
    (ws / 'docs.jsonl').write_text(_docs(10))  # same path, 10 records now
    r = llmwb(ws, 'run', recipe, '--stages', 'curate', '--run-dir', 'runs/r', '--no-progress')
    assert r.returncode == 0 and '[curate] running' in r.stdout, r.stdout[-2000:]
    st = read_run(ws / 'runs/r')['stages']['curate']
    assert st['metrics']['records_in'] == 10 and 'source:mine' in st['files']


def test_a_second_invocation_on_a_busy_run_dir_is_refused(tmp_path):
    "Two `llmwb run` on one run dir: the second is refused at once and the first's record stays its own."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
    first = subprocess.Popen(
        [
            str(LLMWB),
            'run',
            str(MICRO),
            '--stages',
            'curate,pretrain',
            '--run-dir',
            'runs/r',
            '--no-progress',
        ],
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lock = ws / 'runs/r/stages/.lock'
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.is_file() and 'pid' in lock.read_text()):
        time.sleep(0.2)
    assert lock.is_file() and f'pid {first.pid}' in lock.read_text()
    second = llmwb(ws, 'run', MICRO, '--stages', 'curate', '--run-dir', 'runs/r', '--no-progress')
    assert second.returncode == 2 and 'is in use by another llmwb run (pid' in second.stderr, second.stderr
    out, _ = first.communicate(timeout=900)
    assert first.returncode == 0, out[-3000:]
    run = read_run(ws / 'runs/r')
    assert run['status'] == 'partial' and run['invocations'] == 1
    assert [run['stages'][s]['status'] for s in ('curate', 'pretrain')] == ['completed', 'completed']


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_full_disk_fails_the_stage_cleanly_and_a_rerun_resumes(tmp_path):
    "ENOSPC in a stage: run.json says failed and what is full, no temp files remain; freeing space and rerunning resumes."
    disk = tmp_path / 'disk'
    if os.geteuid() != 0 or not _tmpfs(disk, '64m'):
        pytest.skip('needs root to mount a small tmpfs')
    try:
        ws = make_workspace(tmp_path / 'ws', tracking='none')
        (ws / 'settings.ini').write_text(
            f"[llmwb]\nruns_path = {disk}/runs\nreports_path = reports\n"
            f"registry_path = registry\ntracking = none\n"
        )
        r = llmwb(ws, 'run', MICRO, '--stages', 'curate', '--run-dir', disk / 'runs/r', '--no-progress')
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        free = shutil.disk_usage(disk).free
        with open(disk / 'filler', 'wb') as f:  # ~1 MiB left: no room to start at all
            f.write(b'\0' * (free - (1 << 20)))
        r = llmwb(
            ws, 'run', MICRO, '--stages', 'curate,pretrain', '--run-dir', disk / 'runs/r', '--no-progress'
        )
        assert r.returncode == 2 and 'no space left on the device holding' in r.stderr, r.stderr[-2000:]
        assert read_run(disk / 'runs/r')['status'] == 'partial'  # the record is untouched
        os.truncate(disk / 'filler', free - (5 << 20))  # room for the reserve, not for pretrain
        r = llmwb(
            ws, 'run', MICRO, '--stages', 'curate,pretrain', '--run-dir', disk / 'runs/r', '--no-progress'
        )
        assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
        assert 'no space left on the device holding' in r.stdout
        run = read_run(disk / 'runs/r')
        assert run['status'] == 'failed' and run['stages']['pretrain']['status'] == 'failed'
        assert 'no space left on the device holding' in run['stages']['pretrain']['error']
        leftovers = [p for p in (disk / 'runs/r').rglob('*') if '.tmp' in p.name or p.name == '.staging']
        assert leftovers == [], leftovers
        (disk / 'filler').unlink()
        r = llmwb(
            ws, 'run', MICRO, '--stages', 'curate,pretrain', '--run-dir', disk / 'runs/r', '--no-progress'
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert '[curate] unchanged' in r.stdout
        run = read_run(disk / 'runs/r')
        assert run['status'] == 'partial' and run['stages']['pretrain']['status'] == 'completed'
    finally:
        subprocess.run(['umount', '-l', str(disk)], capture_output=True)
