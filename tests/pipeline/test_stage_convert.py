"""The ``convert`` stage: per-mesh conversion on the orchestration layer, failures as rows, resume, one Registrar
per process, and its outputs as the input of ``neutralize`` / ``build-dataset``; ``bodydata convert`` on top."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

TOPO = "notoes_collapse10pc"
# a short schedule: the 1,229-vertex targets are in the template's own connectivity
FAST = {"coarse_dists": [0.10, 0.05, 0.03], "coarse_iters": 25, "fine_dists": [0.03, 0.02, 0.01, 0.01]}


@pytest.fixture(scope="module")
def lite(anny_lite_template, anny_lite_template_dir, tmp_path_factory):
    """(template, template folder, prior path, bodies (2, 1229, 3) posed anny-lite bodies with their folder)."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.registration.prior import build_prior
    from bodydata.generator.bodies import anny_bodies

    t = anny_lite_template
    root = tmp_path_factory.mktemp("convert_stage")
    train = anny_bodies(TOPO, 4, 3, seed=11).vertices[TOPO]
    pr = build_prior(AcapExtractor(t.vertices, t.faces)(train).f, t.vertices, t.faces, t.part_labels, 30, t.name)
    prior = pr.save(root / "prior.npz")
    bodies = anny_bodies(TOPO, 1, 2, seed=11, first_identity=500).vertices[TOPO]
    return t, anny_lite_template_dir, prior, bodies, root


ROT = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about the up axis


def _moved(v: np.ndarray) -> np.ndarray:
    """body 1 is written turned and shifted: its aligned copy must come back to the template's frame."""
    return v @ ROT.T + [0.5, -0.2, 0.1]


def _manifest(folder: Path, t, bodies) -> Path:
    """A sources.csv with two good bodies of subject 7 and one corrupt file."""
    from bodydata.mesh import write_mesh
    from bodydata.manifest.source_rows import ManifestRow
    from bodydata.manifest.source_rows import write_source_rows as write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, v in enumerate(bodies):
        write_mesh(folder / f"body{k}.ply", _moved(v) if k == 1 else v, t.faces)
        rows.append(ManifestRow(id=f"lite/body{k}", source="anny", kind="pose", path=f"body{k}.ply",
                                topology=f"anny_{TOPO}", subject="7", pose=str(k), up_axis="+z", status="ok"))
    (folder / "broken.ply").write_bytes(b"ply\nformat nonsense\n")
    rows.append(ManifestRow(id="lite/broken", source="anny", kind="pose", path="broken.ply", topology=f"anny_{TOPO}",
                            subject="7", pose="2", status="ok"))
    return write_manifest(folder / "sources.csv", rows)


def test_convert_stage_rows_resume_and_downstream(lite, tmp_path):
    from bodydata.fsutil import sha256_file
    from bodydata.pipeline import stage_convert
    from bodydata.pipeline.manifest import read_rows
    from bodydata.pipeline.orchestrate import InlineExecutor, run_stage
    from bodydata.pipeline.stage import StageContext
    from bodydata.registration.convert import read_results

    t, tdir, prior, bodies, _ = lite
    _manifest(tmp_path / "scan", t, bodies)
    out = tmp_path / "convert"
    stage = stage_convert.make_stage(template=str(tdir), prior=str(prior), registration=FAST)
    ctx = StageContext(out_dir=out, input_dir=tmp_path / "scan")
    builds = stage_convert.registrar_builds()
    s1 = run_stage(stage, ctx, InlineExecutor(threads=1), progress=False)
    assert (s1.done, s1.failed, s1.skipped) == (2, 1, 0), s1.failures
    # one Registrar for the three rows of this process
    assert stage_convert.registrar_builds() == builds + 1

    rows = {r.item: r for r in read_rows(out)}
    bad = rows["lite/broken"]
    assert bad.status == "failed" and "broken.ply" in bad.reason and bad.reason.startswith("MeshError")
    for k in range(2):
        r = rows[f"lite/body{k}"]
        c = r.columns
        assert r.status == "done" and r.outputs == (f"meshes/lite_body{k}.ply", f"aligned/lite_body{k}.ply")
        assert c["input_sha256"] == sha256_file(tmp_path / "scan" / f"body{k}.ply")
        assert Path(c["out_path"]).is_file() and c["topology"] == f"anny_{TOPO}" and c["subject"] == "7"
        assert float(c["n_landmarks"]) == 26 and float(c["iterations"]) > 0  # 27 minus the ignored crotch
        # same connectivity as the template, so the truth is vertex for vertex: within a few mm of it
        from bodydata.mesh import read_mesh

        got = read_mesh(c["out_path"]).vertices
        err_mm = 1000 * np.linalg.norm(got - (_moved(bodies[k]) if k == 1 else bodies[k]), axis=1).mean()
        assert err_mm < 10.0 and float(c["p2m_mean_mm"]) < 5.0, (err_mm, c["p2m_mean_mm"])
        # the aligned copy is the same mesh moved rigidly (template axes): equal edge lengths, and the body
        # sits where the template's frame puts it
        al = read_mesh(c["aligned_path"]).vertices
        e = t.faces[:, :2]
        assert np.allclose(np.linalg.norm(al[e[:, 0]] - al[e[:, 1]], axis=1),
                           np.linalg.norm(got[e[:, 0]] - got[e[:, 1]], axis=1), atol=1e-9)
        from bodydata.mesh.alignment import align

        torso = np.isin(t.part_labels, [list(t.part_names).index(n) for n in stage_convert.TORSO_PARTS])
        assert np.allclose(al, align(got[torso], t.vertices[torso]).apply(got), atol=1e-9)
        # whatever frame the input came in (body 1 is turned 90 degrees): the truth with its torso on the
        # template's, up to the conversion's own error
        expect = align(bodies[k][torso], t.vertices[torso]).apply(bodies[k])
        assert 1000 * np.linalg.norm(al - expect, axis=1).mean() < 2.5 * err_mm + 2.0, err_mm
    # the bodydata-convert table, the picture and the summary
    table = {r.id: r for r in read_results(out / stage_convert.CONVERSION_CSV)}
    assert table["lite/body0"].status == "done" and table["lite/broken"].status == "failed"
    assert "broken.ply" in table["lite/broken"].reason
    assert (out / "worst.png").stat().st_size > 1000
    summary = json.loads((out / stage_convert.SUMMARY_JSON).read_text())
    assert (summary["done"], summary["failed"], summary["prior"]) == (2, 1, str(prior))
    assert summary["prior_built_here"] is False

    # re-run: done rows with unchanged inputs are skipped, the failed one is tried again; no new Registrar
    s2 = run_stage(stage, ctx, InlineExecutor(threads=1), progress=False)
    assert (s2.done, s2.failed, s2.skipped) == (0, 1, 2)
    assert stage_convert.registrar_builds() == builds + 1
    # a changed input is converted again
    from bodydata.mesh import write_mesh

    write_mesh(tmp_path / "scan" / "body1.ply", bodies[1] + [0.0, 0.0, 0.01], t.faces)
    s3 = run_stage(stage, ctx, InlineExecutor(threads=1), progress=False)
    assert (s3.done, s3.failed, s3.skipped) == (1, 1, 1)

    # downstream: the neutralize stage's reader and the dataset build's reader take sources.csv
    from bodydata.dataset.pairing import read_inputs
    from bodydata.neutral.neutralize import read_pose_manifest
    from bodydata.pipeline.stage_neutralize import make_stage as neutral_stage

    groups = read_pose_manifest(out / "sources.csv")
    assert list(groups) == ["7"] and sorted(lbl for lbl, _ in groups["7"]) == ["0", "1"]
    assert all(p.is_file() and p.parent == out / "aligned" for _, p in groups["7"])
    items = list(neutral_stage(template=str(tdir)).items(StageContext(out_dir=tmp_path / "n", input_dir=out)))
    assert [it.key for it in items] == ["7"] and len(items[0].inputs) == 2
    records, failures = read_inputs([out / "sources.csv"])
    assert sorted(r.id for r in records) == ["lite/body0", "lite/body1"] and [f.id for f in failures] == ["lite/broken"]
    with open(out / "sources.csv", newline="") as fh:
        ok = [r for r in csv.DictReader(fh) if r["status"] == "done"]
    assert {r["n_vertices"] for r in ok} == {str(t.n_vertices)}
    assert all(r["sha256"] == sha256_file(out / r["path"]) for r in ok)


def test_prior_is_built_once_for_anny_templates(lite, tmp_path):
    from bodydata.pipeline import stage_convert
    from bodydata.pipeline.stage import StageContext
    from bodydata.registration.prior import SparsePrior

    _, tdir, *_ = lite
    opts = dict(template=str(tdir), prior=None, prior_components=8, prior_identities=2, prior_poses=2,
                prior_falloff=0.05, prior_seed=3)
    ctx = StageContext(out_dir=tmp_path)
    path, built = stage_convert._resolve_prior(ctx, opts)
    assert built and path.parent == (tmp_path / "prior").resolve() and SparsePrior.load(path).K == 8
    stamp = path.stat().st_mtime_ns
    again, _ = stage_convert._resolve_prior(ctx, opts)
    assert again == path and path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    rep = json.loads(path.with_suffix(".json").read_text())
    assert rep["n_train"] == 4 and rep["settings"]["components"] == 8
    # a non-anny template needs an explicit prior
    from bodydata.pipeline.stage import StageError

    meta = json.loads((tdir / "template.json").read_text())
    other = tmp_path / "tpl"
    other.mkdir()
    for f in tdir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    meta["meta"].pop("anny_topology")
    (other / "template.json").write_text(json.dumps(meta))
    with pytest.raises(StageError, match="give the 'prior' option"):
        stage_convert._resolve_prior(ctx, {**opts, "template": str(other)})


def test_bad_registration_option_is_refused():
    from bodydata.pipeline.stage import StageError
    from bodydata.pipeline.stage_convert import make_stage

    with pytest.raises(StageError, match="unknown registration option"):
        make_stage(registration={"lambda_icpp": 1.0})


def test_cli_convert_runs_the_stage(lite, tmp_path):
    from click.testing import CliRunner

    from bodydata.cli.main import cli
    from bodydata.mesh import write_mesh
    from bodydata.pipeline.orchestrate import limit_threads
    from bodydata.registration.convert import read_results
    from bodydata.templates.landmarks import write_landmarks_csv

    limit_threads(1)  # inline runs are not limited by default; the machine is shared
    t, tdir, prior, bodies, _ = lite
    root = tmp_path / "data"
    root.mkdir()
    write_mesh(root / "a.ply", bodies[0], t.faces)
    (root / "b.ply").write_bytes(b"ply\nnonsense\n")
    write_landmarks_csv(root / "landmarks.csv", t.landmarks)
    out = tmp_path / "out"
    args = ["convert", "--source", "folder", "--root", str(root), "--template", str(tdir), "--prior", str(prior),
            "--out", str(out), "--workers", "0", "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output  # folder/b failed
    assert "1 of 2 converted (1 done, 0 skipped, 1 failed)" in res.output and "failed folder/b" in res.output
    rows = {r.id: r for r in read_results(out / "conversion.csv")}
    assert rows["folder/a"].status == "done" and Path(rows["folder/a"].out_path).parent == (out / "meshes").resolve()
    assert (out / "worst.png").is_file() and (out / "sources.csv").is_file()
    again = CliRunner().invoke(cli, args)
    assert "(0 done, 1 skipped, 1 failed)" in again.output, again.output
    redo = CliRunner().invoke(cli, args + ["--redo", "--match", "a$"])
    assert "1 of 1 converted (1 done, 0 skipped, 0 failed)" in redo.output, redo.output


def test_one_registrar_per_dask_worker(lite, tmp_path):
    """On a local cluster of 2 worker processes, 4 meshes: each worker builds the Registrar once."""
    from bodydata.pipeline import stage_convert
    from bodydata.pipeline.orchestrate import open_executor, run_stage
    from bodydata.pipeline.stage import StageContext

    t, tdir, prior, bodies, _ = lite
    src = _manifest(tmp_path / "scan", t, np.concatenate([bodies, bodies + [0.0, 0.0, 0.02]]))
    fast = {**FAST, "coarse_dists": [0.10, 0.03], "fine_dists": [0.02, 0.01], "fine_iters": 10}
    stage = stage_convert.make_stage(template=str(tdir), prior=str(prior), manifest=str(src), registration=fast,
                                     png=False)
    with open_executor("local", 2) as ex:
        s = run_stage(stage, StageContext(out_dir=tmp_path / "out"), ex, progress=False)
        builds = ex.client.run(stage_convert.registrar_builds)
    assert (s.done, s.failed) == (4, 1)
    assert sorted(builds.values()) in ([1, 1], [0, 1]), builds  # a worker that got only the broken file builds none


def test_cli_convert_with_landmark_pairs(lite, tmp_path):
    """A folder of meshes with no landmark file converts once a pair file names corresponding vertices."""
    from click.testing import CliRunner

    from bodydata.cli.main import cli
    from bodydata.mesh import write_mesh
    from bodydata.pipeline.orchestrate import limit_threads
    from bodydata.registration.convert import read_results

    limit_threads(1)
    t, tdir, prior, bodies, _ = lite
    root = tmp_path / "data"
    root.mkdir()
    write_mesh(root / "a.ply", bodies[0], t.faces)
    base = ["convert", "--source", "folder", "--root", str(root), "--template", str(tdir), "--prior", str(prior),
            "--workers", "0", "--quiet"]
    res = CliRunner().invoke(cli, base + ["--landmarks", "none", "--out", str(tmp_path / "none")])
    assert "0 of 1 converted" in res.output and "no landmarks" in res.output, res.output
    # by default (--landmarks auto) a mesh without landmarks gets them from anny fitted to it
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "auto")])
    assert res.exit_code == 0 and "1 of 1 converted" in res.output, res.output
    row = read_results(tmp_path / "auto" / "conversion.csv")[0]
    assert row.landmarks_from == "body fit" and row.p2m_mean_mm < 10 and row.body_fit_mm < 40
    # the source is in the template's own connectivity: the pairs are a vertex's id on both sides
    ids = [t.landmarks[k] for k in ("head_top", "wrist_L", "wrist_R", "knee_L", "knee_R", "heel_L", "heel_R")]
    (tmp_path / "pairs.txt").write_text("".join(f"{i} {i}\n" for i in ids))
    args = base + ["--out", str(tmp_path / "out"), "--landmark-schedule", "1", "--landmark-pairs",
                   str(tmp_path / "pairs.txt"), "--pairs-topology", f"anny_{TOPO}"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "1 of 1 converted" in res.output, res.output
    row = read_results(tmp_path / "out" / "conversion.csv")[0]
    # landmarks kept at full weight through the fine rounds (--landmark-schedule 1) end on their targets
    assert row.status == "done" and row.n_landmarks == len(ids) and row.landmark_error_mm < 2
    # the in-process batched path reads the pairs the same way
    batched = CliRunner().invoke(cli, args + ["--batch-size", "2", "--out", str(tmp_path / "batched")])
    assert batched.exit_code == 0 and "1 of 1 converted" in batched.output, batched.output
    brow = read_results(tmp_path / "batched" / "conversion.csv")[0]
    assert brow.status == "done" and brow.n_landmarks == len(ids) and brow.landmark_error_mm < 2
    junk = CliRunner().invoke(cli, args + ["--landmark-schedule", "1,x"])
    assert junk.exit_code == 2 and "--landmark-schedule" in junk.output
    # pairs reach only meshes with the pair topology's vertex count: a 1,229-vertex mesh gets none under smpl_6890
    bad = CliRunner().invoke(cli, args[:-1] + ["smpl_6890", "--landmarks", "none"])
    assert bad.exit_code == 1 and "0 of 1 converted" in bad.output and "no landmarks" in bad.output, bad.output
