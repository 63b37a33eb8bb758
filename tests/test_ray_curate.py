"""Curation on Ray Data (`data.engine: ray`) gives the local engine's dataset: the same dataset_sha256, counts
and quarantine on the micro corpus and on the hostile inputs of test_curate.py and test_hostile_inputs.py,
with a Ray of one or two CPUs; a shard that fails for good stops the curation with an error naming it, a
transient error is retried; `data.ray` chooses the cluster. One local Ray of two CPUs serves the module."""

import json, subprocess, sys
from pathlib import Path
import pytest
from conftest import MICRO
from llm_workbench.config import DataConfig, RayConfig, RunConfig, SourceConfig, load_config
from llm_workbench.data.curate import curate
from llm_workbench.data.ray_engine import ShardFailure, ray_session
from llm_workbench.data.sources import read_source
from test_curate import curated  # noqa: F401 (a fixture: hostile user sources curated by `llmwb run`)
from test_hostile_inputs import GOOD, _hostile_workspace

COMPARED = ('sources', 'splits', 'licenses', 'near_dedup', 'pii', 'contamination', 'pairs', 'canaries')
COMPARED += ('warnings',)


@pytest.fixture(scope='module')
def ray2():
    "A local Ray of two CPUs for the module, started by `ray_session` as `data.ray.num_cpus: 2` asks."
    import ray

    assert not ray.is_initialized()
    with ray_session(RayConfig(num_cpus=2)) as resources:
        yield resources
    assert not ray.is_initialized()  # started here, so stopped here


def _with(cfg: RunConfig, **data) -> RunConfig:
    return cfg.model_copy(update=dict(data=cfg.data.model_copy(update=data)))


def _assert_same(m_ray: dict, m_local: dict, ray_dir: Path, local_dir: Path):
    "The same dataset hash, counts, quarantine bytes and manifest sections (the engine aside)."
    assert m_ray['dataset_sha256'] == m_local['dataset_sha256']
    assert m_ray['counts'] == m_local['counts']
    assert (ray_dir / 'quarantine.jsonl').read_bytes() == (local_dir / 'quarantine.jsonl').read_bytes()
    for key in COMPARED:
        assert m_ray[key] == m_local[key], key
    assert m_ray['scale']['shards'] == m_local['scale']['shards']


def test_micro_corpus_is_the_same_on_ray(ray2, tmp_path):
    "configs/micro.yaml's sources (stdlib and package files; contamination, PII, near dedup, pairs)."
    cfg = load_config(MICRO)
    m_local = curate(cfg, tmp_path / 'local')
    m_ray = curate(_with(cfg, engine='ray'), tmp_path / 'ray')
    _assert_same(m_ray, m_local, tmp_path / 'ray', tmp_path / 'local')
    assert ray2['CPU'] == 2 and m_local['scale']['engine'] == 'local'
    assert m_ray['scale']['engine'] == 'ray' and m_ray['scale']['ray'] == dict(address=None, cpus=2)
    assert m_ray['counts']['kept'] > 0
    import ray

    assert ray.is_initialized()  # a Ray the curation did not start is left running


def test_curate_fixture_inputs_are_the_same_on_ray(ray2, curated, tmp_path):  # noqa: F811 (the fixture)
    "test_curate.py's bad lines, PII, leak, copies, chat and preference records, as `llmwb run` curated them."
    rd, m_local, _ = curated
    cfg = load_config(rd / 'recipe.yaml', ['data.engine=ray'])
    m_ray = curate(cfg, tmp_path / 'ray')
    _assert_same(m_ray, m_local, tmp_path / 'ray', rd / 'data')


@pytest.mark.parametrize('seed', range(6))
def test_generated_hostile_sources_are_the_same_on_ray(ray2, tmp_path, seed):
    "test_hostile_inputs.py's generated folders: encodings, nesting, truncation, links, FIFOs, huge lines."
    cfg = load_config(_hostile_workspace(seed, tmp_path, bound=200_000, huge_mb=3))
    m_local = curate(cfg, tmp_path / 'local')
    m_ray = curate(_with(cfg, engine='ray'), tmp_path / 'ray')
    _assert_same(m_ray, m_local, tmp_path / 'ray', tmp_path / 'local')


def _docs(tmp_path: Path, n: int = 12) -> RunConfig:
    (tmp_path / 'docs.jsonl').write_text('\n'.join(json.dumps({'text': GOOD.format(i=i)}) for i in range(n)))
    source = SourceConfig(name='docs', path=str(tmp_path / 'docs.jsonl'), license='MIT')
    return RunConfig(data=DataConfig(sources=[source], shard_size=5, eval_sets=[], canaries=0, engine='ray'))


def test_a_shard_that_fails_for_good_is_named(ray2, tmp_path):
    "A reader raising on record 7 fails shard 1 (records 5-9); a record breaking the filters fails its shard."
    cfg = _docs(tmp_path)

    def raising(src, *args):
        for i, rec in enumerate(read_source(src, *args)):
            if i == 7:
                raise RuntimeError('undecodable record 7')
            yield rec

    def malformed(src, *args):
        for i, rec in enumerate(read_source(src, *args)):
            yield {k: v for k, v in rec.items() if k != 'id'} if i == 11 else rec

    with pytest.raises(ShardFailure) as e:
        curate(cfg, tmp_path / 'read', reader=raising)
    assert str(e.value) == (
        "curate (read) failed on shard 1 of source 'docs' (records 5-9): RuntimeError: undecodable record 7"
    )
    with pytest.raises(ShardFailure) as e:
        curate(cfg, tmp_path / 'filter', reader=malformed)
    named = "curate (filter) failed on shard 2 of source 'docs' (records 10-14): KeyError"
    assert str(e.value).startswith(named)


def test_a_transient_error_is_retried(ray2, tmp_path):
    "A reader timing out once (a network file system's hiccup) is run again: the curation completes, same."
    cfg = _docs(tmp_path)
    tries = []

    def flaky(src, *args):
        for i, rec in enumerate(read_source(src, *args)):
            if i == 7 and not tries:
                tries.append(i)
                raise TimeoutError('the file server did not answer')
            yield rec

    m_ray = curate(cfg, tmp_path / 'ray', reader=flaky)
    m_local = curate(_with(cfg, engine='local'), tmp_path / 'local')
    _assert_same(m_ray, m_local, tmp_path / 'ray', tmp_path / 'local')


JOIN = r'''
import json, sys
from pathlib import Path
import ray
from llm_workbench.config import RayConfig, load_config
from llm_workbench.data.curate import curate
recipe, out, address = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cfg = load_config(recipe, ['data.engine=ray'])
on = lambda **kw: cfg.model_copy(update=dict(data=cfg.data.model_copy(update=dict(ray=RayConfig(**kw)))))
joined = curate(on(address=address), out / 'joined')
left = not ray.is_initialized()
own = curate(on(num_cpus=1), out / 'own')
print(json.dumps(dict(joined=joined, own=own, left=left, stopped=not ray.is_initialized())))
'''


def test_ray_address_joins_a_cluster_and_num_cpus_sizes_a_local_one(ray2, tmp_path):
    """In a fresh process: `data.ray.address` joins this module's cluster (two CPUs) and leaves it running;
    `data.ray.num_cpus: 1` starts a local Ray of one CPU and stops it. Both: the local dataset."""
    import ray

    recipe = _hostile_workspace(1, tmp_path, bound=200_000, huge_mb=1)
    m_local = curate(load_config(recipe), tmp_path / 'local')
    address = ray.get_runtime_context().gcs_address
    r = subprocess.run(
        [sys.executable, '-c', JOIN, str(recipe), str(tmp_path), address],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res['joined']['scale']['ray'] == dict(address=address, cpus=2) and res['left']
    assert res['own']['scale']['ray'] == dict(address=None, cpus=1) and res['stopped']
    for name in ('joined', 'own'):
        _assert_same(res[name], m_local, tmp_path / name, tmp_path / 'local')
    assert ray.cluster_resources()['CPU'] == 2  # the joined cluster still runs
