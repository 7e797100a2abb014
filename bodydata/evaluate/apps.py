"""Applications of a trained embedding (paper §8): samples from the prior, interpolation and pose transfer.

Each writes meshes in the template's connectivity (``OUT/<name>.ply``, metres, the decoder's frame) and one PNG
sheet (``OUT/sheet.png``) of them. A body given to :func:`interpolate` or :func:`transfer` is either a codes file
written by ``bodydata fit`` (``codes/<name>.npz``) or a mesh in the template's connectivity, which is fitted first
(Eq. 15, :class:`~bodydata.evaluate.fit.MeshFitter`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bodydata.errors import BodydataError
from bodydata.evaluate.fit import FitSettings, MeshFitter

__all__ = ["AppResult", "codes_of", "generate", "interpolate", "transfer"]

SHEET = "sheet.png"


@dataclass
class AppResult:
    """out : the folder; meshes : the mesh files written (sheet order); sheet : the PNG; z : (K, L) their codes."""

    out: Path
    meshes: list[Path] = field(default_factory=list)
    sheet: Path | None = None
    z: np.ndarray | None = None


def codes_of(fitter: MeshFitter, body: str | os.PathLike) -> np.ndarray:
    """(L,) float32 codes of a body: a ``bodydata fit`` codes file (.npz with ``z``) or a mesh file (fitted here)."""
    from bodydata.mesh import read_mesh

    path = Path(body)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path) as d:
                z = np.asarray(d["z"], np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise BodydataError(f"{path}: not a codes file written by `bodydata fit` ({exc})") from None
        if z.shape != (fitter.n_latent,):
            raise BodydataError(f"{path}: codes of length {z.shape}, this model has {fitter.n_latent}")
        return z
    mesh = read_mesh(path, expected_vertices=fitter.n_vertices)
    return fitter.fit(mesh.vertices[None]).z[0]


def _write(out: Path, fitter: MeshFitter, z: np.ndarray, names: list[str], titles: list[str], columns: int,
           suptitle: str) -> AppResult:
    from bodydata.mesh import write_mesh
    from bodydata.templates.template import load_template
    from bodydata.viz.contact_sheet import render_contact_sheet

    faces = load_template(fitter.model.template).faces
    with torch.no_grad():
        verts = fitter.decode_vertices(torch.as_tensor(z, device=fitter.device)).cpu().numpy()
    res = AppResult(Path(out), z=z)
    for v, name in zip(verts, names):
        res.meshes.append(write_mesh(res.out / f"{name}.ply", v, faces))
    res.sheet = render_contact_sheet(res.out / SHEET, [(v, faces) for v in verts], titles, columns=columns,
                                     suptitle=suptitle)
    return res


def _fitter(run, device) -> MeshFitter:
    from bodydata.model import load

    return MeshFitter(load(run, device=device), FitSettings())


def generate(run: str | os.PathLike, out: str | os.PathLike, n: int = 8, seed: int = 0, scale: float = 1.0,
             device: str | None = None) -> AppResult:
    """``n`` bodies with codes drawn from the prior N(0, scale² I) (seeded)."""
    if n < 1:
        raise BodydataError("generate needs n >= 1")
    fitter = _fitter(run, device)
    z = scale * np.random.default_rng(seed).standard_normal((n, fitter.n_latent)).astype(np.float32)
    names = [f"sample_{i:03d}" for i in range(n)]
    return _write(Path(out), fitter, z, names, names, min(n, 8), f"{n} samples from the prior (seed {seed})")


def interpolate(run: str | os.PathLike, a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike,
                steps: int = 5, extrapolate: float = 0.0, grid: bool = False, device: str | None = None) -> AppResult:
    """Linear path from body ``a`` (t = 0) to ``b`` (t = 1) in ``steps`` steps over t in [-extrapolate, 1 + extrapolate].
    With ``grid`` (disentangled models): a steps x steps sheet, rows the shape code along the path, columns the pose
    code along the path."""
    if steps < 2:
        raise BodydataError("interpolate needs steps >= 2")
    fitter = _fitter(run, device)
    za, zb = codes_of(fitter, a), codes_of(fitter, b)
    ts = np.linspace(-extrapolate, 1.0 + extrapolate, steps, dtype=np.float32)
    path = lambda t: (1.0 - t) * za + t * zb  # noqa: E731
    if not grid:
        z = np.stack([path(t) for t in ts])
        return _write(Path(out), fitter, z, [f"path_{i:02d}" for i in range(steps)], [f"t = {t:.2f}" for t in ts],
                      steps, f"{Path(a).stem} -> {Path(b).stem}")
    if not fitter.model.disentangled:
        raise BodydataError(f"{run}: a shape x pose grid needs a disentangled model (this one has one latent vector)")
    g = fitter.model.net.latent_groups()
    z, names, titles = [], [], []
    for i, ts_ in enumerate(ts):
        for j, tp in enumerate(ts):
            zz = path(tp).copy()
            zz[g["shape"]] = path(ts_)[g["shape"]]
            z.append(zz)
            names.append(f"grid_s{i:02d}_p{j:02d}")
            titles.append(f"shape {ts_:.2f}, pose {tp:.2f}")
    return _write(Path(out), fitter, np.stack(z), names, titles, steps,
                  f"rows: shape {Path(a).stem} -> {Path(b).stem}; columns: pose")


def transfer(run: str | os.PathLike, shape: str | os.PathLike, pose: str | os.PathLike, out: str | os.PathLike,
             device: str | None = None) -> AppResult:
    """Body ``shape``'s shape code with body ``pose``'s pose code; the sheet shows both inputs and the result."""
    fitter = _fitter(run, device)
    if not fitter.model.disentangled:
        raise BodydataError(f"{run}: pose transfer needs a disentangled model (this one has one latent vector)")
    g = fitter.model.net.latent_groups()
    zs, zp = codes_of(fitter, shape), codes_of(fitter, pose)
    mixed = zp.copy()
    mixed[g["shape"]] = zs[g["shape"]]
    return _write(Path(out), fitter, np.stack([zs, zp, mixed]), ["shape", "pose", "transfer"],
                  [f"shape: {Path(shape).stem}", f"pose: {Path(pose).stem}", "transfer"], 3, "pose transfer")
