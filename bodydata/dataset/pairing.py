"""Which manifest rows are pose / neutral meshes, and the pairing of each pose mesh with its identity's neutral mesh.

Role of a row (first rule that applies; documented in ``docs/dataset.md``):

1. a ``role`` column with value ``neutral`` or ``pose`` (any other non-empty value is a failed row);
2. every row of a manifest given as a neutral input (``--neutral MANIFEST``) is ``neutral``;
3. ``kind == "neutral"`` (the ``anny`` adapter marks the generator's ``neutral/<identity>.ply`` so);
4. otherwise ``pose``.

Identity of a row: ``<source>/<subject>``; a neutral row must carry the source and subject of the
identity it belongs to. A row without a subject cannot be paired (a failure).

Pairs (paper §6): every neutral mesh is a pair with itself (the neutral set); every pose mesh is a pair
with its identity's neutral mesh (the pose set). So the meshes of the dataset are exactly the ``f`` side
of the pairs, and ``f_s`` of pair ``i`` is ``f`` of pair ``neutral_index[i]``. When an identity has
several neutral meshes, all of them are neutral pairs and pose meshes use the first by id.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from bodydata.errors import BodydataError
from bodydata.naming import natural_key

__all__ = ["ROLES", "MeshRecord", "Failure", "Pairing", "read_inputs", "pair_meshes", "drop_failed"]

ROLES = ("neutral", "pose")


@dataclass(frozen=True)
class MeshRecord:
    """One input mesh: manifest fields plus its role and identity (``<source>/<subject>``)."""

    id: str
    source: str
    subject: str
    pose: str
    role: str
    path: str
    sha256: str
    manifest: str

    @property
    def identity(self) -> str:
        return f"{self.source}/{self.subject}"


@dataclass(frozen=True)
class Failure:
    """A row left out of the dataset, and why (``stage``: manifest / pairing / features)."""

    id: str
    source: str
    subject: str
    path: str
    stage: str
    reason: str


@dataclass
class Pairing:
    """``meshes`` in pair order (pair ``i`` has ``f`` = features of ``meshes[i]``); ``neutral_index (P,)`` the pair
    row whose ``f`` is this pair's ``f_s`` (itself for a neutral pair); ``failures`` the rows left out."""

    meshes: list[MeshRecord]
    neutral_index: list[int]
    failures: list[Failure] = field(default_factory=list)
    several_neutrals: list[str] = field(default_factory=list)  # identities with more than one neutral mesh

    def __len__(self) -> int:
        return len(self.meshes)

    @property
    def roles(self) -> list[str]:
        return [m.role for m in self.meshes]

    @property
    def identities(self) -> list[str]:
        return [m.identity for m in self.meshes]


def read_inputs(manifests: Sequence[str | os.PathLike], neutral_manifests: Sequence[str | os.PathLike] = ()) -> tuple[list[MeshRecord], list[Failure]]:
    """Rows of the manifests as :class:`MeshRecord` (status ``done``, legacy ``ok``), and the rows left out (failed in
    the manifest, bad role, duplicate id). Raises ``BodydataError`` for an unreadable manifest or no input at all."""
    from bodydata.manifest.source_rows import read_source_rows
    from bodydata.manifest.status import is_done

    records: list[MeshRecord] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    inputs = [(m, False) for m in manifests] + [(m, True) for m in neutral_manifests]
    if not inputs:
        raise BodydataError("no input manifest given")
    for manifest, is_neutral in inputs:
        for row in read_source_rows(manifest):
            rid, source, subject, path = row.id, row.source, row.subject, row.path

            def fail(reason: str, stage: str = "manifest") -> None:
                failures.append(Failure(rid, source, subject, path, stage, reason))

            if not is_done(row.status):
                fail(row.error or f"manifest status {row.status!r}")
                continue
            role = row.extra.get("role", "").strip().lower()
            if role and role not in ROLES:
                fail(f"role {role!r} is not one of {', '.join(ROLES)}")
                continue
            if not role:
                if is_neutral:
                    role = "neutral"
                elif row.kind == "neutral":
                    role = "neutral"
                else:
                    role = "pose"
            if rid in seen:
                fail(f"id {rid!r} appears in more than one input row")
                continue
            seen.add(rid)
            records.append(MeshRecord(rid, source, subject, row.pose, role, path, row.sha256, str(manifest)))
    return records, failures


def pair_meshes(records: Iterable[MeshRecord]) -> Pairing:
    """Pair every pose mesh with its identity's neutral mesh; neutral meshes pair with themselves.

    Pair order: the neutral meshes (by natural id order), then the pose meshes (by natural id order), so the
    result does not depend on the order of the input manifests. A pose mesh without a subject, or whose
    identity has no neutral mesh, is a failure (stage ``pairing``).
    """
    records = list(records)
    neutrals = sorted((r for r in records if r.role == "neutral"), key=lambda r: natural_key(r.id))
    poses = sorted((r for r in records if r.role == "pose"), key=lambda r: natural_key(r.id))
    failures: list[Failure] = []
    meshes: list[MeshRecord] = []
    neutral_index: list[int] = []
    first: dict[str, int] = {}
    several: set[str] = set()
    for r in neutrals:
        if not r.subject:
            failures.append(Failure(r.id, r.source, r.subject, r.path, "pairing", "neutral mesh without a subject"))
            continue
        i = len(meshes)
        meshes.append(r)
        neutral_index.append(i)
        if r.identity in first:
            several.add(r.identity)
        else:
            first[r.identity] = i
    for r in poses:
        if not r.subject:
            failures.append(Failure(r.id, r.source, r.subject, r.path, "pairing",
                                    "pose mesh without a subject: cannot find its neutral mesh"))
            continue
        if r.identity not in first:
            failures.append(Failure(r.id, r.source, r.subject, r.path, "pairing",
                                    f"no neutral mesh for subject {r.subject!r} of source {r.source!r}"))
            continue
        meshes.append(r)
        neutral_index.append(first[r.identity])
    return Pairing(meshes, neutral_index, failures, sorted(several))


def drop_failed(pairing: Pairing, failed: dict[str, str]) -> Pairing:
    """Remove pairs whose mesh failed (``failed``: mesh id -> reason) and pose pairs whose neutral failed;
    re-pair pose meshes whose first neutral failed with the identity's next working neutral."""
    failures = list(pairing.failures)
    kept = [r for r in pairing.meshes if r.id not in failed]
    for r in pairing.meshes:
        if r.id in failed:
            failures.append(Failure(r.id, r.source, r.subject, r.path, "features", failed[r.id]))
    redo = pair_meshes(kept)
    for fl in redo.failures:
        # The only new pairing failures are pose meshes whose identity lost all its neutral meshes.
        ids = [m.id for m in pairing.meshes if m.role == "neutral" and m.source == fl.source and m.subject == fl.subject]
        why = "; ".join(f"{i}: {failed.get(i, '?')}" for i in ids)
        failures.append(Failure(fl.id, fl.source, fl.subject, fl.path, "pairing", f"its neutral mesh failed ({why})"))
    return Pairing(redo.meshes, redo.neutral_index, failures, redo.several_neutrals)
