"""Carry a coarse mesh's poses onto a fine mesh of the same body (deformation transfer through a cage), for priors.

A pose collection is often published only in a coarse connectivity (SCAPE's 71 poses exist as a shared
2,161-vertex simplification, while the ``scape`` template has 12,500 vertices). When the fine template and
one coarse mesh show the same body in the same pose, every fine vertex is attached to its closest coarse
triangle ``(x0, x1, x2)`` by coordinates ``(a, b, c)`` in that triangle's frame::

    p = x0 + a e1 + b e2 + c n,   e1 = x1 - x0,   e2 = x2 - x0,   n = (e1 x e2) / sqrt(|e1 x e2|)

and a posed coarse mesh gives the fine vertex back with the same coordinates in its posed triangle. The
scaled normal keeps the frame a length frame, so a rigid motion or a uniform scaling of the coarse mesh moves
the fine mesh by exactly that motion; in general each fine vertex follows the affine map of its triangle
(the per-triangle deformation gradient of deformation transfer). Vertices that sit on different coarse
triangles follow slightly different maps, which leaves seams of the order of the offset times the change of
the map between neighbouring triangles; ``smooth`` blends each vertex over the triangles around its closest
point to soften them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bodydata.errors import BodydataError
from bodydata.manifest.status import STATUS_DONE, STATUS_FAILED

__all__ = ["CageLift", "LiftSummary", "lift_pose_files", "lift_poses"]


def _frames(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., f, 3) origins x0 and (..., f, 3, 3) frames with columns e1, e2, n of every triangle."""
    x0 = vertices[..., faces[:, 0], :]
    e1 = vertices[..., faces[:, 1], :] - x0
    e2 = vertices[..., faces[:, 2], :] - x0
    cr = np.cross(e1, e2)
    n = cr / np.sqrt(np.maximum(np.linalg.norm(cr, axis=-1, keepdims=True), 1e-300))
    return x0, np.stack([e1, e2, n], axis=-1)


@dataclass
class CageLift:
    """Fine vertices attached to a coarse cage mesh.

    Built with :meth:`fit`; ``face (n, k) int64`` the coarse triangles each fine vertex follows, ``coords
    (n, k, 3) float64`` its frame coordinates in each, ``weights (n, k) float64`` (rows sum to 1)."""

    coarse_faces: np.ndarray
    n_coarse: int
    face: np.ndarray
    coords: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, coarse_vertices: np.ndarray, coarse_faces: np.ndarray, fine_vertices: np.ndarray,
            smooth: int = 0) -> CageLift:
        """Attach ``fine_vertices (n, 3)`` to the coarse mesh ``coarse_vertices (m, 3), coarse_faces (f, 3)``.

        ``smooth = 0``: each fine vertex follows its closest coarse triangle only. ``smooth > 0``: it follows
        the triangles incident to the closest triangle's corners as well, weighted by
        ``exp(-(d / h)^2)`` with ``d`` the distance from its closest point to each triangle's centroid and
        ``h`` the mean coarse edge length times ``smooth``."""
        from bodydata.mesh.closest import closest_points

        cv = np.asarray(coarse_vertices, np.float64)
        cf = np.asarray(coarse_faces, np.int64)
        fv = np.asarray(fine_vertices, np.float64)
        if cv.ndim != 2 or cv.shape[1] != 3 or fv.ndim != 2 or fv.shape[1] != 3:
            raise BodydataError(f"cage lift: vertices must be (n, 3), got coarse {cv.shape} and fine {fv.shape}")
        if not (np.isfinite(cv).all() and np.isfinite(fv).all()):
            raise BodydataError("cage lift: non-finite coordinates")
        _, face, _, closest = closest_points(fv, cv, cf, k=12)
        if smooth <= 0:
            cand = face[:, None]
            w = np.ones((len(fv), 1))
        else:
            # candidate triangles: those sharing a corner with the closest one (rows padded with -1)
            import scipy.sparse as sp

            inc = sp.csr_matrix((np.ones(cf.size), (cf.reshape(-1), np.repeat(np.arange(len(cf)), 3))),
                                shape=(len(cv), len(cf)))
            share = (inc.T @ inc).tocsr()                                 # (f, f): faces with a common corner
            counts = np.diff(share.indptr)
            table = np.full((len(cf), counts.max()), -1, np.int64)
            table[np.repeat(np.arange(len(cf)), counts),
                  np.arange(share.nnz) - np.repeat(share.indptr[:-1], counts)] = share.indices
            cand = table[face]                                            # (n, width)
            pad = cand < 0
            cand = np.where(pad, face[:, None], cand)
            centroid = cv[cf].mean(1)
            edge = np.linalg.norm(cv[cf[:, [1, 2, 0]]] - cv[cf], axis=-1).mean()
            d2 = ((centroid[cand] - closest[:, None]) ** 2).sum(-1)
            w = np.where(pad, 0.0, np.exp(-d2 / (smooth * edge) ** 2))
            w /= w.sum(1, keepdims=True)
        x0, fr = _frames(cv, cf)
        coords = np.linalg.solve(fr[cand], (fv[:, None] - x0[cand])[..., None])[..., 0]
        return cls(cf, len(cv), cand, coords, w)

    def __call__(self, coarse_vertices: np.ndarray) -> np.ndarray:
        """``(m, 3)`` or ``(B, m, 3)`` posed coarse vertices -> ``(n, 3)`` or ``(B, n, 3)`` float64 fine vertices."""
        cv = np.asarray(coarse_vertices, np.float64)
        if cv.shape[-2:] != (self.n_coarse, 3):
            raise BodydataError(f"cage lift: coarse poses must have {self.n_coarse} vertices, got shape {cv.shape}")
        x0, fr = _frames(cv, self.coarse_faces)
        p = x0[..., self.face, :] + np.einsum("...nkij,nkj->...nki", fr[..., self.face, :, :], self.coords)
        return np.einsum("...nki,nk->...ni", p, self.weights)


def lift_poses(coarse_rest: np.ndarray, coarse_faces: np.ndarray, fine_rest: np.ndarray, coarse_poses: np.ndarray,
               smooth: int = 0) -> np.ndarray:
    """One call: ``(B, m, 3)`` coarse poses -> ``(B, n, 3)`` float64 fine poses (see :class:`CageLift`)."""
    return CageLift.fit(coarse_rest, coarse_faces, fine_rest, smooth=smooth)(coarse_poses)


@dataclass
class LiftSummary:
    """done / failed counts; failures : [(path, reason)]; manifest : the CSV written (columns id, path, status,
    reason; readable by ``bodydata prior build --manifest``)."""

    done: int
    failed: int
    manifest: Path
    failures: list = field(default_factory=list)


def lift_pose_files(cage_rest: str | Path, fine_rest: str | Path, poses: list, out_dir: str | Path, smooth: int = 1,
                    progress: bool = True) -> LiftSummary:
    """Lift every coarse pose file onto the fine rest mesh and write ``out_dir/<stem>.ply`` in the fine connectivity.

    ``cage_rest`` is the coarse mesh in the pose of ``fine_rest``; every file of ``poses`` must share its
    connectivity. A bad pose file is a failed row of ``out_dir/lifted.csv``, the others go on; meshes are written
    atomically, and a pose whose output already exists is not lifted again."""
    import csv
    import io

    from bodydata.fsutil import atomic_write_text
    from bodydata.mesh import read_mesh, write_mesh

    cage = read_mesh(cage_rest)
    fine = read_mesh(fine_rest, check_degenerate=False)
    lift = CageLift.fit(cage.vertices, cage.faces, fine.vertices, smooth=smooth)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    it = [Path(p) for p in poses]
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="lift", unit="pose")
    for path in it:
        dst = out / f"{path.stem}.ply"
        try:
            if not dst.exists():
                pose = read_mesh(path, expected_vertices=len(cage.vertices), expected_faces=cage.faces)
                write_mesh(dst, lift(pose.vertices), fine.faces)
            rows.append((path.stem, str(dst), STATUS_DONE, ""))
        except BodydataError as exc:   # MeshError included: a bad pose file is a failed row
            failures.append((str(path), str(exc)))
            rows.append((path.stem, "", STATUS_FAILED, str(exc)))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "path", "status", "reason"])
    w.writerows(rows)
    atomic_write_text(out / "lifted.csv", buf.getvalue())
    return LiftSummary(len(rows) - len(failures), len(failures), out / "lifted.csv", failures)
