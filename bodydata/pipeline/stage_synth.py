"""Pipeline stage ``synth``: the anny generator as one resumable step (bodies with ground truth into ``bodies/``)."""
from __future__ import annotations

import functools
from typing import Any, Iterator

from bodydata.pipeline.stage import Item, ItemContext, Stage, StageContext

__all__ = ["make_stage"]


def _items(ctx: StageContext) -> Iterator[Item]:
    # One item: the generator is deterministic and writes every file atomically, so a run cut short is simply
    # redone whole and gives the same bytes (tests/generator/test_generator_synth.py checks that).
    yield Item(key="bodies")


def _process(item: Item, ctx: ItemContext) -> dict[str, Any]:
    from bodydata.generator.synth import run_synth

    o = dict(ctx.options)
    summary = run_synth(
        ctx.out_dir / "bodies", identities=int(o["identities"]), poses=int(o["poses"]), seed=int(o["seed"]),
        topology=str(o["topology"]), extra_topologies=tuple(o.get("also_topology") or ()), sheet=True, progress=True,
    )
    ctx.outputs.append("bodies/synth.json")
    return {"identities": summary.n_identities, "bodies": summary.n_bodies, "rejected": summary.n_rejected,
            "fallbacks": summary.n_fallback, "folder": str(summary.out_dir)}


def make_stage(identities: int = 20, poses: int = 10, seed: int = 0, topology: str = "notoes",
               also_topology: list[str] | None = None) -> Stage:
    """``synth``: ``identities`` x ``poses`` anny bodies (options as ``bodydata synth anny``)."""
    return Stage(
        name="synth", process=_process, items=functools.partial(_items),
        options={"identities": identities, "poses": poses, "seed": seed, "topology": topology,
                 "also_topology": list(also_topology or [])},
        description="anny bodies with ground truth",
    )
