"""read_mesh / write_mesh: exact round trips, polygon handling, one-line errors, atomic writes."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from bodydata.errors import MeshError
from bodydata.mesh import read_mesh, write_mesh
from bodydata.mesh.validate import check_mesh_arrays


def tetra(seed=0):
    """4 vertices with full-precision random coordinates (tests exact float64 round trips), 4 faces."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(4, 3)) * np.array([1e-7, 1.0, 1e5])  # awkward magnitudes on purpose
    v[0, 0] = 0.1  # not representable in binary: needs all 17 digits in ASCII
    f = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]], dtype=np.int64)
    c = rng.integers(0, 256, size=(4, 3)).astype(np.uint8)
    c[0] = [0, 1, 255]  # extremes and a 0/1 colour that a careless reader would rescale
    return v, f, c


def assert_one_line_error(exc_info, path, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    for n in needles:
        assert n in msg, msg


ROUND_TRIPS = [("mesh.ply", True), ("mesh.ply", False), ("mesh.obj", True), ("mesh.off", True)]


@pytest.mark.parametrize("name,binary", ROUND_TRIPS)
@pytest.mark.parametrize("with_colors", [False, True])
def test_round_trip_is_exact(tmp_path, name, binary, with_colors):
    v, f, c = tetra()
    p = tmp_path / name
    out = write_mesh(p, v, f, colors=c if with_colors else None, binary=binary)
    assert out == p and p.is_file()
    m = read_mesh(p)
    assert m.vertices.dtype == np.float64 and m.faces.dtype == np.int64
    assert np.array_equal(m.vertices, v)  # bit-exact, not allclose
    assert np.array_equal(m.faces, f)
    assert m.path == str(p)
    if with_colors:
        assert m.colors is not None and m.colors.dtype == np.uint8
        assert np.array_equal(m.colors, c)
    else:
        assert m.colors is None
    # Nothing else left in the folder (no temp files).
    assert [x.name for x in tmp_path.iterdir()] == [name]


def test_ply_ascii_and_binary_headers(tmp_path):
    v, f, _ = tetra()
    write_mesh(tmp_path / "b.ply", v, f)
    write_mesh(tmp_path / "a.ply", v, f, binary=False)
    assert b"format binary_little_endian 1.0" in (tmp_path / "b.ply").read_bytes()[:200]
    assert b"format ascii 1.0" in (tmp_path / "a.ply").read_bytes()[:200]


OBJ_POLYGONS = """# a square, a pentagon and a triangle, with texture and normal indices
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 2 0 0
v 2 1 0
v 1.5 2 0
vt 0 0
vn 0 0 1
f 1/1/1 2/1/1 3/1/1 4/1/1
f 2//1 5//1 6//1 7//1 3//1
f -7/1 -6/1 -4/1
"""


def test_obj_polygons_are_fan_triangulated(tmp_path):
    p = tmp_path / "poly.obj"
    p.write_text(OBJ_POLYGONS)
    m = read_mesh(p)
    assert m.vertices.shape == (7, 3)
    # quad 0,1,2,3 -> (0,1,2), (0,2,3); pentagon 1,4,5,6,2 -> three fans; negative -7,-6,-4 -> 0,1,3
    expected = [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 6], [1, 6, 2], [0, 1, 3]]
    assert m.faces.tolist() == expected
    with pytest.raises(MeshError) as err:
        read_mesh(p, triangulate=False)
    assert_one_line_error(err, p, "face 0 has 4 corners")


def test_obj_negative_indices_count_from_last_vertex_so_far(tmp_path):
    p = tmp_path / "neg.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\nv 0 0 1\nf -4 -3 -1\n")
    assert read_mesh(p).faces.tolist() == [[0, 1, 2], [0, 1, 3]]


def test_off_with_quads_and_comments(tmp_path):
    p = tmp_path / "q.off"
    p.write_text("OFF\n# comment\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    assert read_mesh(p).faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    with pytest.raises(MeshError, match="only triangles"):
        read_mesh(p, triangulate=False)


def _hand_written_ply(path, vertices_f32, faces, colors=None, endian="<", extra_face_prop=False):
    """A binary PLY as other tools write it: float32 xyz, optional uchar rgb, 'list uint8 int' faces."""
    lines = ["ply", f"format binary_{'little' if endian == '<' else 'big'}_endian 1.0", "comment by hand",
             f"element vertex {len(vertices_f32)}", "property float x", "property float y", "property float z"]
    if colors is not None:
        lines += ["property uchar red", "property uchar green", "property uchar blue"]
    lines += [f"element face {len(faces)}", "property list uint8 int vertex_indices"]
    if extra_face_prop:
        lines += ["property uchar flags"]
    lines += ["end_header"]
    body = b""
    for i, xyz in enumerate(vertices_f32):
        body += struct.pack(endian + "3f", *xyz)
        if colors is not None:
            body += struct.pack("3B", *colors[i])
    for poly in faces:
        body += struct.pack(endian + "B" + "i" * len(poly), len(poly), *poly)
        if extra_face_prop:
            body += b"\x07"
    path.write_bytes(("\n".join(lines) + "\n").encode("ascii") + body)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_hand_written_float32_ply(tmp_path, endian):
    v32 = np.array([[0.1, 0.2, 0.3], [1.5, -2.25, 3.0], [7.0, 8.0, 9.125], [0, 0, 1]], dtype=np.float32)
    f = [[0, 1, 2], [0, 2, 3]]
    col = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 1, 1]]
    p = tmp_path / "h.ply"
    _hand_written_ply(p, v32, f, colors=col, endian=endian)
    m = read_mesh(p)
    assert m.vertices.dtype == np.float64
    assert np.array_equal(m.vertices, v32.astype(np.float64))  # float32 widened exactly
    assert m.faces.tolist() == f
    assert m.colors.tolist() == col


def test_hand_written_ply_mixed_polygons_and_extra_face_property(tmp_path):
    v32 = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], dtype=np.float32)
    p = tmp_path / "mixed.ply"
    _hand_written_ply(p, v32, [[0, 1, 2, 3], [1, 4, 2]], extra_face_prop=True)
    assert read_mesh(p).faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]


def test_ascii_ply_with_quads(tmp_path):
    p = tmp_path / "a.ply"
    p.write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    )
    assert read_mesh(p).faces.tolist() == [[0, 1, 2], [0, 2, 3]]


# ----------------------------------------------------------------------------------------------
# errors: every one a single line "path: reason"

PLY_HEAD = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n")


def test_missing_empty_folder_and_unknown_suffix(tmp_path):
    with pytest.raises(MeshError) as err:
        read_mesh(tmp_path / "nope.ply")
    assert_one_line_error(err, tmp_path / "nope.ply", "does not exist")
    (tmp_path / "empty.obj").write_bytes(b"")
    with pytest.raises(MeshError) as err:
        read_mesh(tmp_path / "empty.obj")
    assert_one_line_error(err, tmp_path / "empty.obj", "empty")
    (tmp_path / "dir.ply").mkdir()
    with pytest.raises(MeshError) as err:
        read_mesh(tmp_path / "dir.ply")
    assert_one_line_error(err, tmp_path / "dir.ply", "folder")
    (tmp_path / "m.stl").write_text("solid x\n")
    with pytest.raises(MeshError) as err:
        read_mesh(tmp_path / "m.stl")
    assert_one_line_error(err, tmp_path / "m.stl", "unsupported format '.stl'")


@pytest.mark.parametrize(
    "name,content,needle",
    [
        ("noply.ply", "plx\nformat ascii 1.0\nend_header\n", "does not start with 'ply'"),
        ("noend.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n", "no 'end_header'"),
        ("noformat.ply", "ply\nelement vertex 1\nproperty float x\nend_header\n0\n", "no 'format' line"),
        ("badcount.ply", "ply\nformat ascii 1.0\nelement vertex -3\nend_header\n", "negative element count"),
        ("badtype.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n0\n", "bad property"),
        ("badmagic.off", "OFX\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "expected 'OFF'"),
        ("nocounts.off", "OFF\n", "missing vertex/face counts"),
        ("truncated.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n", "truncated"),
        ("words.off", "OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n", "not 3 numbers"),
        ("truncated_ascii.ply", PLY_HEAD + "0 0 0\n1 0 0\n", "truncated"),
        ("idx0.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "face index 0"),
        ("badv.obj", "v 0 0\n", "fewer than 3 coordinates"),
        ("novert.obj", "# nothing\nf 1 2 3\n", "no vertices"),
        ("twocorners.obj", "v 0 0 0\nv 1 0 0\nf 1 2\n", "face 0 has 2 corners"),
    ],
)
def test_unparsable_files(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, needle)


@pytest.mark.parametrize("cut", ["vertices", "faces"])
def test_truncated_binary_ply(tmp_path, cut):
    v, f, _ = tetra()
    p = tmp_path / "t.ply"
    write_mesh(p, v, f)
    data = p.read_bytes()
    # Vertex block ends 4 * 24 bytes after the header; each face row is 13 bytes.
    keep = len(data) - 4 * 13 - 10 if cut == "vertices" else len(data) - 5
    p.write_bytes(data[:keep])
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "truncated", "'vertex'" if cut == "vertices" else "'face'")


def test_binary_garbage_in_obj_is_a_mesh_error(tmp_path):
    p = tmp_path / "bin.obj"
    p.write_bytes(b"v 0 0 0\n\xff\xfe\x00garbage\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "cannot parse OBJ")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply"])
def test_non_finite_coordinates(tmp_path, bad, suffix):
    p = tmp_path / f"nf{suffix}"
    verts = f"0 0 0\n1 {bad} 0\n0 1 0\n"
    if suffix == ".obj":
        p.write_text("".join(f"v {ln}\n" for ln in verts.splitlines()) + "f 1 2 3\n")
    elif suffix == ".off":
        p.write_text(f"OFF\n3 1 0\n{verts}3 0 1 2\n")
    else:
        p.write_text(PLY_HEAD + verts + "3 0 1 2\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "non-finite", "vertex 1", "NaN" if bad == "nan" else "infinite")


def test_face_index_out_of_range_and_degenerate(tmp_path):
    p = tmp_path / "oor.off"
    p.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "face 0", "out of range [0, 3)")
    p = tmp_path / "negidx.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 -4\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "out of range")
    p = tmp_path / "deg.ply"
    p.write_text(PLY_HEAD + "0 0 0\n1 0 0\n0 1 0\n3 0 1 1\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "degenerate", "face 0 = [0, 1, 1]")
    assert read_mesh(p, check_degenerate=False).faces.tolist() == [[0, 1, 1]]


def test_expected_vertices_and_faces(tmp_path):
    v, f, _ = tetra()
    p = tmp_path / "t.off"
    write_mesh(p, v, f)
    read_mesh(p, expected_vertices=4, expected_faces=f)  # matches: no error
    with pytest.raises(MeshError) as err:
        read_mesh(p, expected_vertices=6890)
    assert_one_line_error(err, p, "has 4 vertices, the topology expects 6890")
    g = f.copy()
    g[2] = g[2, ::-1]
    with pytest.raises(MeshError) as err:
        read_mesh(p, expected_faces=g)
    assert_one_line_error(err, p, "connectivity differs", "first differing face 2")
    with pytest.raises(MeshError) as err:
        read_mesh(p, expected_faces=f[:3])
    assert_one_line_error(err, p, "connectivity differs", "4 faces vs 3")


def test_check_mesh_arrays_without_path():
    with pytest.raises(MeshError, match=r"^<array>: vertices have shape \(3, 2\)"):
        check_mesh_arrays(np.zeros((3, 2)), np.zeros((0, 3), int))
    with pytest.raises(MeshError, match="non-integer dtype"):
        check_mesh_arrays(np.zeros((3, 3)), np.array([[0.0, 1.0, 2.0]]))


# ----------------------------------------------------------------------------------------------
# atomic writes


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".off"])
def test_failed_write_leaves_nothing_and_keeps_existing_file(tmp_path, suffix):
    v, f, _ = tetra()
    dst = tmp_path / f"out{suffix}"
    bad = v.copy()
    bad[1, 2] = np.nan
    with pytest.raises(MeshError) as err:
        write_mesh(dst, bad, f)
    assert_one_line_error(err, dst, "non-finite")
    assert list(tmp_path.iterdir()) == []

    write_mesh(dst, v, f)
    before = dst.read_bytes()
    mtime = dst.stat().st_mtime_ns
    for args in [(bad, f), (v, f + 10), (v, f.astype(float) + 0.5)]:
        with pytest.raises(MeshError):
            write_mesh(dst, *args)
    with pytest.raises(MeshError):
        write_mesh(dst, v, f, colors=np.zeros((3, 3), np.uint8))
    assert dst.read_bytes() == before and dst.stat().st_mtime_ns == mtime
    assert [x.name for x in tmp_path.iterdir()] == [dst.name]


def test_write_error_inside_writer_removes_temp_file(tmp_path, monkeypatch):
    """A crash half-way through writing (here: disk full simulated) leaves the old file and no temp file."""
    from bodydata.mesh import io as mio

    v, f, _ = tetra()
    dst = tmp_path / "x.ply"
    write_mesh(dst, v, f)
    before = dst.read_bytes()

    def boom(path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"ply\npartial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mio, "_write_ply", boom)
    with pytest.raises(OSError):
        write_mesh(dst, v, f)
    assert dst.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["x.ply"]


def test_write_unknown_suffix(tmp_path):
    v, f, _ = tetra()
    with pytest.raises(MeshError) as err:
        write_mesh(tmp_path / "m.stl", v, f)
    assert_one_line_error(err, tmp_path / "m.stl", "unsupported format")
    assert list(tmp_path.iterdir()) == []


def test_write_creates_parent_folders(tmp_path):
    v, f, _ = tetra()
    p = tmp_path / "a" / "b" / "m.off"
    write_mesh(p, v, f)
    assert np.array_equal(read_mesh(p).vertices, v)
    assert os.listdir(p.parent) == ["m.off"]


def test_off_colours_integer_vs_float_notation(tmp_path):
    p = tmp_path / "c.off"
    # Integer colours 0..255 that happen to be all 0/1 must not be scaled by 255 ...
    p.write_text("COFF\n3 1 0\n0 0 0 0 1 1\n1 0 0 1 0 0\n0 1 0 0 0 1\n3 0 1 2\n")
    assert read_mesh(p).colors.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 1]]
    # ... while float colours are in [0, 1].
    p.write_text("COFF\n3 1 0\n0 0 0 0.0 1.0 0.5\n1 0 0 1 0 0\n0 1 0 0 0 1\n3 0 1 2\n")
    assert read_mesh(p).colors.tolist() == [[0, 255, 128], [255, 0, 0], [0, 0, 255]]


@pytest.mark.parametrize("name,binary", ROUND_TRIPS)
def test_round_trip_of_dark_colours(tmp_path, name, binary):
    """Colours that are all 0 or 1 (near black) must not be mistaken for floats in [0, 1]."""
    v, f, _ = tetra()
    c = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    write_mesh(tmp_path / name, v, f, colors=c, binary=binary)
    assert np.array_equal(read_mesh(tmp_path / name).colors, c)


def test_ascii_ply_float_colours_are_scaled(tmp_path):
    p = tmp_path / "fc.ply"
    p.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty double x\nproperty double y\nproperty double z\n"
        "property float red\nproperty float green\nproperty float blue\n"
        "element face 1\nproperty list uchar uint vertex_index\nend_header\n"
        "0 0 0 1 0 0.5\n1 0 0 0 1 0\n0 1 0 0 0 1\n3 0 1 2\n"
    )
    m = read_mesh(p)
    assert m.colors.tolist() == [[255, 0, 128], [0, 255, 0], [0, 0, 255]]
    assert m.faces.tolist() == [[0, 1, 2]]
    with pytest.raises(MeshError, match="colors must be finite"):
        write_mesh(tmp_path / "o.ply", m.vertices, m.faces, colors=np.full((3, 3), np.nan))


# ---------------------------------------------------------------------------------------------- files from elsewhere
# (issue #14 item 11: MeshLab / scanner files with extra properties, OBJ continuations, point clouds, NaN colours)


def _octa():
    """An octahedron: 6 vertices, 8 triangles, closed."""
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64) * 0.25
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]], np.int64)
    return v, f


def test_ascii_ply_with_a_float_list_per_face_reads_like_trimesh(tmp_path):
    """MeshLab writes per-face texture coordinates as a float list (trimesh's fuze_ascii.ply has one)."""
    trimesh = pytest.importorskip("trimesh")
    v, f = _octa()
    uv = np.random.default_rng(3).random((len(f), 6)).round(6)
    lines = ["ply", "format ascii 1.0", f"element vertex {len(v)}", "property float x", "property float y",
             "property float z", f"element face {len(f)}", "property list uchar int vertex_indices",
             "property list uchar float texcoord", "property uchar red", "end_header"]
    lines += [" ".join(f"{x:.6f}" for x in row) for row in v]
    lines += [f"3 {a} {b} {c} 6 " + " ".join(f"{t:.6f}" for t in t6) + " 200" for (a, b, c), t6 in zip(f, uv)]
    p = tmp_path / "meshlab_ascii.ply"
    p.write_text("\n".join(lines) + "\n")
    m = read_mesh(p)
    assert np.array_equal(m.faces, f) and np.allclose(m.vertices, v)
    ref = trimesh.load(p, process=False)  # splits vertices at texture seams: compare the triangles' corners
    assert np.allclose(m.vertices[m.faces], np.asarray(ref.vertices)[np.asarray(ref.faces)])


def test_ascii_ply_bad_list_item_names_the_property(tmp_path):
    p = tmp_path / "bad.ply"
    p.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                 "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1.5 2\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "'face' row 0 property 'vertex_indices'", "'1.5'", "not an integer")


def test_obj_lines_continued_with_a_backslash(tmp_path):
    v, f = _octa()
    text = "".join(f"v {a!r} \\\n  {b!r} {c!r}\n" for a, b, c in v.tolist())
    text += "".join(f"f {a + 1} {b + 1} \\\n{c + 1}\n" for a, b, c in f)
    p = tmp_path / "cont.obj"
    p.write_text(text)
    m = read_mesh(p)
    assert np.array_equal(m.vertices, v) and np.array_equal(m.faces, f)


def test_obj_face_with_two_corners_is_refused_with_its_line(tmp_path):
    p = tmp_path / "edge.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\n# an edge written as a face\nf 1 4\nf 1 3 4\n")
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "line 7: face 1 has 2 corners")


@pytest.mark.parametrize("name,content", [
    ("cloud.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty double x\nproperty double y\nproperty double z\n"
                  "end_header\n0.5 0 0\n0 0.25 0\n0 0 0.125\n"),
    ("cloud_faces0.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty double x\nproperty double y\n"
                         "property double z\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n"
                         "0.5 0 0\n0 0.25 0\n0 0 0.125\n"),
    ("cloud.obj", "v 0.5 0 0\nv 0 0.25 0\nv 0 0 0.125\n"),
    ("cloud.off", "OFF\n3 0 0\n0.5 0 0\n0 0.25 0\n0 0 0.125\n"),
])
def test_a_file_without_faces_is_a_point_cloud(tmp_path, name, content):
    from bodydata.mesh.io import read_points

    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(MeshError) as err:
        read_mesh(p)
    assert_one_line_error(err, p, "no faces: a point cloud of 3 points")
    pts = read_points(p)
    assert pts.is_point_cloud and pts.faces.shape == (0, 3)
    assert np.array_equal(pts.vertices, np.diag([0.5, 0.25, 0.125]))
    m = read_mesh(p, allow_point_cloud=True)
    assert m.is_point_cloud and np.array_equal(m.vertices, pts.vertices)


def test_read_points_keeps_a_mesh_a_mesh(tmp_path):
    from bodydata.mesh.io import read_points

    v, f = _octa()
    write_mesh(tmp_path / "m.ply", v, f)
    m = read_points(tmp_path / "m.ply")
    assert not m.is_point_cloud and np.array_equal(m.faces, f)


def test_a_nan_vertex_colour_is_black_and_leaves_the_others_alone(tmp_path):
    from bodydata.mesh.io import MeshWarning

    v, f = _octa()
    c = np.array([[1.0, 0.5, 0.0], [0.25, 0.375, 0.625], [np.nan, 0.0, 1.0], [0, 0, 0], [1, 1, 1],
                  [0.125, 0.875, 0.25]])
    expected = np.clip(np.round(np.nan_to_num(c) * 255), 0, 255).astype(np.uint8)
    obj = tmp_path / "nan.obj"
    obj.write_text("".join(f"v {a!r} {b!r} {z!r} {r} {g} {bl}\n"
                           for (a, b, z), (r, g, bl) in zip(v.tolist(), c.tolist()))
                   + "".join(f"f {a + 1} {b + 1} {z + 1}\n" for a, b, z in f))
    ply = tmp_path / "nan.ply"
    rows = np.empty(len(v), dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("red", "<f4"), ("green", "<f4"),
                                   ("blue", "<f4")])
    rows["x"], rows["y"], rows["z"] = v.T
    rows["red"], rows["green"], rows["blue"] = c.T
    faces = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"], faces["i"] = 3, f
    head = ("ply\nformat binary_little_endian 1.0\nelement vertex 6\nproperty double x\nproperty double y\n"
            "property double z\nproperty float red\nproperty float green\nproperty float blue\nelement face 8\n"
            "property list uchar int vertex_indices\nend_header\n")
    ply.write_bytes(head.encode() + rows.tobytes() + faces.tobytes())
    for p in (obj, ply):
        with pytest.warns(MeshWarning, match=r"1 vertex colours are not finite \(first: vertex 2\)"):
            m = read_mesh(p)
        stored = np.nan_to_num(c.astype(np.float32 if p == ply else np.float64)).astype(np.float64)
        assert np.array_equal(m.colors, np.round(stored * 255.0).astype(np.uint8)), p
        assert np.array_equal(m.colors[[0, 1, 3, 4, 5]], expected[[0, 1, 3, 4, 5]])


def _meshlab_binary_ply(path, v, polygons, endian="<"):
    """A binary PLY as MeshLab writes it with per-face texture coordinates, colour and quality."""
    head = ["ply", f"format {'binary_little_endian' if endian == '<' else 'binary_big_endian'} 1.0",
            f"element vertex {len(v)}", "property float x", "property float y", "property float z",
            "property uchar red", "property uchar green", "property uchar blue", "property uchar alpha",
            f"element face {len(polygons)}", "property list uchar int vertex_indices",
            "property list uchar float texcoord", "property uchar red", "property uchar green", "property uchar blue",
            "property float quality", "end_header"]
    vt = np.empty(len(v), dtype=[("x", endian + "f4"), ("y", endian + "f4"), ("z", endian + "f4"), ("c", "u1", (4,))])
    vt["x"], vt["y"], vt["z"], vt["c"] = v[:, 0], v[:, 1], v[:, 2], 7
    out = bytearray(("\n".join(head) + "\n").encode() + vt.tobytes())
    for k, poly in enumerate(polygons):
        out += struct.pack(endian + "B" + "i" * len(poly), len(poly), *poly)
        out += struct.pack(endian + "B" + "f" * 2 * len(poly), 2 * len(poly), *np.linspace(0, 1, 2 * len(poly)))
        out += struct.pack(endian + "BBBf", k % 256, 3, 4, 0.5 * k)
    path.write_bytes(bytes(out))
    return path


@pytest.mark.parametrize("endian", ["<", ">"])
def test_binary_ply_with_extra_face_properties_reads_like_trimesh(tmp_path, endian):
    trimesh = pytest.importorskip("trimesh")
    s = trimesh.creation.icosphere(subdivisions=2)
    v, f = np.asarray(s.vertices, np.float32).astype(np.float64), np.asarray(s.faces, np.int64)
    p = _meshlab_binary_ply(tmp_path / "meshlab.ply", v, f, endian)
    m = read_mesh(p)
    assert np.array_equal(m.vertices, v) and np.array_equal(m.faces, f)
    assert m.faces.dtype == np.int64 and m.colors is not None and (m.colors == 7).all()
    ref = trimesh.load(p, process=False)  # splits vertices at texture seams: compare the triangles' corners
    assert np.array_equal(m.vertices[m.faces], np.asarray(ref.vertices)[np.asarray(ref.faces)])


def test_binary_ply_with_extra_face_properties_and_mixed_polygons(tmp_path):
    """Rows of different lengths (a quad among triangles) take the row-by-row path and still read right."""
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1]], np.float64)
    polygons = [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4], [0, 3, 2, 1]]
    m = read_mesh(_meshlab_binary_ply(tmp_path / "mixed.ply", v, polygons))
    assert np.array_equal(m.faces, [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4], [0, 3, 2], [0, 2, 1]])


def test_binary_ply_extra_face_properties_read_at_numpy_speed(tmp_path):
    """43k faces with MeshLab's extra per-face properties: one structured view, not a Python loop per value
    (that loop took 0.7 s); the bound is loose for a shared machine."""

    trimesh = pytest.importorskip("trimesh")
    s = trimesh.creation.icosphere(subdivisions=5)
    s = trimesh.Trimesh(np.asarray(s.vertices), np.asarray(s.faces)[: 43_000], process=False)
    v, f = np.asarray(s.vertices, np.float32).astype(np.float64), np.asarray(s.faces, np.int64)
    p = _meshlab_binary_ply(tmp_path / "big.ply", v, f)
    best = min(_timed(read_mesh, p) for _ in range(3))
    assert best < 0.15, f"{best:.3f} s"
    assert np.array_equal(read_mesh(p).faces, f)


def _timed(fn, *args) -> float:
    import time

    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def test_ascii_ply_mixed_polygons_with_a_float_list_and_a_colour(tmp_path):
    """Rows of different lengths are read row by row; same-length rows as one table: both give the same faces."""
    v = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1]]
    head = ("ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
            "element face {}\nproperty list uchar int vertex_indices\nproperty list uchar float texcoord\n"
            "property uchar red\nend_header\n")
    body = "".join(" ".join(map(str, r)) + "\n" for r in v)
    tris = ["3 0 1 4 6 0 0 1 0 1 1 9", "3 1 2 4 6 0.5 0 1 0 1 1 9", "3 2 3 4 6 0 0 1 0 1 1 9",
            "3 3 0 4 6 0 0 1 0 1 1 9"]
    quad = "4 0 3 2 1 8 0 0 1 0 1 1 0 1 9"
    (tmp_path / "tri.ply").write_text(head.format(4) + body + "\n".join(tris) + "\n")
    (tmp_path / "mixed.ply").write_text(head.format(5) + body + "\n".join(tris + [quad]) + "\n")
    expected = [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]
    assert np.array_equal(read_mesh(tmp_path / "tri.ply").faces, expected)
    assert np.array_equal(read_mesh(tmp_path / "mixed.ply").faces, expected + [[0, 3, 2], [0, 2, 1]])
