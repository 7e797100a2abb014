"""The scape template from the real files in ../shared/data (skipped when absent)."""
import numpy as np
import pytest

from bodydata.errors import TemplateError
from bodydata.templates.parts import PART_INDEX, PART_NAMES, part_graph_problems
from bodydata.templates.scape import identify_parts, read_source_labels


@pytest.fixture(scope="module")
def scape_sources(shared_data):
    paths = {
        "mesh": shared_data / "scape" / "original_12500" / "mesh000.off",
        "faces": shared_data / "dhnn" / "template_connectivity" / "0.obj",
        "labels": shared_data / "spring" / "data" / "body_part.obj",
        "labels_txt": shared_data / "spring" / "data" / "body_part_vertex_labels_DERIVED.txt",
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.skip(f"real data files absent: {', '.join(missing)}")
    return paths


@pytest.fixture(scope="module")
def scape_template(scape_sources):
    from bodydata.templates.template import build_template

    return build_template("scape", {k: scape_sources[k] for k in ("mesh", "faces", "labels")})


def test_scape_template_parts_axes_and_validity(scape_template):
    t = scape_template
    assert (t.n_vertices, t.n_faces) == (12500, 24995)
    assert len(np.unique(t.part_labels)) == 16 and t.part_labels.shape == (12500,)
    assert (t.up_axis, t.front_axis, t.left_axis) == ("x", "-y", "-z")
    assert part_graph_problems(t.part_graph()) == []
    t.validate(strict=True)
    sizes = t.part_sizes()
    assert sum(sizes.values()) == 12500 and min(sizes.values()) > 300
    # anatomy in SCAPE's frame: head highest along +x, left limbs at -z
    c = {name: t.vertices[t.part_labels == i].mean(axis=0) for i, name in enumerate(PART_NAMES)}
    assert max(c, key=lambda k: c[k][0]) == "head_neck"
    for limb in ("upper_arm", "forearm", "hand", "thigh", "calf", "foot"):
        assert c[f"{limb}_L"][2] < c["chest"][2] < c[f"{limb}_R"][2]
    assert c["thigh_L"][0] > c["calf_L"][0] > c["foot_L"][0]


def test_text_labels_give_the_same_parts(scape_sources, scape_template):
    from bodydata.templates.template import build_template

    t = build_template("scape", {"mesh": scape_sources["mesh"], "faces": scape_sources["faces"], "labels": scape_sources["labels_txt"]})
    assert np.array_equal(t.part_labels, scape_template.part_labels)


def test_mirrored_body_swaps_left_and_right(scape_sources, scape_template):
    from bodydata.mesh import read_mesh

    v = read_mesh(scape_sources["mesh"]).vertices * np.array([1.0, 1.0, -1.0])  # mirror across the mid-plane
    f = scape_template.faces[:, ::-1]
    src, _ = read_source_labels(scape_sources["labels"])
    mapping, axes = identify_parts(v, f, src)
    mirrored = mapping[src]
    swap = np.arange(16)
    for a, b in (("upper_arm_L", "upper_arm_R"), ("forearm_L", "forearm_R"), ("hand_L", "hand_R"),
                 ("thigh_L", "thigh_R"), ("calf_L", "calf_R"), ("foot_L", "foot_R")):  # fmt: skip
        swap[PART_INDEX[a]], swap[PART_INDEX[b]] = PART_INDEX[b], PART_INDEX[a]
    assert np.array_equal(mirrored, swap[scape_template.part_labels])
    assert axes["left"][2] < -0.99  # the frame is unchanged (up +x, front -y): what was on -z is now on +z


def test_bad_label_files(scape_sources, tmp_path):
    p = tmp_path / "labels.txt"
    np.savetxt(p, np.zeros(12500, dtype=int), fmt="%d")
    with pytest.raises(TemplateError, match="has 1 distinct part labels/colours, expected 16"):
        read_source_labels(p)
    np.savetxt(p, np.arange(12499) % 16, fmt="%d")
    with pytest.raises(TemplateError, match="has 12499 labels, expected 12500"):
        read_source_labels(p)
    from bodydata.mesh import read_mesh

    src, _ = read_source_labels(scape_sources["labels"])
    mesh = read_mesh(scape_sources["mesh"])
    shuffled = (src + 1) % 16  # same partition, different numbering: the names must not change
    m1, _ = identify_parts(mesh.vertices, read_mesh(scape_sources["faces"]).faces, shuffled)
    m0, _ = identify_parts(mesh.vertices, read_mesh(scape_sources["faces"]).faces, src)
    assert np.array_equal(m1[shuffled], m0[src])
    broken = src.copy()
    broken[src == 5] = 7  # two parts merged: 15 labels
    broken[:10] = 5
    with pytest.raises(TemplateError, match="not a tree|degrees|3-part arms"):
        identify_parts(mesh.vertices, read_mesh(scape_sources["faces"]).faces, broken)


def test_cli_build_scape(scape_sources, tmp_path):
    from click.testing import CliRunner

    from bodydata.cli.main import cli

    args = ["template", "build", "scape", "--out", str(tmp_path / "scape"), "--no-png"]
    for key in ("mesh", "faces", "labels"):
        args += [f"--{key}", str(scape_sources[key])]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "built template scape: 12500 vertices, 24995 faces" in res.output
