"""Shared helpers of the benchmarks: FAUST id lists, and the conversion benchmarks' epilogue (column means over the
per-body rows, printed and written as JSON)."""
from __future__ import annotations

import json

import numpy as np


def add_means(summary: dict, rows: list[dict], keys, prefix: str = "") -> dict:
    """summary[prefix + k] = mean of column k over rows, for every k of keys that every row has; returns summary."""
    for k in keys:
        if rows and all(k in r for r in rows):
            summary[f"{prefix}{k}"] = float(np.mean([r[k] for r in rows]))
    return summary


def emit(summary: dict, rows: list[dict], json_path: str | None) -> None:
    """Print the summary; with a path, write {"summary", "rows"} there as JSON."""
    print(json.dumps(summary, indent=1))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"summary": summary, "rows": rows}, fh, indent=1)


def faust_ids(spec: str) -> list[str]:
    """'000,037' or '000-079' (or both, comma-separated) -> three-digit FAUST ids."""
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += [f"{i:03d}" for i in range(int(lo), int(hi or lo) + 1)]
    return out
