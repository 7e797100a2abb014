"""ACAP features -> mesh (paper Eq. 5-6): one prefactored sparse solve per template, batched, differentiable.

Eq. 5 sums ``w_ij |(p_i - p_j) - T_i (q_i - q_j)|^2`` over every vertex i and its one ring, so each edge
appears twice, once with T_i and once with T_j; its normal equations are the paper's Eq. 6,

    sum_j w_ij (p_i - p_j) = sum_j w_ij (T_i + T_j) / 2 (q_i - q_j)          (L p = b),

L the weighted graph Laplacian. The edge weights are those of the feature fit
(:func:`bodydata.features.deformation.edge_weights`, default ``"acap"``). One vertex (``anchor``) is fixed:
its row and column of L become the identity (its known position moves to the right-hand side), which keeps
the system symmetric positive definite; it is factorised once (cholespy on CPU or CUDA tensors, scipy's
SuperLU as the CPU fallback) and a batch of B meshes is solved as 3B right-hand sides.
The forward pass (:meth:`AcapReconstructor.rhs_from_features`) builds the right-hand sides entry by entry
of T on cache-sized vertex blocks, straight in the layouts of the sparse product and of the solve.
:class:`AcapReconstructor` is differentiable: the backward pass solves with the same factor.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bodydata.features.deformation import edge_weights

__all__ = ["AcapReconstructor", "SpdFactor", "reconstruct"]


class SpdFactor:
    """Cholesky factor of an SPD sparse matrix, solving (m, k) float64 torch tensors on their device."""

    def __init__(self, a: sp.csr_matrix, device, backend: str = "auto"):
        import torch

        self.device = torch.device(device)
        self.backend = backend
        if backend == "auto":
            try:
                import cholespy  # noqa: F401

                self.backend = "cholespy"
            except ImportError:  # pragma: no cover - cholespy is a dependency
                self.backend = "scipy"
        if self.backend == "scipy" and self.device.type != "cpu":
            raise ValueError("the scipy backend solves on the CPU only; use backend='cholespy' for CUDA")
        if self.backend == "cholespy":
            from cholespy import CholeskySolverD, MatrixType

            coo = a.tocoo()
            ii = torch.as_tensor(coo.row.astype(np.int32), device=self.device)
            jj = torch.as_tensor(coo.col.astype(np.int32), device=self.device)
            xx = torch.as_tensor(coo.data.astype(np.float64), device=self.device)
            self._solver = CholeskySolverD(a.shape[0], ii, jj, xx, MatrixType.COO)
        elif self.backend == "scipy":
            from scipy.sparse.linalg import splu

            self._lu = splu(a.tocsc())
        else:
            raise ValueError(f"unknown backend {backend!r}")

    def solve(self, b):
        """b : (m, k) float64 tensor -> x (m, k) with A x = b."""
        import torch

        if self.backend == "scipy":
            x = self._lu.solve(b.detach().cpu().numpy())
            return torch.as_tensor(x, dtype=torch.float64, device=b.device)
        b = b.detach().contiguous()
        x = torch.empty_like(b)
        step = 128 if b.is_cuda else b.shape[1]  # cholespy's CUDA limit on right-hand sides
        for c0 in range(0, b.shape[1], max(step, 1)):
            bc = b[:, c0:c0 + step].contiguous()
            xc = torch.empty_like(bc)
            self._solver.solve(bc, xc)
            x[:, c0:c0 + step] = xc
        return x


def _make_solve_function():
    import torch

    class _SolveSPD(torch.autograd.Function):
        @staticmethod
        def forward(ctx, b, factor):
            ctx.factor = factor
            return factor.solve(b)

        @staticmethod
        def backward(ctx, grad):
            # A is symmetric: d(A^-1 b)/db^T g = A^-1 g, with the same factor
            return ctx.factor.solve(grad.contiguous()), None

    return _SolveSPD


_SOLVE = None


def _solve_spd(b, factor):
    global _SOLVE
    if _SOLVE is None:
        _SOLVE = _make_solve_function()
    return _SOLVE.apply(b, factor)


class AcapReconstructor:
    """Per-template ACAP -> mesh solver (Eq. 6), prefactored at construction.

    vertices : (n, 3) float64 template q; faces : (m, 3) int64.
    weighting : the edge weights (must match the features' fit; default ``"acap"``).
    anchor : the vertex whose position is given (default 0). device : torch device (default: CUDA when
    available, else CPU). backend : ``"cholespy"``, ``"scipy"`` (CPU) or ``"auto"``.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, weighting: str = "acap", anchor: int = 0,
                 device=None, backend: str = "auto"):
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        q = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        n = len(q)
        self.n_vertices = n
        self.anchor = int(anchor)
        self.template = q
        e, w = edge_weights(q, f, weighting)
        i = np.concatenate([e[:, 0], e[:, 1]])
        j = np.concatenate([e[:, 1], e[:, 0]])
        ww = np.concatenate([w, w])
        lap = sp.csr_matrix((-ww, (i, j)), shape=(n, n)) + sp.diags(np.bincount(i, weights=ww, minlength=n))
        lap = lap.tocsr()
        # the anchor's row and column replaced by the identity: SPD, same unknowns as L, no gather/scatter
        col = lap[:, [self.anchor]].toarray()[:, 0]
        col[self.anchor] = 0.0
        self._l_anchor = torch.as_tensor(col, device=self.device)           # moved to the right-hand side
        mask = np.ones(n)
        mask[self.anchor] = 0.0
        dm = sp.diags(mask)
        fixed = (dm @ lap @ dm + sp.diags(1.0 - mask)).tocsr()
        fixed.eliminate_zeros()
        self._factor = SpdFactor(fixed, self.device, backend)
        d = q[i] - q[j]                                         # (E2, 3): q_i - q_j
        msum = np.zeros((n, 3))
        np.add.at(msum, i, ww[:, None] * d)
        self._msum = torch.as_tensor(msum, device=self.device)
        # [M_0 M_1 M_2] with M_c[i, j] = w_ij (q_i - q_j)[c]: sum_j w_ij T_j (q_i - q_j) = sum_c M_c T[:, :, c]
        import warnings

        mcat = sp.hstack([sp.csr_matrix((ww * d[:, c], (i, j)), shape=(n, n)) for c in range(3)]).tocsr()
        with warnings.catch_warnings():  # torch's "sparse CSR is beta" notice
            warnings.simplefilter("ignore", UserWarning)
            self._mcat = torch.sparse_csr_tensor(
                torch.as_tensor(mcat.indptr, dtype=torch.int64), torch.as_tensor(mcat.indices, dtype=torch.int64),
                torch.as_tensor(mcat.data), size=mcat.shape, dtype=torch.float64, check_invariants=False).to(self.device)
        # halved copies for rhs_from_features: the 1/2 of Eq. 6 folded in once
        self._msum_half = 0.5 * self._msum
        self._mcat_half = self._mcat * 0.5
        self.backend = self._factor.backend
        # (vertex, mesh) pairs per block of rhs_from_features: cache-sized on CPU, one block on CUDA
        self.block = 16384 if self.device.type == "cpu" else 1 << 30

    # ------------------------------------------------------------------ pieces
    def gradients_from_features(self, f):
        """f : (B, n, 9) float64 tensor [r, s11 s12 s13 s22 s23 s33] -> T (B, n, 3, 3) = exp(r) S.

        Rodrigues written as ``(1 - b th^2) I + a [r]x + b r r^T`` (fewer passes over the batch than I + aK + bK^2).
        """
        import torch

        from bodydata.features.polar import rodrigues_coefficients_torch, vec6_to_sym_torch

        r = f[..., :3]
        th2 = (r * r).sum(-1)
        a, b = rodrigues_coefficients_torch(th2)
        c = 1.0 - b * th2
        ar = a[..., None] * r
        rot = b[..., None, None] * (r[..., :, None] * r[..., None, :]) + torch.stack([
            torch.stack([c, -ar[..., 2], ar[..., 1]], -1),
            torch.stack([ar[..., 2], c, -ar[..., 0]], -1),
            torch.stack([-ar[..., 1], ar[..., 0], c], -1)], -2)
        sym = vec6_to_sym_torch(f[..., 3:9])
        return rot @ sym

    def rhs(self, t):
        """T (B, n, 3, 3) tensor -> b (B, n, 3) with b_i = sum_j w_ij (T_i + T_j)/2 (q_i - q_j)."""
        import torch

        bsz, n = t.shape[0], self.n_vertices
        own = (t @ self._msum[:, :, None])[..., 0]
        x = t.permute(3, 1, 0, 2).reshape(3 * n, bsz * 3)           # rows (c, j), columns (b, a)
        other = torch.sparse.mm(self._mcat, x).reshape(n, bsz, 3).permute(1, 0, 2)
        return 0.5 * (own + other)

    def rhs_from_features(self, f):
        """f (B, n, 9) float64 tensor -> b (n, 3, B): the right-hand sides in the solver's layout (vertex, axis, mesh).

        Same values as ``rhs(gradients_from_features(f)).permute(1, 2, 0)``, computed per entry of T on vertex
        blocks of about 16k (vertex, mesh) pairs (:attr:`block`) so that every temporary stays in cache (no 3 x 3 batched
        matmuls); each entry is written as one contiguous row block of the sparse product's operand
        (rows (c, j), columns (a, mesh)), and the product adds onto the own-vertex term in place of a sum.
        """
        import torch

        bsz, n = f.shape[0], self.n_vertices
        grad = f.requires_grad and torch.is_grad_enabled()
        # with autograd, 8x larger blocks: fewer graph nodes make the backward pass faster than cache misses cost
        rows = max(1, (8 * self.block if grad else self.block) // max(bsz, 1))
        if grad:  # differentiable: blocks stacked and concatenated (in-place slice writes would copy the
            xs, owns = [], []  # whole gradient buffer once per write in the backward pass)
        else:  # buffers reused across calls: fresh ones cost a page fault per 4 KiB (56 MiB at B = 64)
            x, own = self._workspace(bsz, f.device)
        for j0 in range(0, n, rows):
            j1 = min(n, j0 + rows)
            fc = f[:, j0:j1, :].permute(2, 1, 0).contiguous()          # (9, nc, B): one feature entry per row
            tc = _t_entries(fc)                                         # T[a][c] = tc[3a + c], each (nc, B)
            ms = self._msum_half[j0:j1]
            oc = [torch.addcmul(torch.addcmul(tc[3 * a] * ms[:, 0:1], tc[3 * a + 1], ms[:, 1:2]), tc[3 * a + 2], ms[:, 2:3])
                  for a in range(3)]
            if grad:
                owns.append(torch.stack(oc, 1))
                xs.append(torch.stack([torch.stack([tc[3 * a + c] for a in range(3)], 1) for c in range(3)]))
                continue
            for a in range(3):
                own[j0:j1, a] = oc[a]
                for c in range(3):
                    x[c, j0:j1, a] = tc[3 * a + c]
        if grad:
            x, own = torch.cat(xs, 1), torch.cat(owns)
        return torch.addmm(own.reshape(n, 3 * bsz), self._mcat_half, x.reshape(3 * n, 3 * bsz)).reshape(n, 3, bsz)

    def _workspace(self, bsz: int, device):
        """(x (3, n, 3, B), own (n, 3, B)) float64 buffers kept for the last batch size (not thread safe)."""
        import torch

        ws = getattr(self, "_ws", None)
        if ws is None or ws[0].shape[-1] != bsz or ws[0].device != torch.device(device):
            n = self.n_vertices
            ws = (torch.empty((3, n, 3, bsz), dtype=torch.float64, device=device),
                  torch.empty((n, 3, bsz), dtype=torch.float64, device=device))
            self._ws = ws
        return ws

    def solve_vertex_major(self, b, anchor_position=None):
        """b (n, 3, B) (from :meth:`rhs_from_features`) -> p (B, n, 3); as :meth:`solve` otherwise."""
        import torch

        n, _, bsz = b.shape
        if anchor_position is None:
            pa = torch.as_tensor(self.template[self.anchor], device=b.device).expand(bsz, 3)
        else:
            pa = torch.as_tensor(anchor_position, dtype=torch.float64, device=b.device).reshape(-1, 3).expand(bsz, 3)
        pa = pa.transpose(0, 1)                                         # (3, B)
        rhs = b - self._l_anchor[:, None, None] * pa[None]
        rhs = torch.cat([rhs[:self.anchor], pa[None], rhs[self.anchor + 1:]]).reshape(n, 3 * bsz)
        return _solve_spd(rhs, self._factor).reshape(n, 3, bsz).permute(2, 0, 1)

    def solve(self, b, anchor_position=None):
        """b (B, n, 3) -> p (B, n, 3) solving L p = b with p[anchor] = anchor_position ((B, 3) or (3,); default:
        the template's anchor vertex)."""
        import torch

        bsz, n = b.shape[0], self.n_vertices
        if anchor_position is None:
            pa = torch.as_tensor(self.template[self.anchor], device=b.device).expand(bsz, 3)
        else:
            pa = torch.as_tensor(anchor_position, dtype=torch.float64, device=b.device).reshape(-1, 3).expand(bsz, 3)
        # rows (vertex), columns (mesh, xyz); the anchor row carries its position
        rhs = b.permute(1, 0, 2) - self._l_anchor[:, None, None] * pa[None, :, :]
        rhs = torch.cat([rhs[:self.anchor], pa[None], rhs[self.anchor + 1:]]).reshape(n, bsz * 3)
        out = _solve_spd(rhs, self._factor).reshape(n, bsz, 3).permute(1, 0, 2)
        return out

    def __call__(self, features, anchor_position=None):
        """Meshes from ACAP features.

        features : (B, n, 9), (B, 9n), (n, 9) or (9n,) float tensor or array (r then the 6 stretches per vertex).
        anchor_position : where the anchor vertex goes, (B, 3) or (3,) (default: its template position).
        Returns vertices (B, n, 3) (or (n, 3)) float64 -- a torch tensor on this reconstructor's device for a
        tensor input (differentiable), a numpy array for a numpy input.
        """
        import torch

        is_np = not torch.is_tensor(features)
        f = torch.as_tensor(np.asarray(features) if is_np else features)
        f = f.to(device=self.device, dtype=torch.float64)
        n = self.n_vertices
        single = f.dim() == 1 or (f.dim() == 2 and f.shape == (n, 9))
        f = f.reshape(-1, n, 9)
        p = self.solve_vertex_major(self.rhs_from_features(f), anchor_position)
        if single:
            p = p[0]
        return p.detach().cpu().numpy() if is_np else p


def _t_entries(fc):
    """fc (9, ...) tensor [r, s11 s12 s13 s22 s23 s33] -> the 9 entries of T = exp(r) S, row-major, each (...).

    Rodrigues ``R = c I + a [r]x + b r r^T`` with ``a = sin t / t``, ``b = (1 - cos t) / t^2``, ``c = 1 - b t^2``
    (series below t^2 = 1e-8), then ``T_ac = sum_k R_ak S_kc``; differentiable, one pass per entry.
    """
    import torch

    from bodydata.features.polar import rodrigues_coefficients_torch

    rx, ry, rz = fc[0], fc[1], fc[2]
    th2 = rx * rx + ry * ry + rz * rz
    a, b = rodrigues_coefficients_torch(th2)
    c = 1.0 - b * th2
    ax, ay, az = a * rx, a * ry, a * rz
    bx, by, bz = b * rx, b * ry, b * rz
    rot = (torch.addcmul(c, bx, rx), torch.addcmul(-az, bx, ry), torch.addcmul(ay, bx, rz),
           torch.addcmul(az, by, rx), torch.addcmul(c, by, ry), torch.addcmul(-ax, by, rz),
           torch.addcmul(-ay, bz, rx), torch.addcmul(ax, bz, ry), torch.addcmul(c, bz, rz))
    s11, s12, s13, s22, s23, s33 = fc[3], fc[4], fc[5], fc[6], fc[7], fc[8]
    sym = ((s11, s12, s13), (s12, s22, s23), (s13, s23, s33))
    out = []
    for i in range(3):
        r0, r1, r2 = rot[3 * i], rot[3 * i + 1], rot[3 * i + 2]
        for k in range(3):
            out.append(torch.addcmul(torch.addcmul(r0 * sym[0][k], r1, sym[1][k]), r2, sym[2][k]))
    return out


def reconstruct(template_vertices: np.ndarray, faces: np.ndarray, features: np.ndarray, weighting: str = "acap",
                anchor: int = 0, anchor_position=None) -> np.ndarray:
    """One call: features (B, n, 9) or (B, 9n) float64 -> vertices (B, n, 3) float64 (numpy, CPU)."""
    rec = AcapReconstructor(template_vertices, faces, weighting=weighting, anchor=anchor, device="cpu")
    return rec(np.asarray(features, np.float64), anchor_position)
