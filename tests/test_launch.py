"""`llmwb launch`: what is submitted to Slurm (submitit's own sbatch file) and SkyPilot (a task SkyPilot
itself loads), how each maps its variables onto the multi-node contract, and a two-node run on 127.0.0.1 that
trains like one node with two processes."""

import json, os, shutil, socket, subprocess, sys
from pathlib import Path
import pytest
from conftest import LLMWB, MICRO, llmwb, make_workspace, read_run, run_dirs
from llm_workbench.cluster import SKY_CONTRACT
from llm_workbench.nodes import NodeEnv, join_command
from llm_workbench.train.loop import read_metrics


def project_workspace(path: Path) -> Path:
    "A workspace that looks like the project's checkout (a Makefile: SkyPilot's setup runs make install)."
    ws = make_workspace(path, tracking='none')
    (ws / 'Makefile').write_text('install:\n')
    (ws / 'configs').mkdir()
    shutil.copy(MICRO, ws / 'configs' / 'micro.yaml')
    return ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def node_env(**llmwb_vars) -> dict:
    "One simulated node's environment: ours without LLMWB_* settings, one thread a process, the node's vars."
    env = {k: v for k, v in os.environ.items() if not k.startswith('LLMWB_')}
    return env | dict(OMP_NUM_THREADS='1') | {k: str(v) for k, v in llmwb_vars.items()}


# --- SkyPilot -----------------------------------------------------------------------------------------------


def test_skypilot_task_loads_in_skypilot(tmp_path):
    "The dry run's YAML is a task SkyPilot accepts: nodes, accelerators, setup, run, envs, mounted storage."
    import sky  # the dev extra installs it (`make install`)

    ws = project_workspace(tmp_path / 'ws')
    r = llmwb(
        ws,
        'launch',
        'configs/micro.yaml',
        '--target',
        'skypilot',
        '--nodes',
        '2',
        '--gpus-per-node',
        '8',
        '--storage',
        's3://team-bucket/llmwb',
        '--mount',
        '/data=s3://team-bucket/corpus',
        '--idle-minutes',
        '20',
        '--dry-run',
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    head, _, rest = r.stdout.partition('\n')
    text, _, command = rest.partition('# then:\n')
    assert (
        head.startswith(f'# {ws / "launches"}') and not (ws / 'launches').exists()
    )  # a dry run writes nothing
    assert command.split() == [
        'sky',
        'launch',
        '--cluster',
        'llmwb-micro',
        head[2:],
        '--idle-minutes-to-autostop',
        '20',
        '--down',
        '--yes',
        '--detach-run',
    ]
    (tmp_path / 'task.yaml').write_text(text)
    task = sky.Task.from_yaml(str(tmp_path / 'task.yaml'))
    assert task.num_nodes == 2 and task.name == 'llmwb-micro' and task.workdir == str(ws)
    (res,) = task.resources
    assert res.accelerators == {'H100': 8}
    assert 'make install PY="$PY"' in task.setup
    run = task.run.splitlines()
    assert run[-1].startswith('.venv/bin/llmwb run configs/micro.yaml --run-dir /llmwb/runs/'), task.run
    assert run[-1].endswith(
        '--no-progress --set train.processes=8 --set sft.processes=8 --set align.processes=8'
    )
    assert task.envs['LLMWB_MASTER_PORT'] == '29500' and task.envs['LLMWB_REPORTS_PATH'] == '/llmwb/reports'
    assert task.storage_mounts['/llmwb'].source == 's3://team-bucket/llmwb'
    assert task.storage_mounts['/llmwb'].mode.value == 'MOUNT_CACHED'
    mounts = {**(task.file_mounts or {}), **{k: v.source for k, v in task.storage_mounts.items()}}
    assert mounts['/data'] == 's3://team-bucket/corpus'


def test_skypilot_variables_become_the_contract():
    "The run script's first lines, run by bash with SkyPilot's variables, give a node the LLMWB_* contract."
    sky_env = dict(
        SKYPILOT_NUM_NODES='2',
        SKYPILOT_NODE_RANK='1',
        SKYPILOT_NODE_IPS='10.0.0.4\n10.0.0.5',
        SKYPILOT_TASK_ID='sky-2026-12-06-10-00-00-000001_llmwb-micro_1',
        PATH=os.environ['PATH'],
    )
    script = SKY_CONTRACT + 'env | grep ^LLMWB_ | sort\n'
    out = subprocess.run(
        ['bash', '-c', script], env=sky_env, capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == [
        'LLMWB_LAUNCH_ID=sky-sky-2026-12-06-10-00-00-000001_llmwb-micro_1',
        'LLMWB_MASTER_ADDR=10.0.0.4',
        'LLMWB_NNODES=2',
        'LLMWB_NODE_RANK=1',
    ]


# --- Slurm --------------------------------------------------------------------------------------------------


def test_slurm_dry_run_prints_submitits_sbatch_file(tmp_path):
    "The dry run prints the sbatch file submitit renders (no cluster needed) and what each node's task runs."
    ws = project_workspace(tmp_path / 'ws')
    r = llmwb(
        ws,
        'launch',
        'configs/micro.yaml',
        '--target',
        'slurm',
        '--nodes',
        '2',
        '--gpus-per-node',
        '4',
        '--partition',
        'gpu',
        '--time',
        '1-00:00:00',
        '--account',
        'llm',
        '--run-dir',
        'shared/run1',
        '--dry-run',
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    folder = ws / 'shared' / 'run1' / 'slurm'
    for directive in (
        '--nodes=2',
        '--ntasks-per-node=1',
        '--gpus-per-node=4',
        '--partition=gpu',
        '--account=llm',
        '--time=1440',
        '--requeue',
        '--signal=USR2@120',
        '--job-name=llmwb-micro',
        f'--output={folder}/%j_0_log.out',
    ):
        assert f'#SBATCH {directive}' in lines, (directive, r.stdout)
    srun = next(line for line in lines if line.startswith('srun '))
    assert srun.startswith(f'srun --unbuffered --output {folder}/%j_%t_log.out --kill-on-bad-exit=1 ')
    assert srun.endswith(f'-u -m submitit.core._submit {folder}'), srun
    task = lines[-1].strip()
    assert task == (
        f'{LLMWB} run {ws}/configs/micro.yaml --run-dir {ws}/shared/run1 --no-progress '
        '--set train.processes=4 --set sft.processes=4 --set align.processes=4'
    ), task
    assert not (ws / 'shared').exists() and not run_dirs(ws)  # nothing submitted, nothing written


def test_slurm_task_gives_the_torchrun_line(tmp_path):
    "In a Slurm task (submitit's view of SLURM_*), node 1 joins node 0's torchrun with the contract's flags."
    code = (
        "import json\nfrom llm_workbench.cluster import slurm_contract\n"
        "from llm_workbench.nodes import node_env, join_command\nenv = slurm_contract()\n"
        "print(json.dumps([env, join_command('/shared/r1', 'sft', 4, node_env(env))]))"
    )
    slurm = dict(
        SUBMITIT_EXECUTOR='slurm',
        SLURM_JOB_ID='73',
        SLURM_JOB_NUM_NODES='2',
        SLURM_NODEID='1',
        SLURM_JOB_NODELIST='gpu-a[07-08]',
        SLURM_PROCID='1',
        SLURM_NTASKS='2',
        SLURM_RESTART_COUNT='1',
    )
    r = subprocess.run([sys.executable, '-c', code], env=node_env(**slurm), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    env, cmd = json.loads(r.stdout)
    assert env['LLMWB_MASTER_ADDR'] == 'gpu-a07' and env['LLMWB_LAUNCH_ID'] == 'slurm-73-1'
    port = env['LLMWB_MASTER_PORT']
    flags = ['--nnodes', '2', '--node-rank', '1', '--master-addr', 'gpu-a07', '--master-port', port]
    assert cmd[1:14] == ['-m', 'torch.distributed.run', *flags, '--nproc-per-node', '4', '--rdzv-conf'], cmd
    assert cmd[-6:] == ['-m', 'llm_workbench.train.launch', '--run-dir', '/shared/r1', '--stage', 'sft'], cmd


# --- two nodes on 127.0.0.1 ---------------------------------------------------------------------------------

RECIPE = MICRO.read_text().replace('max_steps: 30', 'max_steps: 20').replace('log_every: 5', 'log_every: 1')


def losses(run_dir: Path) -> dict:
    return {r['step']: r['loss'] for r in read_metrics(run_dir / 'pretrain/metrics.jsonl') if 'loss' in r}


def assert_same_losses(a: dict, b: dict):
    assert sorted(a) == sorted(b) and len(a) >= 20, (sorted(a), sorted(b))
    for step in a:
        assert abs(a[step] - b[step]) < 1e-3 * max(1.0, abs(a[step])), (step, a[step], b[step])


@pytest.fixture(scope='module')
def one_node_two_processes(tmp_path_factory):
    "The reference: curate and pretrain on one node with two processes (torchrun --standalone), batch 4 each."
    ws = make_workspace(tmp_path_factory.mktemp('one-node'), tracking='none')
    (ws / 'r.yaml').write_text(
        RECIPE.replace('  batch_size: 8\n  max_steps', '  batch_size: 4\n  processes: 2\n  max_steps')
    )
    r = llmwb(ws, 'run', 'r.yaml', '--stages', 'curate,pretrain', '--no-progress')
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    (rd,) = run_dirs(ws)
    return ws, rd


def test_two_torchrun_nodes_match_one_node(one_node_two_processes, tmp_path):
    "Two torchrun 'nodes' (static rendezvous on 127.0.0.1, a process each) train like one with two processes."
    ws, ref = one_node_two_processes
    rd = tmp_path / 'run'
    shutil.copytree(
        ref, rd, ignore=shutil.ignore_patterns('checkpoints', 'model', 'metrics.jsonl', 'summary.json')
    )
    port = free_port()
    nodes = [
        subprocess.Popen(
            join_command(rd, 'pretrain', 1, NodeEnv(2, rank, '127.0.0.1', port, 'sim')),
            cwd=ws,
            env=node_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (1, 0)  # the joining node first: it waits for node 0's rendezvous
    ]
    outs = [p.communicate(timeout=600)[0] for p in nodes]
    assert (rd / 'pretrain/model/model.safetensors').is_file(), outs[1][-4000:] + outs[0][-4000:]
    assert_same_losses(losses(ref), losses(rd))


def test_two_llmwb_nodes_match_one_node(one_node_two_processes, tmp_path):
    """The contract end to end: `llmwb run` on two 'nodes' (LLMWB_NNODES=2, one process each) on one run dir.

    Node 0 curates, pretrains under torchrun --nnodes 2 and writes run.json; node 1 runs no stage notebook,
    joins node 0's pretraining with its node rank and ends with node 0's status; the losses equal one node's
    with two processes."""
    _, ref = one_node_two_processes
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    (ws / 'r.yaml').write_text(RECIPE.replace('  batch_size: 8\n  max_steps', '  batch_size: 4\n  max_steps'))
    rd = ws / 'runs' / 'two-nodes'
    contract = dict(
        LLMWB_NNODES=2, LLMWB_MASTER_ADDR='127.0.0.1', LLMWB_MASTER_PORT=free_port(), LLMWB_LAUNCH_ID='t1'
    )
    args = [str(LLMWB), 'run', 'r.yaml', '--run-dir', str(rd), '--stages', 'curate,pretrain', '--no-progress']
    nodes = [
        subprocess.Popen(
            args,
            cwd=ws,
            env=node_env(LLMWB_NODE_RANK=rank, **contract),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (1, 0)
    ]
    outs = [p.communicate(timeout=900)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs[1][-4000:] + '\n-----\n' + outs[0][-4000:]
    assert 'node 1: joining pretrain' in outs[0] and "node 0's run partial" in outs[0], outs[0][-3000:]
    run = read_run(rd)
    assert run['invocations'] == 1  # node 1 never wrote run.json
    assert run['stages']['pretrain']['status'] == 'completed' and run['config']['train']['processes'] == 1
    board = json.loads((rd / 'stages' / 'nodes.json').read_text())
    assert board == board | dict(launch_id='t1', nnodes=2, status='partial')
    assert board['stages'] == dict(curate='completed', pretrain='completed')
    assert_same_losses(losses(ref), losses(rd))
