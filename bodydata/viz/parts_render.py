"""PNG renders of a body mesh coloured per vertex (e.g. by body part), front and side views, with labelled points.

The renderer is an orthographic painter's algorithm over triangles drawn as a 2D matplotlib
``PolyCollection`` (Agg backend): no OpenGL, deterministic, about a second for 25k triangles.
Triangles are sorted far to near and shaded by ``|normal . view|``; back faces are culled only when
the faces are consistently oriented (the sign of the enclosed volume then says which side is out),
so a mesh with mixed orientation still renders whole.

Views: *front* looks at the subject's face, so the subject's left is on the right of the picture
(as in a photograph); *left side* looks at the subject's left flank, front of the body to the left.
Axes are given as signed axis names (``'z'``, ``'-y'``) or 3-vectors; the subject's left is
``up x front``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bodydata.viz.png import save_png

AxisLike = str | Sequence[float] | np.ndarray

#: Default front axis for each up axis: anny is z-up facing -y; SMPL/FAUST are y-up facing +z.
DEFAULT_FRONT = {"z": "-y", "y": "z", "x": "z"}


def axis_vector(axis: AxisLike) -> np.ndarray:
    """(3,) float64 unit vector of a signed axis name ('x', '-y', '+z') or a 3-vector."""
    if isinstance(axis, str):
        text = axis.strip().lower()
        sign = -1.0 if text.startswith("-") else 1.0
        name = text.lstrip("+-")
        if name not in ("x", "y", "z") or len(text) > 2:
            raise ValueError(f"axis must be one of x, y, z with an optional sign, got {axis!r}")
        vec = np.zeros(3)
        vec["xyz".index(name)] = sign
        return vec
    vec = np.asarray(axis, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        raise ValueError("axis vector must be non-zero")
    return vec / norm


def _camera(up: np.ndarray, toward_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (right, up, forward) of a camera placed along ``toward_camera`` looking back at the origin."""
    forward = -toward_camera / np.linalg.norm(toward_camera)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    return right, true_up, forward


def _outward_sign(vertices: np.ndarray, faces: np.ndarray) -> float:
    """+1 or -1 if the faces are consistently oriented (outward or inward by the signed volume), else 0."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    if len(np.unique(directed, axis=0)) != len(directed):
        return 0.0  # some edge is used twice in the same direction: orientation is not consistent
    tri = vertices[faces]
    volume = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0
    return float(np.sign(volume))


def _project(vertices, faces, right, up, forward, cull_sign=0.0):
    """Image-plane triangles (m, 3, 2), the far-to-near order (k,) of the drawn ones, shade (m,) and depth (m,).

    With ``cull_sign`` +1/-1 (outward/inward orientation) triangles facing away from the camera are
    left out of the order; with 0 all are drawn.
    """
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    normals = normals / np.maximum(norms, 1e-300)[:, None]
    facing = normals @ forward
    shade = np.abs(facing)
    depth = (tri @ forward).mean(axis=1)
    order = np.argsort(-depth, kind="stable")
    if cull_sign != 0.0:
        order = order[cull_sign * facing[order] < 0.0]
    polygons = np.stack([tri @ right, tri @ up], axis=-1)
    return polygons, order, shade, depth


def _visible(points, vertices, faces, right, up, forward, tolerance=0.006):
    """(k,) bool: each 3D point is not hidden behind a triangle closer to the camera than ``tolerance`` metres."""
    tri = vertices[faces]
    p2 = np.stack([tri @ right, tri @ up], axis=-1)  # (m, 3, 2)
    tri_depth = tri @ forward  # (m, 3)
    out = np.ones(len(points), dtype=bool)
    a, b, c = p2[:, 0], p2[:, 1], p2[:, 2]
    v0, v1 = b - a, c - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-14
    for k, point in enumerate(points):  # a few dozen labelled points, each vectorised over triangles
        q = np.array([point @ right, point @ up])
        w = q[None, :] - a
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (w[:, 0] * v1[:, 1] - v1[:, 0] * w[:, 1]) / den
            t = (v0[:, 0] * w[:, 1] - w[:, 0] * v0[:, 1]) / den
        inside = ok & (s >= 0) & (t >= 0) & (s + t <= 1)
        if not inside.any():
            continue
        d = (1 - s - t) * tri_depth[:, 0] + s * tri_depth[:, 1] + t * tri_depth[:, 2]
        out[k] = bool(point @ forward <= d[inside].min() + tolerance)
    return out


def render_mesh_views(
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_colors: np.ndarray | None,
    out_png: str | os.PathLike,
    points: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    up_axis: AxisLike = "z",
    front_axis: AxisLike | None = None,
    title: str | None = None,
    legend: Sequence[tuple[str, Sequence[float]]] | None = None,
    dpi: int = 120,
) -> Path:
    """Write a two-panel PNG (front view, left-side view) of a mesh coloured per vertex.

    vertices : (n, 3) float64, metres. faces : (m, 3) int64.
    vertex_colors : (n, 3) floats in [0, 1] or uint8, or None (skin tone); a face takes the mean of its corners.
    points : (k, 3) float64 positions to mark (e.g. landmarks), with ``labels`` (k,) strings.
        Points hidden behind the surface in a view are drawn hollow.
    up_axis, front_axis : signed axis names or vectors; ``front_axis`` defaults to
        :data:`DEFAULT_FRONT` of the up axis name.
    legend : optional (name, rgb) entries shown beside the views.
    Written atomically; returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    up = axis_vector(up_axis)
    if front_axis is None:
        key = up_axis.strip().lower().lstrip("+-") if isinstance(up_axis, str) else None
        if key is None:
            raise ValueError("front_axis is required when up_axis is a vector")
        front_axis = DEFAULT_FRONT[key]
    front = axis_vector(front_axis)
    front = front - (front @ up) * up
    front /= np.linalg.norm(front)
    left = np.cross(up, front)

    if vertex_colors is None:
        colors = np.tile(np.array([0.78, 0.66, 0.56]), (len(vertices), 1))
    else:
        colors = np.asarray(vertex_colors)
        colors = colors / 255.0 if colors.dtype == np.uint8 else colors.astype(np.float64)
    face_colors = colors[faces].mean(axis=1)

    cull_sign = _outward_sign(vertices, faces)
    views = [("front (subject's left on the right)", front), ("left side (front to the left)", left)]
    n_cols = 2 + (1 if legend else 0)
    widths = [1.0, 1.0] + ([0.55] if legend else [])
    fig, axes = plt.subplots(1, n_cols, figsize=(4.2 * sum(widths), 6.4), gridspec_kw={"width_ratios": widths})
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    rel = vertices - centre
    # One scale for both panels: the larger of the height and 4/3 of the widest horizontal extent.
    half = 0.53 * max(float(np.ptp(rel @ up)), 4.0 / 3.0 * max(float(np.ptp(rel @ front)), float(np.ptp(rel @ left))))
    for ax, (caption, toward) in zip(axes[:2], views):
        right, true_up, forward = _camera(up, toward)
        polygons, order, shade, _ = _project(vertices - centre, faces, right, true_up, forward, cull_sign)
        fc = np.clip(face_colors[order] * (0.35 + 0.65 * shade[order, None]), 0.0, 1.0)
        ax.add_collection(PolyCollection(polygons[order], facecolors=fc, edgecolors="face", linewidths=0.15))
        if points is not None and len(points):
            pts = np.asarray(points, dtype=np.float64) - centre
            vis = _visible(pts, vertices - centre, faces, right, true_up, forward)
            px, py = pts @ right, pts @ true_up
            ax.scatter(px[vis], py[vis], s=14, c="black", edgecolors="white", linewidths=0.6, zorder=3)
            ax.scatter(px[~vis], py[~vis], s=12, facecolors="none", edgecolors="black", linewidths=0.6, zorder=3)
            if labels is not None:
                for k in np.flatnonzero(vis):
                    ax.annotate(
                        labels[k], (px[k], py[k]), xytext=(3, 2), textcoords="offset points", fontsize=5.0,
                        color="black", zorder=4,
                    )
        ax.set_xlim(-half * 0.75, half * 0.75)
        ax.set_ylim(-half, half)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(caption, fontsize=8)
    if legend:
        axes[2].set_axis_off()
        handles = [Patch(facecolor=tuple(rgb), edgecolor="black", linewidth=0.3, label=name) for name, rgb in legend]
        axes[2].legend(handles=handles, loc="center left", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, out_png, dpi=dpi)
