"""The ``scape`` template (the paper's reference): a SCAPE-order 12,500-vertex mesh, the paper's faces, SPRING's 16 parts.

Sources (user-supplied; bodydata ships none of this data):

- ``mesh``: any mesh in SCAPE vertex order with 12,500 vertices; its vertices are used. The
  recommended one is SCAPE's ``mesh000`` (the SCAPE reference scan: standing, arms lowered about
  40 degrees, elbows slightly bent; the most neutral pose available -- the eight meshes of the
  paper's ``template_connectivity`` folder are all posed: marching, crouching, arms raised).
- ``faces``: a mesh whose faces are used, normally any ``.obj`` of the paper's
  ``template_connectivity`` folder (24,995 triangles, the paper's cleaned triangulation; it leaves a
  3-edge boundary, so the template is a manifold but not watertight).
- ``labels``: SPRING's ``body_part.obj`` (16 distinct vertex colours) or a text file of 12,500
  integer labels (16 distinct values).

SPRING's labels carry no names, so :func:`identify_parts` names them from the structure of the
label adjacency graph (which must be the 15-edge anatomical tree) and geometry:
the one part touching four others is the chest, its leaf neighbour the head, the part touching
three others the hips, the part joining chest and hips the abdomen; the chains hanging from the
chest are arms (upper arm, forearm, hand) and from the hips legs (thigh, calf, foot). Axes follow
from centroids: up = feet -> head; front = the horizontal direction from the calf/foot boundaries
to the foot centroids (feet point forward); the subject's left = up x front, and each limb's side is
the sign of its centroid along it. The axes are snapped to the nearest coordinate axes for the
template (for SCAPE ``mesh000``: up +x, front -y, left -z) after checking they are within 25 degrees.

Landmarks: the shipped ``data/landmarks_scape_12500.csv`` when present, else none.
"""
from __future__ import annotations

import os
from pathlib import Path

import networkx as nx
import numpy as np

from bodydata.errors import BodydataError, TemplateError
from bodydata.fsutil import sha256_file
from bodydata.mesh.topology import edges as mesh_edges
from bodydata.templates.parts import LIMBS, N_PARTS, PART_INDEX, PART_NAMES, part_graph

N_VERTICES = 12500
MAX_AXIS_ANGLE_DEG = 25.0


def read_source_labels(path: str | os.PathLike, n_vertices: int = N_VERTICES) -> tuple[np.ndarray, list[str]]:
    """Read 16-part labels: (n,) int64 source labels 0..15 and a description of each source label.

    A mesh file (.obj/.ply/.off) gives labels from its vertex colours (label k = k-th distinct colour
    in sorted order, described as ``"rgb(r,g,b)"``); a text file gives one integer per line.
    """
    from bodydata.mesh import read_mesh

    path = Path(path)
    if path.suffix.lower() in (".obj", ".ply", ".off"):
        try:
            mesh = read_mesh(path, expected_vertices=n_vertices)
        except BodydataError as exc:
            raise TemplateError(str(exc)) from None
        if mesh.colors is None:
            raise TemplateError(f"{path}: has no vertex colours to read part labels from")
        colours, labels = np.unique(mesh.colors, axis=0, return_inverse=True)
        names = [f"rgb({r},{g},{b})" for r, g, b in colours.tolist()]
    else:
        try:
            raw = np.loadtxt(path, dtype=np.float64, ndmin=1)
        except (OSError, ValueError) as exc:
            raise TemplateError(f"{path}: cannot read labels ({exc})") from None
        if raw.ndim != 1 or not np.all(raw == np.round(raw)):
            raise TemplateError(f"{path}: expected one integer label per line")
        if len(raw) != n_vertices:
            raise TemplateError(f"{path}: has {len(raw)} labels, expected {n_vertices} (one per vertex)")
        values, labels = np.unique(raw.astype(np.int64), return_inverse=True)
        names = [f"label {int(x)}" for x in values]
    labels = labels.reshape(-1).astype(np.int64)
    if len(names) != N_PARTS:
        raise TemplateError(f"{path}: has {len(names)} distinct part labels/colours, expected {N_PARTS}")
    return labels, names


def identify_parts(vertices: np.ndarray, faces: np.ndarray, source_labels: np.ndarray) -> tuple[np.ndarray, dict]:
    """Name 16 unnamed part labels (see the module docstring for the rules).

    vertices : (n, 3) float64; faces : (m, 3) int64; source_labels : (n,) int64 in 0..15.
    Returns ``mapping`` (16,) int64 with ``mapping[source_label] = part id`` and ``axes``: a dict of
    unit vectors ``up``, ``front``, ``left`` (3,) float64 measured on the mesh.
    Raises TemplateError when the label graph is not the anatomical tree or the axes are ambiguous.
    """
    g = part_graph(faces, source_labels, [str(i) for i in range(N_PARTS)])
    deg = dict(g.degree())
    where = "part labels"
    if g.number_of_edges() != N_PARTS - 1 or not nx.is_tree(g):
        raise TemplateError(
            f"{where}: the label adjacency graph has {g.number_of_edges()} edges and is not a tree; "
            "expected the 16-part anatomical tree (head-chest-abdomen-hips, two 3-part arms, two 3-part legs)"
        )
    by_degree = {k: [n for n in g if deg[n] == k] for k in range(6)}
    if len(by_degree[4]) != 1 or len(by_degree[3]) != 1 or len(by_degree[1]) != 5:
        raise TemplateError(f"{where}: degrees {sorted(deg.values())} do not match the anatomical tree")
    chest, hips = by_degree[4][0], by_degree[3][0]
    path = nx.shortest_path(g, chest, hips)
    if len(path) != 3:
        raise TemplateError(f"{where}: chest and hips are not joined by exactly one abdomen part")
    abdomen = path[1]
    head = [n for n in g[chest] if deg[n] == 1]
    if len(head) != 1:
        raise TemplateError(f"{where}: the chest has {len(head)} leaf neighbours, expected 1 (the head)")
    head = head[0]

    def chain(root: int, parent: int) -> list[int]:
        out, prev, cur = [root], parent, root
        while True:
            nxt = [n for n in g[cur] if n != prev]
            if not nxt:
                return out
            if len(nxt) > 1:
                raise TemplateError(f"{where}: a limb branches")
            prev, cur = cur, nxt[0]
            out.append(cur)

    arms = [chain(n, chest) for n in g[chest] if n not in (head, abdomen)]
    legs = [chain(n, hips) for n in g[hips] if n != abdomen]
    if len(arms) != 2 or len(legs) != 2 or any(len(c) != 3 for c in arms + legs):
        raise TemplateError(f"{where}: expected two 3-part arms on the chest and two 3-part legs on the hips")

    centroid = np.stack([vertices[source_labels == k].mean(axis=0) for k in range(N_PARTS)])
    feet = [leg[2] for leg in legs]
    up = centroid[head] - centroid[feet].mean(axis=0)
    up /= np.linalg.norm(up)
    e = mesh_edges(faces)
    front = np.zeros(3)
    for leg in legs:
        calf, foot = leg[1], leg[2]
        a, b = source_labels[e[:, 0]], source_labels[e[:, 1]]
        boundary = e[((a == calf) & (b == foot)) | ((a == foot) & (b == calf))]
        ankle = vertices[boundary.reshape(-1)].mean(axis=0)
        front += centroid[foot] - ankle
    front -= (front @ up) * up
    if np.linalg.norm(front) < 1e-6:
        raise TemplateError(f"{where}: cannot tell the front: the feet do not point forward")
    front /= np.linalg.norm(front)
    left = np.cross(up, front)

    mapping = np.full(N_PARTS, -1, dtype=np.int64)
    for name, k in (("head_neck", head), ("chest", chest), ("abdomen", abdomen), ("hips", hips)):
        mapping[k] = PART_INDEX[name]
    centre = centroid[[chest, abdomen, hips]].mean(axis=0)
    for kind, chains in (("arm", arms), ("leg", legs)):
        side = [float((centroid[c].mean(axis=0) - centre) @ left) for c in chains]
        if np.sign(side[0]) == np.sign(side[1]):
            raise TemplateError(f"{where}: both {kind}s lie on the same side of the body")
        for c, s in zip(chains, side):
            names = LIMBS[f"{kind}_{'L' if s > 0 else 'R'}"]
            for k, name in zip(c, names):
                mapping[k] = PART_INDEX[name]
    return mapping, {"up": up, "front": front, "left": left}


def _snap(vec: np.ndarray, what: str) -> str:
    k = int(np.argmax(np.abs(vec)))
    angle = float(np.degrees(np.arccos(min(1.0, abs(vec[k])))))
    if angle > MAX_AXIS_ANGLE_DEG:
        raise TemplateError(
            f"the body's {what} direction {np.round(vec, 3).tolist()} is {angle:.0f} degrees from the nearest "
            f"coordinate axis (more than {MAX_AXIS_ANGLE_DEG:.0f}); use a mesh in SCAPE's frame"
        )
    return ("-" if vec[k] < 0 else "") + "xyz"[k]


def build_scape_template(mesh: str | os.PathLike, faces: str | os.PathLike, labels: str | os.PathLike):
    """Build the ``scape`` template from user files (see the module docstring)."""
    from bodydata.mesh import read_mesh
    from bodydata.templates.landmarks import landmarks_path, load_landmarks
    from bodydata.templates.template import Template

    try:
        body = read_mesh(mesh, expected_vertices=N_VERTICES, check_degenerate=False)
        topo = read_mesh(faces, expected_vertices=N_VERTICES)
    except BodydataError as exc:
        raise TemplateError(str(exc)) from None
    vertices, tri = body.vertices, topo.faces
    source_labels, source_names = read_source_labels(labels)
    mapping, axes = identify_parts(vertices, tri, source_labels)
    part_labels = mapping[source_labels]
    up_axis, front_axis = _snap(axes["up"], "up"), _snap(axes["front"], "front")
    landmarks = load_landmarks("scape_12500") if landmarks_path("scape_12500").is_file() else {}
    tpl = Template(
        name="scape",
        vertices=vertices,
        faces=tri,
        part_labels=part_labels,
        part_names=list(PART_NAMES),
        landmarks=landmarks,
        units="m",
        up_axis=up_axis,
        front_axis=front_axis,
        meta={
            "builder": "bodydata.templates.scape",
            "sources": {
                key: {"file": Path(p).name, "sha256": sha256_file(p)}
                for key, p in (("mesh", mesh), ("faces", faces), ("labels", labels))
            },
            "source_label_to_part": {source_names[k]: PART_NAMES[int(mapping[k])] for k in range(N_PARTS)},
            "measured_axes": {k: np.round(v, 4).tolist() for k, v in axes.items()},
            "landmark_topology": "scape_12500" if landmarks else None,
            "expect_watertight": False,
        },
    )
    tpl.validate(strict=True)
    return tpl
