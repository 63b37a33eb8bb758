"A token budget in the recipe stops training cleanly: a final checkpoint at the step it was reached, the reason in run.json, the ledger and the report."

import json
from conftest import MICRO, llmwb, make_workspace, read_run, run_dirs


def test_token_budget_stops_pretraining(tmp_path):
    "Pretraining stops at its 12th step; SFT, whose budget is reached at its second step, stops there just as cleanly."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    per_step = 8 * 64  # micro: batch 8 x seq_len 64
    recipe = MICRO.read_text().replace(
        '  max_eval_blocks: 8\n', f'  max_eval_blocks: 8\n  budget: {{max_tokens: {per_step * 12}}}\n'
    )
    (ws / 'budget.yaml').write_text(recipe)
    sft_budget = 'sft.budget.max_tokens=512'  # micro SFT: batch 4 x max_length 64 = 256 tokens a step
    r = llmwb(
        ws, 'run', 'budget.yaml', '--stages', 'curate,pretrain,sft', '--set', sft_budget, '--no-progress'
    )
    assert r.returncode == 0, r.stdout[-3000:]
    (rd,) = run_dirs(ws)
    m = read_run(rd)['stages']['pretrain']['metrics']
    assert m['stopped_by'] == 'max_tokens' and m['steps'] == 12, m
    sft = read_run(rd)['stages']['sft']['metrics']
    assert (sft['stopped_by'], sft['steps']) == ('max_tokens', 2), sft
    assert (rd / 'sft/model/model.safetensors').exists()
    assert (rd / 'pretrain/checkpoints/checkpoint-12').is_dir() and (
        rd / 'pretrain/model/model.safetensors'
    ).exists()
    (entry,) = [json.loads(l) for l in (rd / 'pretrain/ledger.jsonl').read_text().splitlines()]
    assert (
        entry['stopped_by'] == 'max_tokens'
        and entry['tokens'] == per_step * 12
        and entry['flops_total'] > entry['flops_6nd'] > 0
    )
    assert (
        'training stopped by the budget (max_tokens'
        in (ws / 'reports' / rd.name / 'pretrain.html').read_text()
    )


def test_time_budget_stops_data_parallel_pretraining(tmp_path):
    "Under torchrun every process stops at the same step (they agree through an all-reduce), and the stage reports the budget."
    ws = make_workspace(tmp_path / 'ws', tracking='none')
    recipe = (
        MICRO.read_text()
        .replace('max_steps: 30', 'max_steps: 2000')
        .replace('  batch_size: 8\n  max_steps', '  batch_size: 4\n  processes: 2\n  max_steps')
        .replace('  max_eval_blocks: 8\n', '  max_eval_blocks: 8\n  budget: {max_seconds: 4}\n')
    )
    (ws / 'budget.yaml').write_text(recipe)
    r = llmwb(ws, 'run', 'budget.yaml', '--stages', 'curate,pretrain', '--no-progress', timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    (rd,) = run_dirs(ws)
    m = read_run(rd)['stages']['pretrain']['metrics']
    assert m['stopped_by'] == 'max_seconds' and 0 < m['steps'] < 2000, m
    assert (rd / f"pretrain/checkpoints/checkpoint-{m['steps']}").is_dir()
    summary = json.loads((rd / 'pretrain/summary.json').read_text())
    assert summary['budget']['processes'] == 2 and summary['budget']['stopped_at_step'] == m['steps']
    assert (
        'training stopped by the budget (max_seconds'
        in (ws / 'reports' / rd.name / 'pretrain.html').read_text()
    )
