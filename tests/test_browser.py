"The reports in a real headless Chromium with the network cut off: plotly charts must render from the embedded plotly.js."

import os, shutil, subprocess
import pytest

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--virtual-time-budget=10000',
]


def no_network_prefix() -> tuple:
    "Run in a fresh network namespace (no interfaces at all) where we may; else send all traffic to a dead proxy."
    if (
        shutil.which('unshare')
        and subprocess.run(['unshare', '-n', 'true'], capture_output=True).returncode == 0
    ):
        return ['unshare', '-n'], []
    return [], ['--proxy-server=127.0.0.1:9', '--proxy-bypass-list=<-loopback>']


@pytest.fixture(scope='module')
def chromium():
    if CHROMIUM is None:
        if os.environ.get('CI'):
            pytest.fail('chromium is not installed: `make browser` installs it (Debian package chromium)')
        pytest.skip('chromium not installed (make browser)')
    return CHROMIUM


def dump_dom(chromium, html_path, tmp_path):
    prefix, extra = no_network_prefix()
    r = subprocess.run(
        [
            *prefix,
            chromium,
            *FLAGS,
            *extra,
            f'--user-data-dir={tmp_path / "profile"}',
            '--dump-dom',
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.parametrize(
    'stage,n_plots', [('curate', 2), ('pretrain', 1), ('sft', 1), ('align', 1), ('evaluate', 1)]
)
def test_plotly_renders_offline(chromium, micro_run, tmp_path, stage, n_plots):
    ws, _, rd = micro_run
    dom = dump_dom(chromium, ws / 'reports' / rd.name / f'{stage}.html', tmp_path)
    # plotly.js turns each figure's empty <div> into a plot with an SVG main layer; without the script nothing is drawn.
    assert dom.count('class="main-svg"') >= n_plots, f'{stage}: plotly figures did not render'
    assert dom.count('js-plotly-plot') >= n_plots


def test_screenshot_of_run_index(chromium, micro_run, tmp_path):
    ws, _, rd = micro_run
    prefix, extra = no_network_prefix()
    shot = tmp_path / 'index.png'
    r = subprocess.run(
        [
            *prefix,
            chromium,
            *FLAGS,
            *extra,
            f'--user-data-dir={tmp_path / "profile"}',
            f'--screenshot={shot}',
            '--window-size=1200,1600',
            (ws / 'reports' / rd.name / 'index.html').as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0 and shot.stat().st_size > 10_000
