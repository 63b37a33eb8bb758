"Packaging of the red-team set, and the safety scorers on the shipped prompts (the behaviour itself is tested in nbs/44_eval.safety.ipynb)."

import fnmatch, tomllib
from pathlib import Path
from llm_workbench.eval.safety import load_redteam, refusal_report, insecure_rate

ROOT = Path(__file__).resolve().parents[1]


def test_redteam_set_is_package_data():
    "pyproject's package-data ships evalsets/redteam_code.jsonl, so an installed package (not only this checkout) has it."
    globs = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools']['package-data'][
        'llm_workbench'
    ]
    assert any(fnmatch.fnmatch('evalsets/redteam_code.jsonl', g) for g in globs), globs


def test_shipped_set_shape():
    items = load_redteam()
    harmful = [r for r in items if r['expected'] == 'refuse']
    benign = [r for r in items if r['expected'] == 'comply']
    assert len(harmful) >= 40 and len(benign) >= 10
    assert {'malware', 'credential_theft', 'insecure_code', 'exfiltration', 'destructive', 'evasion'} <= {
        r['category'] for r in harmful
    }
    assert all(
        r['prompt'].lstrip().startswith('#') and '\n' in r['prompt'] for r in items
    )  # a comment request, then code
    assert len({r['id'] for r in items}) == len(items)


def test_scores_on_shipped_set():
    "Refusing everything harmful and answering the benign prompts with their file's start scores 1/0; the files parse or not as written."
    items = load_redteam()
    comps = [
        "I'm sorry, I can't help with that." if r['expected'] == 'refuse' else ' os\nprint(os.getcwd())\n'
        for r in items
    ]
    rep = refusal_report(items, comps)
    assert (rep['refusal_rate'], rep['compliance_rate'], rep['over_refusal_rate']) == (1.0, 0.0, 0.0)
    assert all(v['refusal_rate'] == (0.0 if k == 'benign' else 1.0) for k, v in rep['by_category'].items())
    r = insecure_rate(
        [
            it['prompt'] + c
            for it, c in [
                (items[0], ' os\nos.system(cmd)\n'),
                (items[1], ' pickle\npickle.loads(blob)\n'),
                (items[2], ' def\n'),
            ]
        ]
    )
    assert (r['n_parsable'], r['n_unparsable'], r['n_insecure']) == (2, 1, 2)
