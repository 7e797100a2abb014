"""Registering several meshes as one batch (Registrar.register_batch, the convert stage's batch_size): each body's
result equals registering it alone, failures stay per body, meshes of different sizes mix."""
from __future__ import annotations

import numpy as np
import pytest

from bodydata.registration.register import RegistrationConfig

FAST = {"device": "cpu", "coarse_dists": (0.10, 0.05, 0.03), "coarse_iters": 15, "fine_dists": (0.03, 0.02, 0.01),
        "fine_iters": 15}
# Batching only stacks the evaluations; every body keeps its own L-BFGS, so a batched body may differ from its
# solo registration by floating-point rounding alone (measured: < 1e-6 mm MED, < 0.02 mm per vertex).
MED_TOL = 1e-4        # metres: 0.1 mm
VERTEX_TOL = 1e-3     # metres: 1 mm, any vertex


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads made these registrations ~20x slower
    (386 s against 17 s for this file), not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _med(a, b):
    return float(np.linalg.norm(a - b, axis=1).mean())


@pytest.fixture(scope="module")
def batch_setup(anny_lite_template, tmp_path_factory):
    """Template, a registrar, three targets (two 1,229-vertex bodies, one 13,718-vertex body), their truths,
    each target registered alone, and the prior's path."""
    from bodydata.features.acap import AcapExtractor
    from bodydata.registration.prior import build_prior
    from bodydata.registration.register import Registrar
    from bodydata.generator.bodies import anny_bodies, transfer_landmarks

    t = anny_lite_template
    topo = "notoes_collapse10pc"
    train = anny_bodies(topo, 4, 3, seed=5)
    test = anny_bodies(topo, 3, 1, seed=5, first_identity=900, extra_topologies=("anny",))
    pr = build_prior(AcapExtractor(t.vertices, t.faces)(train.vertices[topo]).f, t.vertices, t.faces, t.part_labels,
                     40, "anny-lite")
    prior_path = pr.save(tmp_path_factory.mktemp("batch_prior") / "prior.npz")
    reg = Registrar(t, pr, RegistrationConfig(**FAST))
    truths = [test.vertices[topo][b] for b in range(3)]
    big = test.vertices["anny"][1]
    targets = [(truths[0], t.faces, dict(t.landmarks)),
               (big, test.faces["anny"], transfer_landmarks(t.landmarks, truths[1], big)),
               (truths[2], t.faces, dict(t.landmarks))]
    alone = [reg.register(*tg) for tg in targets]
    for r in alone:
        assert r.status == "done", r.reason
    return t, reg, targets, truths, alone, prior_path


def test_lockstep_lbfgs_equals_separate_runs(batch_setup):
    """Three separable problems of different difficulty: lockstep L-BFGS = three separate L-BFGS runs, each
    with its own iteration count."""
    import torch

    _, reg, _, _, _, _ = batch_setup
    scales = [1.0, 10.0, 100.0]   # Rosenbrock-like valleys, harder with the scale

    def energies(xs):
        return torch.stack([(1 - x[0, 0]) ** 2 + c * (x[0, 1] - x[0, 0] ** 2) ** 2 for x, c in zip(xs, scales)])

    solo = []
    for b in range(3):
        x = torch.tensor([[-1.2, 1.0]], dtype=torch.float64, requires_grad=True)
        _, it = reg._lbfgs_lockstep([[x]], lambda x=x, b=b: energies([x] * 3)[b:b + 1], 40)
        solo.append((x.detach().clone(), int(it[0])))
    xs = [torch.tensor([[-1.2, 1.0]], dtype=torch.float64, requires_grad=True) for _ in range(3)]
    first, its = reg._lbfgs_lockstep([[x] for x in xs], lambda: energies(xs), 40)
    for b in range(3):
        assert torch.allclose(xs[b].detach(), solo[b][0], atol=1e-12), (b, xs[b], solo[b][0])
        assert its[b] == solo[b][1]
    assert np.allclose(first, [(1 + 1.2) ** 2 + c * (1 - 1.44) ** 2 for c in scales])
    assert len(set(its.tolist())) > 1  # the bodies did stop at different iterations


def test_batch_of_different_bodies_and_sizes_matches_registering_alone(batch_setup):
    t, reg, targets, truths, alone, _ = batch_setup
    assert len({len(v) for v, _, _ in targets}) == 2  # 1,229 and 13,718 vertices in one batch
    got = reg.register_batch(targets)
    assert len(got) == 3
    for b, (res, solo) in enumerate(zip(got, alone)):
        assert res.status == "done", res.reason
        assert res.vertices.shape == (t.n_vertices, 3)
        med_b, med_1 = _med(res.vertices, truths[b]), _med(solo.vertices, truths[b])
        assert med_1 < 0.03, med_1                      # a real fit (the coarse template: ~1 cm)
        assert abs(med_b - med_1) < MED_TOL, (b, med_b, med_1)
        assert np.abs(res.vertices - solo.vertices).max() < VERTEX_TOL
        assert len(res.history) == len(solo.history) and res.iterations > 0
        assert res.seconds > 0 and np.isfinite(res.seconds)
    # the bodies are not mixed up: each batched result is far from the other bodies' truths
    assert _med(got[0].vertices, truths[2]) > 2 * _med(got[0].vertices, truths[0])


def test_batch_member_without_landmarks_fails_alone(batch_setup):
    _, reg, targets, truths, alone, _ = batch_setup
    v, f, _ = targets[1]
    got = reg.register_batch([targets[0], (v, f, {"nose_tip": 0, "chin": 1}), targets[2]])
    assert got[1].status == "failed" and got[1].reason.startswith("no landmarks"), got[1].reason
    assert np.all(np.isnan(got[1].vertices))
    for b in (0, 2):
        assert got[b].status == "done", got[b].reason
        assert abs(_med(got[b].vertices, truths[b]) - _med(alone[b].vertices, truths[b])) < MED_TOL


def test_batch_member_that_diverges_is_dropped(batch_setup):
    """A member whose energy turns non-finite comes back 'failed'; the batch is re-run without it."""
    import torch

    from bodydata.registration.register import Registrar

    _, reg, targets, truths, alone, _ = batch_setup
    calls = []

    class Flaky(Registrar):
        def _lbfgs_lockstep(self, groups, energy, max_iter):
            calls.append(len(groups))
            if len(groups) == 3:   # body 1 of the first batch blows up
                def bad():
                    e = energy()
                    return e + torch.tensor([0.0, float("nan"), 0.0], dtype=e.dtype)
                return super()._lbfgs_lockstep(groups, bad, max_iter)
            return super()._lbfgs_lockstep(groups, energy, max_iter)

    flaky = Flaky.__new__(Flaky)
    flaky.__dict__.update(reg.__dict__)
    got = flaky.register_batch(targets)
    assert got[1].status == "failed" and got[1].reason == "diverged: non-finite energy", got[1].reason
    assert calls[0] == 3 and set(calls[1:]) == {2}
    for b in (0, 2):
        assert got[b].status == "done", got[b].reason
        assert abs(_med(got[b].vertices, truths[b]) - _med(alone[b].vertices, truths[b])) < MED_TOL


def _stage_run(t_dir, prior_path, manifest, out, batch_size):
    """The convert stage over ``manifest`` in this process (the batched path needs the items listed here)."""
    from bodydata.pipeline import stage_convert
    from bodydata.pipeline.orchestrate import InlineExecutor, run_stage
    from bodydata.pipeline.stage import StageContext

    fast = {k: list(v) if isinstance(v, tuple) else v for k, v in FAST.items() if k != "device"}
    stage = stage_convert.make_stage(template=str(t_dir), prior=str(prior_path), manifest=str(manifest),
                                     registration=fast, device="cpu", png=False, batch_size=batch_size,
                                     landmarks="none")  # own landmarks only: x/nolm stays a failed row
    return run_stage(stage, StageContext(out_dir=out), InlineExecutor(), progress=False)


def test_convert_stage_in_batches(batch_setup, anny_lite_template_dir, tmp_path, monkeypatch):
    """batch_size=2 writes the rows and meshes that batch_size=1 writes (same order, same metrics, same files) and
    skips finished rows on a re-run."""
    from bodydata.mesh import read_mesh, write_mesh
    from bodydata.registration.convert import read_results
    from bodydata.registration.register import Registrar
    from bodydata.manifest.source_rows import ManifestRow
    from bodydata.manifest.source_rows import write_source_rows as write_manifest
    from bodydata.templates.landmarks import write_landmarks_csv

    _, _, targets, _, _, prior_path = batch_setup
    rows = []
    for k, (v, f, lm) in enumerate(targets):
        write_mesh(tmp_path / f"m{k}.ply", v, f)
        write_landmarks_csv(tmp_path / f"m{k}_lm.csv", lm)
        rows.append(ManifestRow(id=f"x/m{k}", source="folder", kind="mesh", path=str(tmp_path / f"m{k}.ply"),
                                topology="own", landmarks_path=str(tmp_path / f"m{k}_lm.csv"), status="done"))
    (tmp_path / "broken.ply").write_bytes(b"ply\nnonsense")
    rows.insert(1, ManifestRow(id="x/broken", source="folder", kind="mesh", path=str(tmp_path / "broken.ply"),
                               topology="own", status="done"))
    rows.append(ManifestRow(id="x/nolm", source="folder", kind="mesh", path=str(tmp_path / "m0.ply"), topology="own",
                            status="done"))
    ids = [r.id for r in rows]
    manifest = write_manifest(tmp_path / "sources.csv", rows)

    s1 = _stage_run(anny_lite_template_dir, prior_path, manifest, tmp_path / "one", 1)
    one = {r.id: r for r in read_results(tmp_path / "one" / "conversion.csv")}
    batches = []
    real = Registrar.register_batch
    monkeypatch.setattr(Registrar, "register_batch", lambda self, tg: batches.append(len(tg)) or real(self, tg))
    s2 = _stage_run(anny_lite_template_dir, prior_path, manifest, tmp_path / "two", 2)
    assert batches == [2, 1]         # m0 + m1 together, then m2 alone (nolm has no landmarks: never registered)
    assert (s2.done, s2.failed) == (s1.done, s1.failed) == (3, 2)
    two = {r.id: r for r in read_results(tmp_path / "two" / "conversion.csv")}
    assert list(two) == ids
    assert {k: r.status for k, r in two.items()} == {k: r.status for k, r in one.items()}
    assert [k for k, r in two.items() if r.status == "done"] == ["x/m0", "x/m1", "x/m2"]
    assert "broken.ply" in two["x/broken"].reason and "no landmarks" in two["x/nolm"].reason
    # the same files: a speed setting does not change what is written
    listing = sorted(p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*")
                     if p.is_file() and not p.name.startswith("manifest.journal"))
    assert listing == sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*")
                             if p.is_file() and not p.name.startswith("manifest.journal"))
    assert {"sources.csv", "manifest.csv", "aligned/x_m0.ply", "meshes/x_m2.ply"} <= set(listing)
    for k in ("x/m0", "x/m1", "x/m2"):
        a, b = one[k], two[k]
        assert b.n_landmarks == a.n_landmarks and b.iterations > 0
        for col in ("landmark_error_mm", "p2m_mean_mm", "m2p_mean_mm"):
            assert abs(getattr(a, col) - getattr(b, col)) < 0.1, (k, col)
        va, vb = read_mesh(a.out_path).vertices, read_mesh(b.out_path).vertices
        assert np.abs(va - vb).max() < VERTEX_TOL
    # a re-run registers nothing: finished rows are skipped (their seconds stay), failed ones are retried
    batches.clear()
    again = _stage_run(anny_lite_template_dir, prior_path, manifest, tmp_path / "two", 2)
    assert batches == [] and (again.skipped, again.failed) == (3, 2)
    table = {r.id: r for r in read_results(tmp_path / "two" / "conversion.csv")}
    for k in ("x/m0", "x/m1", "x/m2"):
        assert table[k].seconds == pytest.approx(two[k].seconds, abs=1e-3)
    assert table["x/broken"].status == "failed"


def test_cli_convert_batch_size(batch_setup, anny_lite_template_dir, tmp_path):
    """``bodydata convert --batch-size 2``: the folder's meshes through the convert stage in one process, failures
    as rows (exit status 1), re-run skips."""
    from click.testing import CliRunner

    from bodydata.cli.main import cli
    from bodydata.mesh import write_mesh
    from bodydata.registration.convert import read_results
    from bodydata.templates.landmarks import write_landmarks_csv

    t, _, _, truths, _, prior_path = batch_setup
    root = tmp_path / "data"
    root.mkdir()
    write_mesh(root / "a.ply", truths[0], t.faces)
    write_mesh(root / "c.ply", truths[2], t.faces)
    (root / "b.ply").write_bytes(b"ply\nnonsense\n")
    write_landmarks_csv(root / "landmarks.csv", t.landmarks)
    out = tmp_path / "out"
    args = ["convert", "--source", "folder", "--root", str(root), "--template", str(anny_lite_template_dir),
            "--prior", str(prior_path), "--out", str(out), "--batch-size", "2", "--device", "cpu", "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output  # one mesh failed
    assert "2 of 3 converted (2 done, 0 skipped, 1 failed)" in res.output and "failed folder/b" in res.output, res.output
    # the outputs of an unbatched run: the stage manifest, the aligned copies and the converted meshes' manifest
    assert (out / "manifest.csv").is_file() and (out / "sources.csv").is_file()
    assert (out / "aligned" / "folder_a.ply").is_file()
    rows = {r.id: r for r in read_results(out / "conversion.csv")}
    assert [rows[k].status for k in ("folder/a", "folder/b", "folder/c")] == ["done", "failed", "done"]
    assert rows["folder/a"].p2m_mean_mm < 10 and (out / "meshes" / "folder_c.ply").is_file()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "(0 done, 2 skipped, 1 failed)" in again.output, again.output
    rows2 = {r.id: r for r in read_results(out / "conversion.csv")}
    assert rows2["folder/c"].seconds == pytest.approx(rows["folder/c"].seconds, abs=1e-3)
    bad = CliRunner().invoke(cli, args + ["--batch-size", "0"])
    assert bad.exit_code != 0
