"SFT and DPO of the real SmolLM2-135M-Instruct on its own chat template, with the loss on the assistant's answer only."

import math
import pytest
import torch
from llm_workbench.config import AlignConfig, LoRAConfig, PromptConfig, SFTConfig
from llm_workbench.prompting import code_answer, render_prompt
from llm_workbench.train.model import load_model
from llm_workbench.train.tokenizer import load_tokenizer

ROWS = [
    dict(prompt='def double(x):\n    """Return twice x."""\n', completion='    return 2 * x\n'),
    dict(prompt='def first(xs):\n    """The first item of xs."""\n', completion='    return xs[0]\n'),
    dict(prompt='def is_even(n):\n    """Whether n is even."""\n', completion='    return n % 2 == 0\n'),
    dict(
        prompt='def total(xs):\n    """The sum of xs, 0 when empty."""\n',
        completion='    t = 0\n    for x in xs:\n        t += x\n    return t\n',
    ),
]
PREFS = [dict(r, chosen=r['completion'], rejected='    return eval("None")\n') for r in ROWS]
LORA = LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=['q_proj', 'v_proj'])
PROMPT = PromptConfig()  # chat: auto, the default instruction, no system message (SmolLM2 adds its own)
END = '<|im_end|>'


@pytest.fixture(scope='module')
def real(smollm2):
    "The converted SmolLM2 folder (a plain HF folder: the conversion drops the GGUF loader's quantization_config)."
    torch.manual_seed(0)
    return smollm2[0], load_tokenizer(smollm2[0])


def test_sft_batch_masks_all_but_the_assistant_answer(real, tmp_path):
    "On a collated batch: each row is the model's own template; only the answer and its end-of-turn are trained."
    from trl import SFTTrainer
    from llm_workbench.train.loop import _quiet_datasets
    from llm_workbench.train.sft import chat_prompt, inspect_batch, sft_args, sft_dataset

    folder, tok = real
    template = tok.chat_template
    test_tok = load_tokenizer(folder)
    assert chat_prompt(test_tok, PROMPT) == PROMPT and test_tok.pad_token == test_tok.eos_token == END
    args = sft_args(SFTConfig(batch_size=2, max_length=192), tmp_path, 0)
    args.eval_strategy = 'no'
    with _quiet_datasets():
        trainer = SFTTrainer(
            model=load_model(folder),
            args=args,
            train_dataset=sft_dataset(ROWS, chat=PROMPT),
            processing_class=test_tok,
        )
    assert test_tok.chat_template == template  # the model's own template, never replaced
    rows = inspect_batch(trainer, n=len(ROWS))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(ROWS))])
    assert (batch['attention_mask'] == 0).any()  # padding (the end-of-turn token's id) is in the batch
    for r, x in zip(ROWS, rows):
        asked = render_prompt(test_tok, r['prompt'], PROMPT)
        answer = code_answer(r['prompt'], r['completion'])
        conv = [dict(role='user', content=PROMPT.instruction.replace('{prompt}', r['prompt']))]
        whole = test_tok.apply_chat_template(conv + [dict(role='assistant', content=answer)], tokenize=False)
        assert x['text'] == whole  # rendered by the model's own template, exactly
        assert x['masked'] == asked and x['masked'].endswith('<|im_start|>assistant\n')
        assert x['masked'].startswith('<|im_start|>system\n')  # SmolLM2's default system turn, masked
        assert x['trained'].startswith('```python\n') and x['trained'] == answer + END + '\n'
        assert x['trained'].rstrip('\n').endswith(END)  # the end-of-turn token is trained, though it pads too
        assert r['prompt'].strip() in x['masked']  # the user turn is masked (its code is repeated in the answer)
        assert 0.5 < x['masked_fraction'] < 0.8, x


def test_lora_sft_then_dpo_on_chat_pairs(real, tmp_path):
    "Two LoRA SFT steps and one LoRA DPO step on chat pairs: finite losses, merged models that load and keep the template."
    from llm_workbench.align.dpo import _pair_ids, preference_dataset, train_dpo
    from llm_workbench.train.sft import train_sft

    folder, tok = real
    template = tok.chat_template
    small = dict(batch_size=2, max_length=192, log_every=1, save_every=50, lora=LORA, warmup_steps=0)
    tok_sft = load_tokenizer(folder)
    s = train_sft(
        load_model(folder), tok_sft, ROWS, [], SFTConfig(max_steps=2, **small), tmp_path / 'sft', 0, prompt=PROMPT
    )
    assert s['steps'] == 2 and s['lora'] and s['merged'] and s['examples'] == len(ROWS), s
    assert math.isfinite(s['train_loss']) and s['train_loss'] > 0, s
    assert s['trainable_params'] < 0.01 * s['total_params'], s
    assert s['merge_max_abs_diff'] < 1e-3, s
    merged = load_model(tmp_path / 'sft' / 'model')
    assert type(merged).__name__ == 'LlamaForCausalLM'
    assert not any('lora' in k for k in merged.state_dict())
    assert load_tokenizer(tmp_path / 'sft' / 'model').chat_template == template

    tok_dpo = load_tokenizer(tmp_path / 'sft' / 'model')
    pairs = preference_dataset(PREFS, PROMPT)
    e = pairs[0]
    chosen, rejected, n = _pair_ids(tok_dpo, e['prompt'], e['chosen'], e['rejected'])
    assert tok_dpo.decode(chosen[:n]).endswith('<|im_start|>assistant\n')
    assert tok_dpo.decode(chosen[n:]) == code_answer(PREFS[0]['prompt'], PREFS[0]['chosen']) + END + '\n'
    assert tok_dpo.decode(rejected[n:]).startswith('```python\n') and 'eval("None")' in tok_dpo.decode(rejected[n:])
    d = train_dpo(
        merged, tok_dpo, PREFS, [], AlignConfig(max_steps=1, **small), tmp_path / 'dpo', 0, prompt=PROMPT
    )
    assert d['steps'] == 1 and math.isfinite(d['train_loss']) and d['pairs_train'] == len(PREFS), d
    assert (tmp_path / 'dpo' / 'model' / 'model.safetensors').exists()
