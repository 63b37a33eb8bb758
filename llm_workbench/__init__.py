"""A notebook-driven workbench for training language models with hygiene, reproducibility and an audit trail.

Modules:

- `llm_workbench.data.accounting`: What a curation records and says: the manifest's accounting (every source's records read, kept and removed by reason, licenses, splits, filters, near-dedup, one hash for the dataset) and the warnings about a source that gave little or nothing. Split from `data.curate`, whose passes fill the tallies this module turns into the record.
- `llm_workbench.eval.harness`: The code that runs *inside* the sandbox: a trusted test harness (T) and the untrusted program (U) in two processes, a value channel between them that only carries builtin values, and the OS hardening each side applies to itself.
- `llm_workbench.eval.results`: What an evaluation holds and how two of its models line up: `Results`, the evaluate stage's record (each part's rows, per-item scores for regression checks, the flat metric summary the release gates read, `eval/results.json`), and `base_vs_final`, the starting model against the final one metric by metric.
- `llm_workbench.eval.sandbox`: Run model-generated code where it cannot hurt the host and cannot forge its score: bubblewrap namespaces and a fresh read-only root, a seccomp filter, Landlock, rlimits, and a verdict decided by a separate trusted harness.
- `llm_workbench.nodes`: Past one machine: which node of a launch this process is (`LLMWB_*` variables), node 0's board of the stages it runs (`stages/nodes.json`), and how a node of rank > 0 joins node 0's data-parallel training stages under torchrun and ends with node 0's status. The runner uses it on every `llmwb run`; `llm_workbench.cluster` sets the variables.
- `llm_workbench.rundir`: A run dir's guards against faults around a run: one `llmwb run` at a time per run dir (a lock naming its holder), a small disk reserve released when the disk fills so the run can still record why it stopped, and the partial files a crash leaves behind, cleaned before a stage reruns.
- `llm_workbench.serve_log`: What the gateway keeps of the traffic it serves: an append-only SQLite log of every request, redacted before it is written and never blocking a request, and the consent policy that decides which of it may feed the next run.
- `llm_workbench.stage_cache`: No work done twice: a stage's outputs hashed file by file, and a content-addressed cache of completed stages keyed by their inputs hash, from which another run (a sweep's trials, a tutorial's second method) links the outputs instead of recomputing them."""

__version__ = "0.0.1"
