"The lab explorers in an executed notebook: live widget output for JupyterLab, and a static snapshot in the exported HTML page."

import json, shutil, subprocess
import nbformat, pytest
from nbclient import NotebookClient
from llm_workbench.config import RunConfig, DataConfig, SourceConfig
from llm_workbench.data.curate import curate
from llm_workbench.report import render_html, external_resources

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
WIDGET = 'application/vnd.jupyter.widget-view+json'


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    "A real curation: a JSONL source with an email, an IP address, a duplicate and a GPL record."
    d = tmp_path_factory.mktemp('data')
    body = 'def area(width, height):\n    """Return the area of a rectangle; both sides must be positive numbers."""\n    return width * height\n'
    recs = [
        dict(text=body, license='MIT'),
        dict(text=body, license='MIT'),
        dict(text=body + '# v2\n', license='GPL-3.0-only'),
        dict(
            text='Mail jane.doe@mailhost.org; the build server is 84.23.112.9 and it answers within the hour.\n',
            license='MIT',
        ),
    ]
    (d / 'docs.jsonl').write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
    curate(
        RunConfig(
            data=DataConfig(
                sources=[SourceConfig(name='docs', path=str(d / 'docs.jsonl'))], eval_sets=[], canaries=0
            )
        ),
        d / 'data',
    )
    return d / 'data'


def test_explorer_is_a_widget_live_and_a_snapshot_when_exported(data_dir, tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                f"from llm_workbench.ui.data import DataExplorer\nex = DataExplorer({str(data_dir)!r})\nex.filter(redacted=True)\nex"
            )
        ]
    )
    NotebookClient(
        nb, timeout=300, kernel_name='python3', resources=dict(metadata=dict(path=str(tmp_path)))
    ).execute()
    (out,) = nb.cells[0].outputs
    assert WIDGET in out.data and 'Data explorer' in out.data['text/html']  # JupyterLab renders the widget
    assert 'jane.doe' not in out.data['text/html'] and 'docs:docs.jsonl:4' in out.data['text/html']
    # Stored widget state cannot render offline (the widget manager would come from a CDN): render_html drops it, so the page shows the snapshot.
    nbformat.write(nb, tmp_path / 'nb.ipynb')
    page = render_html(tmp_path / 'nb.ipynb', tmp_path / 'nb.html').read_text()
    assert external_resources(page) == []
    assert 'Data explorer' in page and 'docs:docs.jsonl:4' in page and page.count('Plotly.newPlot') >= 2
    if CHROMIUM is None:
        pytest.skip('chromium not installed: the page was checked without a browser')
    r = subprocess.run(
        [
            CHROMIUM,
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--no-first-run',
            '--disable-background-networking',
            '--proxy-server=127.0.0.1:9',
            '--virtual-time-budget=10000',
            f'--user-data-dir={tmp_path / "profile"}',
            '--dump-dom',
            (tmp_path / 'nb.html').as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count('class="main-svg"') >= 2  # funnel and license charts drawn offline
