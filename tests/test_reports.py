"Stage reports read as reports: findings first, code folded, no progress residue, no local paths, plotly drawn offline."

import re, sys
from html.parser import HTMLParser
from pathlib import Path
import nbformat, pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from llm_workbench.core import RunLayout
from llm_workbench.report import render_html, stage_findings
from test_browser import chromium, dump_dom  # noqa: F401 (chromium is a fixture)

RESIDUE = [
    '?doc/s',
    '?it/s',
    'it/s]',
    'examples/s]',
    '0%|',
    '100%|',
    'Loading weights',
    'Writing model shards',
    '<progress',
]
FOLDED = '<details class="llmwb-code">'
FINDINGS = '<section class="llmwb-findings"'


@pytest.fixture(scope='module')
def reports(micro_run):
    "The micro run's executed stage notebooks rendered as the runner renders them: {stage: (html path, page)}."
    ws, _, rd = micro_run
    out = {}
    for nb in sorted(RunLayout(rd).notebooks.glob('*.ipynb')):
        stage = nb.stem.split('_', 1)[1]
        path = render_html(
            nb,
            ws / 'reports-check' / rd.name / f'{stage}.html',
            title=f'{rd.name}: {stage}',
            back_link='index.html',
            findings=stage_findings(rd, stage),
            run_dir=rd,
            root=ws,
        )
        out[stage] = (path, path.read_text(encoding='utf-8'))
    assert {'curate', 'pretrain'} <= set(out)
    return out


class Folds(HTMLParser):
    "For each code input: whether it sits in a `<details>`, with every `<details>` around it collapsed."

    def __init__(self):
        super().__init__()
        self.stack, self.inputs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'details':
            self.stack.append('open' in a)
        if tag == 'div' and 'jp-InputArea-editor' in (a.get('class') or ''):
            self.inputs.append(bool(self.stack) and not any(self.stack))

    def handle_endtag(self, tag):
        if tag == 'details' and self.stack:
            self.stack.pop()


def folded(page: str) -> bool:
    "Whether the page has code inputs and every one is in a collapsed `<details>`."
    folds = Folds()
    folds.feed(page)
    return bool(folds.inputs) and all(folds.inputs)


def test_findings_lead_each_report(micro_run, reports):
    _, _, rd = micro_run
    for stage, (_, page) in reports.items():
        body = page[page.index('<body') :]
        lead = body.index(FINDINGS)
        assert lead < body.index('<nav class="llmwb-toc">') < body.index(FOLDED), stage
        assert lead < body.index('jp-CodeCell'), stage
        panel = body[lead : body.index('</section>', lead)]
        metrics = stage_findings(rd, stage)['metrics']
        assert metrics, f'{stage} recorded no metrics'
        for name in metrics:
            assert f'title="{name}"' in panel, (stage, name)
        if stage == 'release':
            assert 'Release gate: ' in panel
    toc = reports['curate'][1].split('<nav class="llmwb-toc">')[1].split('</nav>')[0]
    assert (
        'href="#The-funnel"' in toc and 'Known limits' not in toc
    )  # the notebook's headings, not the data card's


def test_code_is_folded_and_parameters_hidden(reports):
    for stage, (_, page) in reports.items():
        assert folded(page), f'{stage}: a code input is not in a collapsed <details>'
        assert 'celltag_parameters' not in page and 'celltag_injected-parameters' not in page, stage
        assert '# Parameters' not in page, stage
        assert 'jp-OutputArea-output' in page, stage  # outputs stay visible


def test_link_to_the_executed_notebook(reports):
    for stage, (path, page) in reports.items():
        (link,) = re.findall(r'<p class="llmwb-audit">[^<]*<a href="([^"]+)"', page)
        assert not link.startswith('/') and (path.parent / link).resolve().is_file(), (stage, link)


def test_no_progress_residue(reports):
    for stage, (_, page) in reports.items():
        for s in RESIDUE:
            assert s not in page, (stage, s)
    assert 'Training Loss' in reports['pretrain'][1]  # the Trainer's table stays, its bar goes


def test_no_local_paths(micro_run, reports):
    ws, _, rd = micro_run
    paths = {str(ws), str(ws.resolve()), str(rd), str(rd.resolve()), sys.prefix, str(Path.home())}
    for stage, (_, page) in reports.items():
        for p in paths:
            assert p not in page, (stage, p)
        assert '&lt;run_dir&gt;' in page, stage


def test_real_outputs_and_tracebacks_stay(tmp_path):
    "A real kernel: tqdm bars (widget and text), a print, a warning and an error; the report keeps all but the bars."
    code = (
        "import sys, warnings, tqdm, tqdm.auto\n"
        "for _ in tqdm.auto.tqdm(range(3), desc='Loading weights'): pass\n"
        "for _ in tqdm.tqdm(range(3), desc='Map', file=sys.stderr): pass\n"
        "print('kept 80 of 100 records')\n"
        "warnings.warn('a real warning')"
    )
    cells = [
        new_markdown_cell('# Demo'),
        new_code_cell(code),
        new_code_cell("raise ValueError('the real error')"),
    ]
    nb = new_notebook(cells=cells)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name='python3',
        allow_errors=True,
        resources=dict(metadata=dict(path=str(tmp_path))),
    )
    client.execute()
    assert 'Map: 100%|' in ''.join(
        o.get('text', '') for o in nb.cells[1].outputs
    )  # the run did leave residue
    nbformat.write(nb, tmp_path / 'demo.ipynb')
    page = render_html(tmp_path / 'demo.ipynb', tmp_path / 'demo.html').read_text()
    shown = re.sub(f'{FOLDED}.*?</details>', '', page, flags=re.S)  # what shows without opening the code
    assert 'kept 80 of 100 records' in shown and 'a real warning' in shown
    assert 'ValueError' in shown and 'the real error' in shown
    for s in RESIDUE:
        assert s not in shown, s


@pytest.mark.parametrize('stage,n_plots', [('curate', 2), ('pretrain', 1)])
def test_reports_draw_in_chromium(chromium, reports, tmp_path, stage, n_plots):
    path, _ = reports[stage]
    dom = dump_dom(chromium, path, tmp_path)
    assert dom.count('class="main-svg"') >= n_plots and dom.count('js-plotly-plot') >= n_plots
    assert dom.index('class="llmwb-findings"') < dom.index('class="llmwb-code"')
    assert '<details class="llmwb-code" open' not in dom


def test_runner_reports_read_as_reports(micro_run):
    "The reports the runner wrote itself (it passes the findings and the run dir to render_html)."
    ws, _, rd = micro_run
    pages = sorted((ws / 'reports' / rd.name).glob('*.html'))
    assert {p.stem for p in pages} >= {'curate', 'pretrain', 'index'}
    for path in pages:
        if path.stem == 'index':
            continue
        page = path.read_text(encoding='utf-8')
        assert folded(page), path.name
        for s in RESIDUE:
            assert s not in page, (path.name, s)
        assert str(rd) not in page and str(rd.resolve()) not in page, path.name
        body = page[page.index('<body') :]
        assert body.index(FINDINGS) < body.index(FOLDED), path.name
