"""The shipped anny-demo pipeline's stages, end to end on a tiny anny-lite run (in-process scheduler)."""
import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from bodydata.pipeline.runner import find_pipeline, load_pipeline, run_pipeline


def _tiny_demo(tmp_path: Path) -> Path:
    doc = yaml.safe_load(find_pipeline("anny-demo").read_text())
    steps = {s["name"]: s for s in doc["stages"]}
    steps["synth"]["options"].update(identities=2, poses=2, topology="notoes_collapse10pc", seed=3)
    steps["neutralize"]["options"]["template"] = "anny-lite"
    steps["neutralize"]["options"]["png"] = False
    steps["build-dataset"]["options"].update(template="anny-lite", test_neutral=1, test_pose=2)
    steps["train"]["options"].update(epochs=2, threads=1)
    # anny's own row is the evaluate command test's (tests/evaluate/test_commands.py); here the stage chain counts
    steps["evaluate"]["options"].update(iterations=5, figures=False, body_model=False)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory, keep_process_state):
    """(folder, pipeline, summaries): the tiny demo run once, from its folder with a relative work folder (as
    `bodydata run` uses by default). Tests only read its work folder (the resume test's second run must change
    nothing, and says so)."""
    root = tmp_path_factory.mktemp("demo")
    pipeline = load_pipeline(_tiny_demo(root))
    with keep_process_state(), pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        summaries = run_pipeline(pipeline, "work", scheduler="synchronous", progress=False, echo=None)
    return root, pipeline, summaries


def test_anny_demo_runs_and_resumes(demo, monkeypatch):
    root, pipeline, summaries = demo
    work = root / "work"
    assert [s.failed for s in summaries] == [0, 0, 0, 0, 0, 0]
    assert (work / "train" / "run" / "checkpoints" / "best.safetensors").is_file()
    assert "MED" in (work / "evaluate" / "report" / "report.md").read_text()

    with open(work / "neutralize" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows)
    # The generator's true neutrals give each constructed neutral a measured error; anny-lite bodies land within 4 cm.
    med = np.array([float(r["med_to_truth_mm"]) for r in rows])
    assert np.all(med > 0) and np.all(med < 40), med

    ds = work / "build-dataset" / "dataset"
    f = np.load(ds / "f.npy", mmap_mode="r")
    with open(ds / "pairs.csv", newline="") as fh:
        pairs = list(csv.DictReader(fh))
    assert f.shape == (2 + 4, 1229, 9)  # 2 constructed neutrals + 4 posed bodies
    inputs = (work / "build-dataset" / "inputs.csv").read_text()
    assert "constructed_neutral" in inputs and ",neutral," not in inputs  # true neutrals are not used as data
    assert len(pairs) == 6

    monkeypatch.chdir(root)
    again = run_pipeline(pipeline, "work", scheduler="synchronous", progress=False, echo=None)
    assert sum(s.done for s in again) == 0 and sum(s.skipped for s in again) == sum(s.total for s in again)


def test_build_dataset_features_go_through_the_cluster_with_the_same_result(demo, tmp_path):
    # Issue #13 item 6: under `bodydata run` the build-dataset step computed every feature in one worker process.
    # On a dask cluster the step now fans the features out over the run's workers, as the CLI does; the files are
    # the same as an in-process run's.
    import hashlib
    import shutil

    root, pipeline, _ = demo
    work = (root / "work").resolve()  # as the run recorded it
    # The neutralize step also writes neutral.csv as `bodydata neutralize` does: the rows build-dataset paired.
    from bodydata.manifest.source_rows import read_source_rows

    neut = {(r.id, r.path, r.sha256, r.status) for r in read_source_rows(work / "neutralize" / "neutral.csv")}
    used = {(r.id, r.path, r.sha256, r.status) for r in read_source_rows(work / "build-dataset" / "inputs.csv")
            if r.extra["role"] == "neutral"}
    assert len(neut) == 2 and neut == used
    inline_cache = next((work / "build-dataset" / "dataset" / "cache").glob("features-*"))
    assert not (inline_cache / "manifest.csv").exists()  # in process: no feature stage

    shutil.copytree(work, tmp_path / "work2", ignore=shutil.ignore_patterns("build-dataset"))
    work2 = (tmp_path / "work2").resolve()
    (s,) = run_pipeline(pipeline, work2, only="build-dataset", scheduler="local", workers=2, progress=False, echo=None)
    assert (s.done, s.failed) == (1, 0)
    cache = next((work2 / "build-dataset" / "dataset" / "cache").glob("features-*"))
    with open(cache / "manifest.csv", newline="") as fh:
        feats = list(csv.DictReader(fh))
    assert len(feats) == 6 and all(r["status"] == "done" for r in feats)  # the per-mesh stage ran on the cluster

    def digest(path: Path, old: str = "", new: str = "") -> str:
        return hashlib.sha256(path.read_bytes().replace(old.encode(), new.encode())).hexdigest()

    a, b = work / "build-dataset" / "dataset", work2 / "build-dataset" / "dataset"
    for name in ("f.npy", "g.npy", "neutral_index.npy", "scaling.npz"):
        assert digest(a / name) == digest(b / name), name
    assert digest(a / "pairs.csv") == digest(b / "pairs.csv", str(work2), str(work))
