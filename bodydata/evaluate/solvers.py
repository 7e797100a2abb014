"""The solvers of Eq. 15 and their default step limits, without torch, so that the CLI and the pipeline's options can name them at start-up."""
from __future__ import annotations

__all__ = ["DEFAULT_STEPS", "SOLVERS"]

#: The solvers of Eq. 15 (``FitSettings.solver``) and their names in reports.
SOLVERS = {"lm": "Levenberg–Marquardt", "adam": "Adam"}
#: Steps at most per solver when ``FitSettings.iterations`` is None: LM's 20 take 1.8 s per anny-lite mesh on one
#: loaded CPU core (``benchmarks/bench_fit.py``, within the 2 s goal); Adam's 200 are the paper's.
DEFAULT_STEPS = {"lm": 20, "adam": 200}
