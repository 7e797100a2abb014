"""End-to-end build of a small anny dataset (4 identities x 3 poses, 1,229 vertices) and its torch Dataset."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bodydata.manifest.source_rows import ManifestRow
from bodydata.manifest.source_rows import write_source_rows as write_manifest

TOPO = "notoes_collapse10pc"
TEMPLATE = "anny-lite"
N_IDENT, N_POSES = 4, 3


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Generated bodies, their manifest (scanned by the anny adapter) plus two bad rows, and two builds."""
    from bodydata.dataset.build import build_dataset
    from bodydata.fsutil import sha256_file
    from bodydata.generator.synth import run_synth
    from bodydata.sources.scan import scan_source

    root = tmp_path_factory.mktemp("ds")
    synth = run_synth(root / "synth", N_IDENT, N_POSES, seed=3, topology=TOPO, sheet=False, progress=False)
    scanned = scan_source("anny", synth.out_dir, root / "anny.csv", progress=False)
    assert all(r.status == "done" for r in scanned.rows)
    # A truncated mesh marked ok (the manifest is stale): the feature stage must fail it and the build go on.
    good = next(r for r in scanned.rows if r.kind == "generated")
    bad = root / "broken" / "broken_000.ply"
    bad.parent.mkdir()
    bad.write_bytes(Path(good.path).read_bytes()[:2000])
    extra = [
        ManifestRow(id="anny/broken", source="anny", kind="generated", path=str(bad), topology="anny_notoes_collapse10pc",
                    subject=good.subject, pose="99", sha256=sha256_file(bad), up_axis="+z", status="ok"),
        # A pose of a subject without any neutral mesh: a pairing failure.
        ManifestRow(id="anny/orphan", source="anny", kind="generated", path=good.path, topology="anny_notoes_collapse10pc",
                    subject="77", pose="0", sha256=good.sha256, up_axis="+z", status="ok"),
    ]
    write_manifest(root / "extra.csv", extra)
    inputs = [root / "anny.csv", root / "extra.csv"]
    subj = build_dataset(inputs, TEMPLATE, root / "subject", split="subject", n_test_neutral=1, n_test_pose=1,
                         seed=0, progress=False)
    paper = build_dataset(inputs, TEMPLATE, root / "paper", split="paper", n_test_neutral=1, n_test_pose=2,
                          seed=1, progress=False)
    return {"root": root, "synth": synth.out_dir, "rows": scanned.rows, "inputs": inputs, "subject": subj,
            "paper": paper, "bad": bad}


def _direct_features(paths):
    from bodydata.features.acap import AcapExtractor
    from bodydata.mesh import read_mesh
    from bodydata.templates.template import load_template

    tpl = load_template(TEMPLATE)
    ex = AcapExtractor(tpl.vertices, tpl.faces, tpl.part_labels)
    res = ex(np.stack([read_mesh(p).vertices for p in paths]), coarse=True)
    return res.f.astype(np.float32), res.g.astype(np.float32)


def test_pairing_uses_the_subjects_neutral(data):
    out = data["subject"].out
    pairs = _rows(out / "pairs.csv")
    assert len(pairs) == N_IDENT * (N_POSES + 1)  # the broken and the orphan rows are left out
    assert sum(p["role"] == "neutral" for p in pairs) == N_IDENT
    f = np.load(out / "f.npy", mmap_mode="r")
    g = np.load(out / "g.npy", mmap_mode="r")
    nidx = np.load(out / "neutral_index.npy")
    neutral_path = {r.subject: r.path for r in data["rows"] if r.kind == "neutral"}
    paths = [p["path"] for p in pairs]
    f_direct, g_direct = _direct_features(paths)
    np.testing.assert_allclose(f, f_direct, rtol=0, atol=1e-6)  # row i = features of pair i's own mesh
    np.testing.assert_allclose(g, g_direct, rtol=0, atol=1e-6)
    for i, p in enumerate(pairs):
        j = nidx[i]
        assert int(p["neutral_index"]) == j
        if p["role"] == "neutral":
            assert j == i
        else:
            assert pairs[j]["role"] == "neutral" and pairs[j]["subject"] == p["subject"]
            assert p["neutral_path"] == neutral_path[p["subject"]]
            k = paths.index(neutral_path[p["subject"]])
            np.testing.assert_array_equal(f[j], f_direct[k])  # f_s = the subject's neutral features
            np.testing.assert_array_equal(g[j], g_direct[k])
        assert len(p["sha256"]) == 64 and len(p["neutral_sha256"]) == 64


def test_dataset_items_equal_direct_features(data):
    from bodydata.dataset.torch_dataset import BodyPairsDataset

    out = data["subject"].out
    ds = BodyPairsDataset(out, split="all", scaled=False)
    pairs = _rows(out / "pairs.csv")
    neutral_path = {r.subject: r.path for r in data["rows"] if r.kind == "neutral"}
    pose_k = next(k for k in range(len(ds)) if not ds.is_neutral[k])
    p = pairs[int(ds.rows[pose_k])]
    (f_pose, f_neu), (g_pose, g_neu) = (lambda r: ((r[0][0], r[0][1]), (r[1][0], r[1][1])))(
        _direct_features([p["path"], neutral_path[p["subject"]]]))
    item = ds[pose_k]
    assert set(item) == {"f", "g", "f_s", "g_s", "is_neutral", "index"}
    assert item["f"].dtype == item["f_s"].dtype == item["g"].dtype == __import__("torch").float32
    np.testing.assert_allclose(item["f"].numpy(), f_pose, atol=1e-6)
    np.testing.assert_allclose(item["f_s"].numpy(), f_neu, atol=1e-6)
    np.testing.assert_allclose(item["g_s"].numpy(), g_neu, atol=1e-6)
    assert not bool(item["is_neutral"])
    neu = ds[int(np.flatnonzero(ds.is_neutral)[0])]
    assert bool(neu["is_neutral"]) and np.array_equal(neu["f"].numpy(), neu["f_s"].numpy())


def test_failed_mesh_recorded_and_excluded(data):
    out = data["subject"].out
    fails = {r["id"]: r for r in _rows(out / "failures.csv")}
    assert fails["anny/broken"]["stage"] == "features" and "broken_000.ply" in fails["anny/broken"]["reason"]
    assert fails["anny/orphan"]["stage"] == "pairing" and "no neutral mesh" in fails["anny/orphan"]["reason"]
    ids = {p["id"] for p in _rows(out / "pairs.csv")}
    assert "anny/broken" not in ids and "anny/orphan" not in ids
    card = json.loads((out / "card.json").read_text())
    assert card["failures"]["total"] == 2 and card["failures"]["by_stage"] == {"pairing": 1, "features": 1}


def test_subject_split_has_no_identity_overlap(data):
    pairs = _rows(data["subject"].out / "pairs.csv")
    train = {p["identity"] for p in pairs if p["split"] == "train"}
    test = {p["identity"] for p in pairs if p["split"] == "test"}
    assert train and test and not (train & test)
    assert sum(p["split"] == "test" and p["role"] == "neutral" for p in pairs) >= 1
    card = json.loads((data["subject"].out / "card.json").read_text())
    assert card["counts"]["identities_in_both"] == 0


def test_named_test_subjects_are_the_test_set(data, tmp_path):
    import re

    from bodydata.dataset.build import build_dataset

    idents = sorted({p["identity"] for p in _rows(data["subject"].out / "pairs.csv")})
    pattern = re.escape(idents[-1])
    res = build_dataset(data["inputs"], TEMPLATE, tmp_path / "named", split="subject", seed=0, progress=False,
                        test_subjects=pattern)
    pairs = _rows(res.out / "pairs.csv")
    assert {p["identity"] for p in pairs if p["split"] == "test"} == {idents[-1]}
    assert idents[-1] not in {p["identity"] for p in pairs if p["split"] == "train"}
    card = json.loads((res.out / "card.json").read_text())
    assert card["split"]["test_subjects"] == pattern
    assert f"those matching `{pattern}`" in (res.out / "card.md").read_text()
    # a pattern that matches no identity stops the build before it touches the folder: the dataset stays usable
    from bodydata.dataset.split import SplitError

    with pytest.raises(SplitError, match="match none"):
        build_dataset(data["inputs"], TEMPLATE, res.out, split="subject", progress=False, test_subjects="nobody")
    assert json.loads((res.out / "card.json").read_text()) == card


def test_paper_split_sizes(data):
    pairs = _rows(data["paper"].out / "pairs.csv")
    test = [p for p in pairs if p["split"] == "test"]
    assert sum(p["role"] == "neutral" for p in test) == 1
    assert sum(p["role"] == "pose" for p in test) == 2
    c = json.loads((data["paper"].out / "card.json").read_text())["counts"]["total"]
    assert (c["neutral_test"], c["pose_test"], c["neutral_train"], c["pose_train"]) == (1, 2, N_IDENT - 1, N_IDENT * N_POSES - 2)


@pytest.mark.parametrize("which", ["subject", "paper"])
def test_scaling_fitted_on_train_only(data, which):
    from bodydata.dataset.scaling_io import load_scaling

    out = data[which].out
    pairs = _rows(out / "pairs.csv")
    f = np.asarray(np.load(out / "f.npy", mmap_mode="r"), dtype=np.float64)
    g = np.asarray(np.load(out / "g.npy", mmap_mode="r"), dtype=np.float64)
    nidx = np.load(out / "neutral_index.npy")
    train = np.array([p["split"] == "train" for p in pairs])
    fit = train.copy()
    fit[nidx[train]] = True  # the neutral meshes the train pairs use as f_s
    sc = load_scaling(out / "scaling.npz")
    fs, gs = sc.transform_f(f[fit]), sc.transform_g(g[fit])
    assert fs.min() >= -0.95 - 1e-5 and fs.max() <= 0.95 + 1e-5
    assert gs.min() >= -0.95 - 1e-5 and gs.max() <= 0.95 + 1e-5
    # Fitted on exactly these rows: every non-constant dimension reaches both ends of the range.
    varying = f[fit].max(0) > f[fit].min(0)
    np.testing.assert_allclose(fs.max(0)[varying], 0.95, atol=1e-5)
    np.testing.assert_allclose(fs.min(0)[varying], -0.95, atol=1e-5)
    # ... and not on the others: some test-only dimension leaves the range (the test meshes differ).
    if (~fit).any():
        assert np.abs(sc.transform_f(f[~fit])).max() > 0.95
    np.testing.assert_allclose(sc.inverse_f(sc.transform_f(f)), f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sc.inverse_g(sc.transform_g(g)), g, rtol=1e-5, atol=1e-5)


def test_arrays_are_memory_mappable_float32(data):
    out = data["subject"].out
    n = data["subject"].n_pairs
    f = np.load(out / "f.npy", mmap_mode="r")
    g = np.load(out / "g.npy", mmap_mode="r")
    assert isinstance(f, np.memmap) and isinstance(g, np.memmap)
    assert f.dtype == np.float32 and f.shape == (n, 1229, 9)
    assert g.dtype == np.float32 and g.shape == (n, 16, 9)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]  # no temp files left
    card = json.loads((out / "card.json").read_text())
    assert card["files"]["f"]["bytes"] == os.path.getsize(out / "f.npy")
    assert card["template"]["n_vertices"] == 1229 and card["versions"]["bodydata"]
    assert "| anny |" in (out / "card.md").read_text()


def test_rerun_reuses_cached_features(data, tmp_path):
    from bodydata.dataset.build import build_dataset

    out = data["subject"].out
    before = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")}
    f_before = np.array(np.load(out / "f.npy"))
    again = build_dataset(data["inputs"], TEMPLATE, out, split="subject", n_test_neutral=1, n_test_pose=1, seed=0,
                          progress=False)
    assert again.features.computed == 0 and again.features.cached == len(before)
    assert again.features.failed == 1  # a failed mesh is tried again (it may have been fixed), and fails again
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")} == before
    np.testing.assert_array_equal(np.load(out / "f.npy"), f_before)


def test_half_neutral_batches(data):
    import torch
    from torch.utils.data import DataLoader

    from bodydata.dataset.torch_dataset import BodyPairsDataset, HalfNeutralBatchSampler

    ds = BodyPairsDataset(data["paper"].out, split="train")
    sampler = HalfNeutralBatchSampler(ds, batch_size=4, seed=0)
    n_pose = int((~ds.is_neutral).sum())
    assert len(sampler) == -(-max(n_pose, int(ds.is_neutral.sum())) // 2)
    seen_pose = set()
    for batch in sampler:
        assert len(batch) == 4
        assert ds.is_neutral[batch].sum() == 2
        seen_pose.update(b for b in batch if not ds.is_neutral[b])
    assert len(seen_pose) == n_pose  # every pose pair of the larger set once per epoch
    loader = DataLoader(ds, batch_sampler=sampler)
    batch = next(iter(loader))
    assert batch["f"].shape == (4, 1229, 9) and batch["g_s"].shape == (4, 16, 9)
    assert batch["is_neutral"].tolist() == [True, True, False, False]
    assert torch.all(batch["f"].abs() <= 0.95 + 1e-5)
    with pytest.raises(Exception):
        HalfNeutralBatchSampler(ds, batch_size=3)
    # DataLoader workers receive the dataset pickled: without its memory maps, which reopen on first use.
    import pickle

    ds[0]
    blob = pickle.dumps(ds)
    assert len(blob) < (ds.root / "f.npy").stat().st_size / 3  # the scaling ranges, not the features
    again = pickle.loads(blob)
    assert torch.equal(again[1]["f"], ds[1]["f"])


def test_cli_build_dataset(data, tmp_path):
    from click.testing import CliRunner

    from bodydata.cli.main import cli

    out = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["build-dataset", "--inputs", str(data["inputs"][0]), "--template", TEMPLATE,
                                   "--out", str(out), "--split", "paper", "--test-neutral", "1", "--test-pose", "1",
                                   "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"{N_IDENT * (N_POSES + 1)} pairs" in res.output
    assert (out / "card.md").is_file()
    bad = CliRunner().invoke(cli, ["build-dataset", "--inputs", str(data["inputs"][0]), "--template", TEMPLATE,
                                   "--out", str(tmp_path / "x"), "--test-neutral", "50", "--workers", "0", "--quiet"])
    assert bad.exit_code != 0 and "50 neutral test pairs requested" in bad.output
    assert not list((tmp_path / "x").rglob("*.npz"))  # refused before computing any feature
    from bodydata.dataset.torch_dataset import BodyPairsDataset
    from bodydata.errors import BodydataError

    (out / "card.json").unlink()  # what an interrupted build leaves
    with pytest.raises(BodydataError, match="incomplete"):
        BodyPairsDataset(out)


def test_orchestrated_runner_gives_the_same_dataset(data, tmp_path):
    from bodydata.pipeline.feature_runner import orchestrated_runner
    from bodydata.dataset.build import build_dataset
    from bodydata.pipeline.orchestrate import InlineExecutor

    out = tmp_path / "orch"
    res = build_dataset(data["inputs"], TEMPLATE, out, split="subject", n_test_neutral=1, n_test_pose=1, seed=0,
                        runner=orchestrated_runner(executor=InlineExecutor()), progress=False)
    assert (res.features.computed, res.features.failed) == (N_IDENT * (N_POSES + 1), 1)
    ref = data["subject"].out
    for name in ("f.npy", "g.npy", "neutral_index.npy"):
        np.testing.assert_array_equal(np.load(out / name), np.load(ref / name))
    assert _rows(out / "pairs.csv") == _rows(ref / "pairs.csv")
    fails = {r["id"]: r["reason"] for r in _rows(out / "failures.csv")}
    assert "truncated" in fails["anny/broken"]
    assert list((out / "cache").glob("features-*/manifest.csv"))  # the stage manifest sits beside the cache
