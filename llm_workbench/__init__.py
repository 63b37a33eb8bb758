"""A notebook-driven workbench for training language models with hygiene, reproducibility and an audit trail.

Modules:

- `llm_workbench.eval.harness`: The code that runs *inside* the sandbox: a trusted test harness (T) and the untrusted program (U) in two processes, a value channel between them that only carries builtin values, and the OS hardening each side applies to itself.
- `llm_workbench.eval.sandbox`: Run model-generated code where it cannot hurt the host and cannot forge its score: bubblewrap namespaces and a fresh read-only root, a seccomp filter, Landlock, rlimits, and a verdict decided by a separate trusted harness."""

__version__ = "0.0.1"
