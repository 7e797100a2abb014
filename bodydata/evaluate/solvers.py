"""The solvers of Eq. 15 and their default step limits, without torch, so that the CLI and the pipeline's options can name them at start-up."""
from __future__ import annotations

__all__ = ["DEFAULT_JACOBIAN_EVERY", "DEFAULT_STEPS", "JACOBIAN_EVERY_HELP", "SOLVERS"]

#: The solvers of Eq. 15 (``FitSettings.solver``) and their names in reports.
SOLVERS = {"lm": "Levenberg–Marquardt", "adam": "Adam"}
#: Steps at most per solver when ``FitSettings.iterations`` is None: LM's 40 (an exact Jacobian every
#: :data:`DEFAULT_JACOBIAN_EVERY` kept steps) take 2.0 s per anny-lite mesh with the paper-size dhnn on one torch
#: thread (``benchmarks/bench_fit.py``; 20 exact steps took 2.7 s in the same process and ended farther from the
#: refined fit); Adam's 200 are the paper's.
DEFAULT_STEPS = {"lm": 40, "adam": 200}
#: LM: kept steps per exact (finite-difference) Jacobian; Broyden's secant updates in between (1: exact at every step).
DEFAULT_JACOBIAN_EVERY = 4
#: The option's help, the same in ``bodydata fit``, ``bodydata evaluate`` and the evaluate stage.
JACOBIAN_EVERY_HELP = "lm: kept steps per exact Jacobian, Broyden updates between (1: exact at every step)"
