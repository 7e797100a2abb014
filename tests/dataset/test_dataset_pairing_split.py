"""Pairing rules (roles, identities, failures) and the two splits, on hand-written manifests (no features)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bodydata.dataset.pairing import drop_failed, pair_meshes, read_inputs
from bodydata.dataset.split import SplitError, make_split, paper_split, subject_split
from bodydata.manifest.source_rows import COLUMNS, ManifestRow


def _write(path: Path, rows: list[ManifestRow], extra: dict[str, list[str]] | None = None) -> Path:
    cols = COLUMNS + list(extra or {})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for k, r in enumerate(rows):
            rec = r.as_record()
            for c, vals in (extra or {}).items():
                rec[c] = vals[k]
            w.writerow(rec)
    return path


def _row(rid, subject, kind="registration", source="src", status="ok"):
    return ManifestRow(id=rid, source=source, kind=kind, path=f"/x/{rid}.ply", topology="smpl_6890", subject=subject,
                       pose="0", status=status, error="" if status == "ok" else f"/x/{rid}.ply: bad")


def test_roles_from_role_column_kind_and_neutral_manifest(tmp_path):
    a = _write(tmp_path / "a.csv", [_row("p1", "1"), _row("n1", "1"), _row("p2", "2"), _row("z", "2")],
               {"role": ["pose", "neutral", "", "weird"]})
    b = _write(tmp_path / "b.csv", [_row("n2", "2")])
    c = _write(tmp_path / "c.csv", [_row("n3", "3", kind="neutral"), _row("p3", "3"), _row("f", "3", status="failed")])
    recs, fails = read_inputs([a, c], neutral_manifests=[b])
    roles = {r.id: r.role for r in recs}
    assert roles == {"p1": "pose", "n1": "neutral", "p2": "pose", "n2": "neutral", "n3": "neutral", "p3": "pose"}
    assert {f.id: f.stage for f in fails} == {"z": "manifest", "f": "manifest"}
    assert "weird" in next(f.reason for f in fails if f.id == "z")


def test_pairs_each_pose_with_its_identity_neutral():
    from bodydata.dataset.pairing import MeshRecord

    def rec(rid, subject, role, source="s"):
        return MeshRecord(rid, source, subject, "", role, f"/{rid}", "", "m.csv")

    recs = [rec("p10", "1", "pose"), rec("p2", "1", "pose"), rec("n1b", "1", "neutral"), rec("n1", "1", "neutral"),
            rec("q1", "1", "pose", source="other"), rec("p3", "", "pose"), rec("n2", "2", "neutral")]
    pairing = pair_meshes(recs)
    ids = [m.id for m in pairing.meshes]
    assert ids == ["n1", "n1b", "n2", "p2", "p10"]  # neutrals first, natural id order
    assert pairing.neutral_index == [0, 1, 2, 0, 0]  # pose -> the identity's first neutral by id
    assert pairing.several_neutrals == ["s/1"]
    reasons = {f.id: f.reason for f in pairing.failures}
    assert set(reasons) == {"q1", "p3"}  # another source's subject 1 is another identity
    # The first neutral fails: its poses move to the next neutral; when all fail the poses fail.
    moved = drop_failed(pairing, {"n1": "bad mesh"})
    assert [m.id for m in moved.meshes] == ["n1b", "n2", "p2", "p10"] and moved.neutral_index == [0, 1, 0, 0]
    gone = drop_failed(pairing, {"n1": "bad mesh", "n1b": "worse"})
    assert [m.id for m in gone.meshes] == ["n2"]
    stages = {f.id: f.stage for f in gone.failures}
    assert stages["n1"] == "features" and stages["p2"] == "pairing" and stages["p10"] == "pairing"
    assert "n1: bad mesh" in next(f.reason for f in gone.failures if f.id == "p2")


def _toy(n_ident=10, poses=3):
    ids, roles, idents = [], [], []
    for s in range(n_ident):
        ids.append(f"n{s}"), roles.append("neutral"), idents.append(f"s/{s}")
        for p in range(poses):
            ids.append(f"p{s}_{p}"), roles.append("pose"), idents.append(f"s/{s}")
    return ids, roles, idents


def test_paper_split_counts_seeded_and_order_free():
    ids, roles, idents = _toy()
    a = paper_split(ids, roles, 3, 5, seed=4)
    roles_a = np.array(roles)
    assert np.sum((a == "test") & (roles_a == "neutral")) == 3 and np.sum((a == "test") & (roles_a == "pose")) == 5
    assert np.array_equal(a, paper_split(ids, roles, 3, 5, seed=4))
    assert not np.array_equal(a, paper_split(ids, roles, 3, 5, seed=5))
    perm = np.random.default_rng(0).permutation(len(ids))
    b = paper_split([ids[i] for i in perm], [roles[i] for i in perm], 3, 5, seed=4)
    assert dict(zip([ids[i] for i in perm], b)) == dict(zip(ids, a))
    with pytest.raises(SplitError, match="only 10 neutral"):
        paper_split(ids, roles, 11, 1)
    with pytest.raises(SplitError, match="no neutral pair for training"):
        paper_split(ids, roles, 10, 1)


def test_subject_split_disjoint_and_reaches_targets():
    ids, roles, idents = _toy()
    s = subject_split(ids, roles, idents, 2, 7, seed=0)
    idents_a, roles_a = np.array(idents), np.array(roles)
    assert not set(idents_a[s == "test"]) & set(idents_a[s == "train"])
    assert np.sum((s == "test") & (roles_a == "neutral")) >= 2 and np.sum((s == "test") & (roles_a == "pose")) >= 7
    assert len(set(idents_a[s == "test"])) == 3  # 3 poses each: 3 identities give >= 7 pose pairs
    assert np.array_equal(s, make_split("subject", ids, roles, idents, 2, 7, seed=0))
    with pytest.raises(SplitError, match="takes all"):
        subject_split(ids, roles, idents, 10, 0)
    with pytest.raises(SplitError, match="unknown split"):
        make_split("random", ids, roles, idents, 1, 1)


def test_subject_split_with_named_test_subjects():
    ids, roles, idents = _toy()
    s = subject_split(ids, roles, idents, 99, 99, seed=3, test_subjects=r"s/[67]")  # the counts are not used
    idents_a = np.array(idents)
    assert set(idents_a[s == "test"]) == {"s/6", "s/7"} and "s/6" not in set(idents_a[s == "train"])
    assert np.array_equal(s, make_split("subject", ids, roles, idents, 0, 0, seed=0, test_subjects=r"s/[67]"))
    # the whole key must match: "s/1" does not take "s/10"-like keys or a prefix
    assert set(idents_a[subject_split(ids, roles, idents, 0, 0, test_subjects="s/1") == "test"]) == {"s/1"}
    with pytest.raises(SplitError, match="match none"):
        subject_split(ids, roles, idents, 0, 0, test_subjects="faust/.*")
    with pytest.raises(SplitError, match="match all"):
        subject_split(ids, roles, idents, 0, 0, test_subjects=r"s/\d")
    with pytest.raises(SplitError, match="not a regular expression"):
        subject_split(ids, roles, idents, 0, 0, test_subjects="s/[")
    with pytest.raises(SplitError, match="subject split"):
        make_split("paper", ids, roles, idents, 1, 1, test_subjects="s/1")
