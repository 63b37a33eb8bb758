"The guided tutorials (`llm_workbench/tutorials/`) executed top to bottom with papermill in a fresh workspace, as a newcomer runs them."

import json, re, tomllib
from pathlib import Path
import nbformat, papermill as pm, pytest
from conftest import ROOT, make_workspace, read_run, run_dirs

TUTORIALS = ROOT / 'llm_workbench' / 'tutorials'
NAMES = [
    '01_curate_your_own_data',
    '02_finetune_a_code_assistant',
    '03_align_with_preferences',
    '04_compare_two_runs',
    '05_close_the_loop',
]
WIDGET = 'application/vnd.jupyter.widget-view+json'
PLOTLY = 'application/vnd.plotly.v1+json'


@pytest.fixture(scope='module')
def ws(tmp_path_factory):
    "One workspace for the module's tutorials (each tutorial makes its own runs; 03 may continue 02's run)."
    return make_workspace(tmp_path_factory.mktemp('tutorials'), tracking='none')


def execute(name: str, ws: Path, **params) -> nbformat.NotebookNode:
    "Run tutorial `name` with papermill (cwd: the workspace) and return the executed notebook; a failing cell fails the test."
    out = ws / 'executed' / f'{name}.ipynb'
    out.parent.mkdir(exist_ok=True)
    pm.execute_notebook(
        str(TUTORIALS / f'{name}.ipynb'),
        str(out),
        parameters=dict(workspace=str(ws), **params),
        kernel_name='python3',
        cwd=str(ws),
        progress_bar=False,
        execution_timeout=600,
    )
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs if o.output_type == 'error']
    assert not errors, errors
    assert not [
        c for c in nb.cells if c.cell_type == 'code' and c.get('execution_count') is None and c.source.strip()
    ], 'cells left unexecuted'
    return nb


def cell(nb, start: str):
    "The code cell whose source starts with `start`."
    (c,) = [c for c in nb.cells if c.cell_type == 'code' and c.source.startswith(start)]
    return c


def text(c) -> str:
    "All text a cell printed or displayed (stdout/stderr, text/plain, text/html)."
    out = []
    for o in c.outputs:
        if o.output_type == 'stream':
            out.append(o.text)
        elif 'data' in o:
            out += [o.data[m] for m in ('text/plain', 'text/html', 'text/markdown') if m in o.data]
    return '\n'.join(out)


def mimes(c) -> list:
    return [m for o in c.outputs for m in o.get('data', {})]


def new_runs(ws: Path, name: str) -> list:
    return [d for d in run_dirs(ws) if read_run(d)['config']['name'] == name]


def test_tutorials_are_clean_parameterised_notebooks():
    "Every tutorial starts with its title, has a tagged parameters cell, no outputs, and the kernel JupyterLab and papermill find."
    for name in NAMES:
        nb = nbformat.read(TUTORIALS / f'{name}.ipynb', as_version=4)
        assert nb.cells[0].cell_type == 'markdown' and nb.cells[0].source.startswith('# ')
        (params,) = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
        assert "recipe: str = ''" in params.source and "workspace: str = ''" in params.source
        assert all(not c.get('outputs') for c in nb.cells if c.cell_type == 'code')
        assert nb.metadata['kernelspec']['name'] == 'python3'


def test_tutorials_are_package_data():
    "A pip-installed workbench has its tutorials too (`llmwb lab` copies them from the package)."
    data = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools']['package-data'][
        'llm_workbench'
    ]
    assert 'tutorials/*.ipynb' in data, (
        'add "tutorials/*.ipynb" to [tool.setuptools.package-data] so pip installs the tutorials'
    )


def test_01_curate_your_own_data(ws):
    nb = execute(NAMES[0], ws)
    (rd,) = new_runs(ws, 'my-data')
    run = read_run(rd)
    assert (
        run['stages']['curate']['status'] == 'completed' and run['stages']['pretrain']['status'] == 'pending'
    )
    q = [json.loads(l) for l in (rd / 'data' / 'quarantine.jsonl').read_text().splitlines()]
    assert {r['reason'] for r in q} == {
        'exact_duplicate',
        'near_duplicate',
        'too_short',
        'license_not_allowed',
        'license_unknown',
        'bad_json',
        'contaminated',
    }
    ex = cell(nb, 'from llm_workbench.ui.data import DataExplorer')
    assert WIDGET in mimes(ex) and '14 records in, 7 kept, 7 removed' in text(
        ex
    )  # the live widget and its snapshot
    assert '14 records in = 7 kept + 7 removed' in text(cell(nb, "c = ex.manifest['counts']"))
    dup = text(cell(nb, 'reason = '))
    assert (
        'duplicate of code:geometry.jsonl:1' in dup and 'near_duplicate' not in dup
    )  # filtered to one reason
    shown = text(cell(nb, "first = redacted['id']"))
    assert 'llmwb-redaction' in shown and '&lt;SECRET&gt;' in shown and 'sk_live_' not in shown
    import pyarrow.parquet as pq

    kept = '\n'.join(
        t
        for s in ('train', 'val', 'test')
        for t in pq.read_table(rd / 'data' / f'{s}.parquet')['text'].to_pylist()
    )
    assert '<EMAIL>' in kept and 'maria.lopez@mailhost.org' not in kept and '84.23.112.9' not in kept
    assert mimes(cell(nb, 'ex.filter()')).count(PLOTLY) == 3  # funnel, reasons, licenses
    assert '# Data card: my-data' in text(cell(nb, 'Markdown('))


def test_02_finetune_a_code_assistant(ws):
    nb = execute(NAMES[1], ws)
    (rd,) = new_runs(ws, 'code-assistant')
    st = read_run(rd)['stages']
    assert [st[s]['status'] for s in ('curate', 'pretrain', 'sft', 'align')] == [
        'completed',
        'completed',
        'completed',
        'pending',
    ]
    assert st['pretrain']['metrics']['train_loss'] < 5.5  # learned something: ln(512) = 6.24 at the start
    counts = eval(text(cell(nb, 'pairs = ')).splitlines()[0])
    assert counts['train'] > 20 and counts['test'] > 0
    assert WIDGET in mimes(cell(nb, 'from llm_workbench.ui.runs import RunBrowser'))
    assert mimes(cell(nb, "rb.curves_figure('pretrain'")).count(PLOTLY) == 2
    pg = cell(nb, 'from llm_workbench.ui.playground import Playground')
    assert (
        "models: ['untrained', 'pretrain', 'sft']" in text(pg)
        and WIDGET in mimes(pg)
        and 'llmwb-token' in text(pg)
    )
    tokens = text(cell(nb, "pd.DataFrame(samples[0]['tokens'])"))
    assert 'logprob' in tokens and 'rank' in tokens
    cross = text(cell(nb, 'both = pg.compare('))
    assert '--- sft ---' in cross and '--- pretrain ---' in cross and 'under pretrain' in cross
    assert re.search(r'completion by sft\s+-?\d', cross)


def test_03_align_with_preferences(ws):
    "Continues the run of tutorial 02 when it is there (its finished stages are skipped), else runs every stage itself."
    prev = new_runs(ws, 'code-assistant')
    nb = execute(NAMES[2], ws, run_dir=str(prev[0]) if prev else '')
    runs = {read_run(d)['config']['align']['method']: d for d in new_runs(ws, 'aligned-assistant')}
    assert sorted(runs) == ['dpo', 'simpo']  # section 8 aligns the same SFT model with a second method
    rd = runs['dpo']
    run = read_run(rd)
    assert run['status'] == 'completed'
    assert all(run['stages'][s].get('skipped') for s in ('curate', 'pretrain', 'sft')) == bool(
        prev
    )  # same recipe up to SFT
    kinds = text(cell(nb, 'prefs = '))
    assert all(k in kinds for k in ('broken', 'wrong_return', 'eval', 'shell', 'secret'))
    assert re.search(
        r'held-out preference accuracy: [\d.]+ before -> [\d.]+ after',
        text(cell(nb, "m = run['stages']['align']")),
    )
    assert mimes(cell(nb, "m = run['stages']['align']")).count(PLOTLY) == 1
    assert WIDGET in mimes(cell(nb, 'from llm_workbench.ui.playground import Playground'))
    assert re.search(
        r'margin > 0 on \d+ of [1-9]\d* held-out pairs',
        text(cell(nb, 'from llm_workbench.eval.loglik import loglikelihood')),
    )
    gate = json.loads((rd / 'release' / 'gate.json').read_text())
    assert ('GATE PASSED' if gate['passed'] else 'GATE FAILED') in text(cell(nb, 'gate = json.loads('))
    assert 'aligned-assistant' in text(cell(nb, 'from llm_workbench.release.registry import Registry'))
    assert (rd / 'release' / 'bundle' / 'README.md').is_file()
    simpo = read_run(runs['simpo'])
    assert simpo['status'] == 'completed' and simpo['stages']['align']['metrics']['method'] == 'simpo'
    if not prev:  # the first run filled the stage cache: the second one aligns the very same SFT model
        assert all(simpo['stages'][s].get('reused') for s in ('curate', 'pretrain', 'sft')), simpo['stages']
    side = text(cell(nb, 'simpo = run_pipeline('))
    assert 'simpo' in side and 'dpo' in side and 'reward_accuracy' in side
    assert mimes(cell(nb, 'rb.refresh()')).count(PLOTLY) == 1


def test_04_compare_two_runs(ws):
    nb = execute(NAMES[3], ws)
    runs = [read_run(d) for d in new_runs(ws, 'lr-sweep')]
    trial_runs = [r for r in runs if r.get('sweep_id')]
    runs = [r for r in runs if not r.get('sweep_id')]  # part 2's runs (part 5's trials use the same recipe)
    assert len(runs) == 2 and sorted(r['config']['train']['lr'] for r in runs) == pytest.approx([0.001, 0.01])
    assert (
        runs[0]['stages']['curate']['metrics']['dataset_sha256']
        == runs[1]['stages']['curate']['metrics']['dataset_sha256']
    )
    assert WIDGET in mimes(cell(nb, 'from llm_workbench.ui.runs import RunBrowser'))
    diff = text(cell(nb, 'diff = rb.config_diff()'))
    assert (
        'train.lr' in diff and 'train.max_steps' not in diff and 'seed' not in diff
    )  # exactly the one setting
    assert 'pretrain.val_loss' in text(cell(nb, 'metrics = rb.metrics_table()'))
    assert mimes(cell(nb, "rb.curves_figure('pretrain'")).count(PLOTLY) == 1
    links = re.findall(r'(/\S+\.html)', text(cell(nb, 'for run_id, pages in rb.report_links()')))
    assert len(links) == 6 and all(Path(p).is_file() for p in links)  # index, curate, pretrain per run
    # part 5: a grid sweep over two SFT keys, its shared stages taken from the stage cache, and its report
    (d,) = [p for p in (ws / 'sweeps').iterdir() if p.name.startswith('tutorial-sft-')]
    summary = json.loads((d / 'sweep.json').read_text())
    trials = summary['trials']
    assert summary['status'] == 'completed' and summary['stop_reason'] == 'max_trials: 3 trials of 3'
    assert len(trials) == 3 and all(t['state'] == 'COMPLETE' and t['values'] for t in trials), trials
    assert len({tuple(sorted(t['params'].items())) for t in trials}) == 3
    assert all(set(t['params']) == {'sft.lr', 'sft.warmup_steps'} for t in trials)
    assert all(t['reused'] == ['curate', 'pretrain'] for t in trials)  # run A's stages, linked from the cache
    assert sorted(r['run_id'] for r in trial_runs) == sorted(t['run_id'] for t in trials)
    run_a = next(r for r in runs if r['config']['train']['lr'] == pytest.approx(0.001))
    assert {r['stages']['pretrain']['reused']['from_run'] for r in trial_runs} == {run_a['run_id']}
    report = d / 'report.html'
    assert report.is_file() and 'Optimisation history' in report.read_text()
    assert str(report) in text(cell(nb, 'from IPython.display import HTML'))
    assert 'sft_eval_loss' in text(cell(nb, 'import pandas as pd'))
    assert (d / 'selected.yaml').is_file()
