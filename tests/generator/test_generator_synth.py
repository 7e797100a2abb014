"""anny body generator: byte-identical reruns, runs that extend earlier ones, ground truth that reproduces each mesh,
the plausibility checks, the second connectivity and the CLI. Uses the 1,229-vertex topology to stay fast."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
anny = pytest.importorskip("anny")

from bodydata.fsutil import sha256_file  # noqa: E402
from bodydata.mesh import read_mesh  # noqa: E402
from bodydata.generator import poses as anny_poses  # noqa: E402
from bodydata.generator.synth import (  # noqa: E402
    AnnySynth,
    PhenotypeDistribution,
    SynthError,
    _load_calibration,
    run_synth,
    sample_phenotype,
)

TOPO = "notoes_collapse10pc"


@pytest.fixture(scope="module")
def synth() -> AnnySynth:
    return AnnySynth(topology=TOPO)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path, synth):
    a = run_synth(tmp_path / "a", 2, 3, seed=11, synth=synth, progress=False, sheet=True)
    # a freshly built generator, so nothing cached in the first one can hide nondeterminism
    b = run_synth(tmp_path / "b", 2, 3, seed=11, topology=TOPO, progress=False, sheet=True)
    ha, hb = _hashes(a.out_dir), _hashes(b.out_dir)
    assert len(ha) == 2 * 3 * 2 + 2 + 3  # meshes + truth, neutrals, csv + json + sheet
    assert ha == hb
    c = run_synth(tmp_path / "c", 2, 3, seed=12, synth=synth, progress=False, sheet=False)
    hc = _hashes(c.out_dir)
    assert all(hc[k] != ha[k] for k in hc if k.startswith("neutral"))
    mesh_hashes = lambda h: {v for k, v in h.items() if k.startswith("meshes")}  # noqa: E731
    assert not mesh_hashes(ha) & mesh_hashes(hc)


def test_more_identities_and_poses_extend_without_changing_earlier_files(tmp_path, synth):
    small = _hashes(run_synth(tmp_path / "s", 2, 2, seed=5, synth=synth, progress=False, sheet=False).out_dir)
    big = _hashes(run_synth(tmp_path / "b", 3, 4, seed=5, synth=synth, progress=False, sheet=False).out_dir)
    shared = [k for k in small if k.startswith(("meshes", "neutral", "truth"))]
    assert len(shared) == 2 * 2 * 2 + 2
    assert all(small[k] == big[k] for k in shared)
    rows_small = (tmp_path / "s" / "identities.csv").read_text().splitlines()
    rows_big = (tmp_path / "b" / "identities.csv").read_text().splitlines()
    assert rows_big[: len(rows_small)] == rows_small


def test_truth_reproduces_each_mesh_and_neutral(tmp_path, synth):
    out = run_synth(tmp_path / "t", 2, 3, seed=3, synth=synth, progress=False, sheet=False).out_dir
    meta = json.loads((out / "synth.json").read_text())
    assert meta["anny_version"] == anny.__version__ and meta["arguments"]["seed"] == 3
    labels = meta["bone_labels"]
    model = anny.Anny(topology=TOPO)
    assert list(model.bone_labels) == labels
    truths = sorted((out / "truth").rglob("*.json"))
    assert len(truths) == 6
    from scipy.spatial.transform import Rotation

    for tpath in truths:
        t = json.loads(tpath.read_text())
        mesh = read_mesh(out / t["mesh"])
        assert mesh.vertices.shape == (1229, 3)
        pheno = torch.tensor([[t["phenotype"][k] for k in model.phenotype_labels]], dtype=torch.float64)
        params = torch.eye(4, dtype=torch.float64).repeat(1, len(labels), 1, 1)
        params[0, :, :3, :3] = torch.from_numpy(Rotation.from_rotvec(np.array(t["bone_rotvecs"])).as_matrix())
        with torch.no_grad():
            v = model(pose_parameters=params, phenotype_kwargs=pheno)["vertices"][0].numpy()
            v0 = model(phenotype_kwargs=pheno)["vertices"][0].numpy()
        assert np.abs(v - mesh.vertices).max() < 1e-9
        assert np.abs(v0 - read_mesh(out / t["neutral"]).vertices).max() < 1e-12
        assert t["pose_name"] in anny_poses.KEY_POSES
        assert tpath.stem == f"{t['pose_name']}_{t['pose_index']:03d}"
        # the anatomical angles are the ones that generate the stored rotations
        angles = np.array([t["angles_deg"][k] for k in meta["dof_keys"]])
        rot = synth.rig.rotations(angles[None])[0]
        assert np.allclose(Rotation.from_matrix(rot).as_rotvec(), np.array(t["bone_rotvecs"]), atol=1e-9)
    with open(out / "identities.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["identity"] for r in rows] == ["anny00000", "anny00001"]
    assert 1.3 < float(rows[0]["stature_m"]) < 2.1


def test_phenotype_distribution_is_adult_and_documented():
    cal = _load_calibration()
    d = PhenotypeDistribution()
    ps = [sample_phenotype(0, i, d, cal) for i in range(300)]
    assert ps[17] == sample_phenotype(0, 17, d, cal)
    sexes = [p.sex for p in ps]
    assert 100 < sexes.count("male") < 200
    for p in ps:
        assert d.min_age <= p.age_years <= d.max_age
        assert (p.gender <= d.gender_spread) if p.sex == "male" else (p.gender >= 1 - d.gender_spread)
        assert all(0.0 <= v <= 1.0 for v in p.values().values())
        assert 0.76 < p.age < 0.875  # anny mapping: 18 y -> 0.77, 64 y -> 0.83, 75 y -> 0.87, 110 y -> 1.0
    male_h = np.mean([p.height for p in ps if p.sex == "male"])
    assert 0.3 < male_h < 0.5  # anny's WHO-calibrated adult Beta(16.5, 25.7): mean 0.39


def test_checks_reject_an_exploded_limb_and_changed_bone_lengths(synth):
    phen = synth.phenotype(0, 0)
    neutral = synth.forward(phen, None)
    v0, h0 = neutral["vertices"][0], neutral["bone_heads"][0]
    posed = synth.forward(phen, np.stack([anny_poses.key_pose_vector("walking_left_forward")] * 3))
    v, h = posed["vertices"].copy(), posed["bone_heads"].copy()
    m = synth.models[TOPO]
    left_arm = [synth.bone_labels.index(b) for b in ("lowerarm01.L", "lowerarm02.L", "wrist.L")]
    dominant = m.vertex_bone_indices.numpy()[np.arange(len(v0)), m.vertex_bone_weights.numpy().argmax(1)]
    arm = np.isin(dominant, left_arm)
    assert arm.sum() > 20
    v[1, arm] = v[1, arm] * 3.0  # forearm blown up
    h[2, left_arm[0]] += np.array([0.0, 0.0, 0.05])  # elbow moved: bone length changed
    ok, inter, stretch = synth.check(v, h, v0, h0)
    assert ok.tolist() == [True, False, False]
    assert stretch[0] < synth.max_edge_stretch < stretch[1]
    assert inter[0] >= 0


def test_second_connectivity_is_the_same_body(tmp_path):
    out = run_synth(tmp_path / "x", 1, 2, seed=2, topology="notoes", extra_topologies=("anny",), progress=False,
                    sheet=False, check_intersections=False).out_dir
    from scipy.spatial import cKDTree

    for stem in sorted(p.name for p in (out / "meshes" / "anny00000").iterdir()):
        a = read_mesh(out / "meshes" / "anny00000" / stem).vertices
        b = read_mesh(out / "anny" / "meshes" / "anny00000" / stem).vertices
        assert a.shape == (12272, 3) and b.shape == (13718, 3)
        d, _ = cKDTree(b).query(a)
        # notoes is anny's default mesh with the toes collapsed: 99.7 % of its vertices coincide
        assert np.mean(d < 1e-9) > 0.99 and d.max() < 0.01
    assert (out / "anny" / "neutral" / "anny00000.ply").is_file()


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(SynthError, match="unknown topology"):
        AnnySynth(topology="smpl")
    with pytest.raises(SynthError, match="unknown pose names"):
        AnnySynth(topology=TOPO, pose_names=["moonwalk"])


def test_cli_writes_the_layout(tmp_path):
    from click.testing import CliRunner

    from bodydata.cli.main import cli

    out = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["synth", "anny", "--identities", "1", "--poses", "2", "--seed", "4", "--topology", TOPO,
                                   "--out", str(out), "--no-sheet", "--quiet", "--pose-names", "sitting,t_pose"])
    assert res.exit_code == 0, res.output
    assert "wrote 2 bodies" in res.output
    names = sorted(p.name for p in (out / "meshes" / "anny00000").iterdir())
    assert {n.rsplit("_", 1)[0] for n in names} == {"sitting", "t_pose"}
    assert (out / "neutral" / "anny00000.ply").is_file() and (out / "synth.json").is_file()
    bad = CliRunner().invoke(cli, ["synth", "anny", "--identities", "1", "--poses", "1", "--out", str(out),
                                   "--pose-names", "moonwalk", "--quiet"])
    assert bad.exit_code != 0 and "unknown pose names" in bad.output


def test_subdiv_connectivity_has_an_exact_map_back(tmp_path):
    out = run_synth(tmp_path / "sd", 2, 2, seed=1, topology=TOPO, extra_topologies=("subdiv",), progress=False,
                    sheet=False, check_intersections=False).out_dir
    mp = np.load(out / "subdiv" / "map.npz")
    face_ids, bary, faces, src_faces = mp["face_ids"], mp["barycentrics"], mp["faces"], mp["source_faces"]
    n_src = 1229
    n_edges = len({tuple(sorted(e)) for f in src_faces.tolist() for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))})
    assert face_ids.shape == (n_src + n_edges,) and len(faces) == 4 * len(src_faces)
    assert np.allclose(bary.sum(1), 1.0) and bary.min() >= 0.0
    meta = json.loads((out / "synth.json").read_text())
    assert meta["topologies"]["subdiv"]["derived_from"] == TOPO
    from bodydata.mesh.subdivision import jittered_subdivision

    for stem in sorted(p.name for p in (out / "meshes" / "anny00001").iterdir()):
        main = read_mesh(out / "meshes" / "anny00001" / stem)
        sub = read_mesh(out / "subdiv" / "meshes" / "anny00001" / stem)
        assert np.array_equal(sub.faces, faces)
        for k in range(0, len(face_ids), 997):  # plain per-vertex reference
            corners = main.vertices[src_faces[face_ids[k]]]
            expect = bary[k, 0] * corners[0] + bary[k, 1] * corners[1] + bary[k, 2] * corners[2]
            assert np.allclose(sub.vertices[k], expect, atol=1e-12)
    neutral = read_mesh(out / "neutral" / "anny00001.ply").vertices
    sub_neutral = read_mesh(out / "subdiv" / "neutral" / "anny00001.ply").vertices
    plain = jittered_subdivision(src_faces, n_src, np.random.default_rng(0), TOPO, 0.0, 0.0).apply(neutral)

    def normals(v):
        n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    assert np.einsum("ij,ij->i", normals(plain), normals(sub_neutral)).min() > 0.0  # nothing inverted
    from scipy.spatial import cKDTree

    d, _ = cKDTree(neutral).query(sub_neutral)
    assert np.mean(d < 1e-12) < 0.05  # a different vertex set, not the template's vertices again
