"""Packing benchmark: how much of what the model sees is real data when `pack_texts` packs the default corpus, against naive per-document padding.

Corpus: the records of the quickstart's sources (`RunConfig().data.sources`: standard-library and installed-package Python files) that
carry a `text`, read with `read_source` (before curation; the quickstart packs the curated train split, a subset of these). Tokenizer:
a byte-level BPE trained on them with the quickstart's settings (`RunConfig().tokenizer`). Sequence length 128 (`RunConfig().train.seq_len`).

Figures, all over the same token counts (each document's tokens plus one end-of-text token):
- packed: `pack_texts` concatenates documents and cuts blocks of `seq_len`; nothing is padded, only the last partial block is dropped.
  `packing_efficiency` is the share of the corpus's tokens that land in blocks (all of them real), the figure the target is about.
- pad_per_doc_chunked: each document is cut into blocks of `seq_len` on its own and its last block padded (no data lost, padding paid).
- pad_per_doc_truncated: each document is truncated to one block and padded (the simplest loader; padding paid and data lost).
For each: tokens kept, non-padding share of the block tokens, and the share of the corpus the model sees.
Prints one JSON object and writes benchmarks/results/packing.json (or --out).
"""

import argparse, json, math, os, platform, time
from pathlib import Path
import numpy as np

from llm_workbench.config import RunConfig
from llm_workbench.data.sources import read_source
from llm_workbench.train.pretrain import pack_texts
from llm_workbench.train.tokenizer import train_tokenizer

TARGET = 0.98


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--seq-len', type=int, default=RunConfig().train.seq_len)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results/packing.json'))
    a = ap.parse_args()
    rc, T = RunConfig(), a.seq_len
    t0 = time.perf_counter()
    texts, per_source = [], {}
    for src in rc.data.sources:
        got = [r['text'] for r in read_source(src) if 'text' in r]
        per_source[src.name] = len(got)
        texts += got
    t_read = time.perf_counter() - t0
    tok = train_tokenizer(texts, vocab_size=rc.tokenizer.vocab_size, min_frequency=rc.tokenizer.min_frequency)
    t_tok = time.perf_counter() - t0 - t_read
    t1 = time.perf_counter()
    blocks, st = pack_texts(texts, tok, T)
    t_pack = time.perf_counter() - t1
    lens = np.array(
        [len(ids) + 1 for ids in tok(texts, add_special_tokens=False, verbose=False)['input_ids']]
    )  # + the EOS each document gets
    total = int(lens.sum())
    assert total == st['tokens'], (total, st['tokens'])
    chunks = np.ceil(lens / T).astype(int)
    trunc = np.minimum(lens, T)
    packed = dict(
        blocks=st['blocks'],
        block_tokens=int(blocks.size),
        real_tokens=int(blocks.size),
        non_padding_share=1.0,
        corpus_share_seen=round(blocks.size / total, 6),
        dropped_tokens=total - int(blocks.size),
        packing_efficiency=st['packing_efficiency'],
    )
    chunked = dict(
        blocks=int(chunks.sum()),
        block_tokens=int(chunks.sum()) * T,
        real_tokens=total,
        non_padding_share=round(total / (chunks.sum() * T), 6),
        corpus_share_seen=1.0,
        dropped_tokens=0,
    )
    truncated = dict(
        blocks=len(lens),
        block_tokens=len(lens) * T,
        real_tokens=int(trunc.sum()),
        non_padding_share=round(trunc.sum() / (len(lens) * T), 6),
        corpus_share_seen=round(trunc.sum() / total, 6),
        dropped_tokens=total - int(trunc.sum()),
    )
    res = dict(
        benchmark='packing',
        seq_len=T,
        documents=len(texts),
        documents_per_source=per_source,
        vocab_size=len(tok),
        corpus_tokens=total,
        doc_tokens=dict(
            mean=round(float(lens.mean()), 1),
            median=float(np.median(lens)),
            p10=float(np.percentile(lens, 10)),
            p90=float(np.percentile(lens, 90)),
            shorter_than_seq_len=round(float((lens < T).mean()), 4),
        ),
        packed=packed,
        pad_per_doc_chunked=chunked,
        pad_per_doc_truncated=truncated,
        packing_efficiency=st['packing_efficiency'],
        target=TARGET,
        meets_target=st['packing_efficiency'] >= TARGET,
        compute_saved_vs_chunked_padding=round(1 - packed['block_tokens'] / chunked['block_tokens'], 4),
        seconds=dict(read=round(t_read, 1), tokenizer=round(t_tok, 1), pack=round(t_pack, 2)),
        pack_tokens_per_s=round(total / t_pack),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform()),
    )
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
