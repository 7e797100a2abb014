"""Model building blocks against plain loops and closed forms: skinning (Eq. 9), losses (Eq. 10-12), the networks."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch

from bodydata.dataset.format import PairBatch
from bodydata.model.base import ModelContext
from bodydata.model.losses import LossWeights, kl_normal, loss_terms, total_loss
from bodydata.model.registry import architecture_names, build_network, make_config
from bodydata.model.skinning import SkinningLayer, skinning_mask


def _context(n: int = 30, parts: int = 4, seed: int = 0) -> ModelContext:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(parts), n // parts + 1)[:n]
    graph = nx.path_graph(parts)
    mask = skinning_mask(labels, graph, parts)
    f_scale, g_scale = rng.uniform(0.5, 3.0, (n, 9)), rng.uniform(0.5, 3.0, (parts, 9))
    f_off, g_off = rng.normal(size=(n, 9)), rng.normal(size=(parts, 9))
    return ModelContext(n, parts, labels, mask, f_scale, f_off, 1 / f_scale, -f_off / f_scale, g_scale, g_off,
                        1 / g_scale, -g_off / g_scale)


def test_skinning_mask_matches_graph_loop():
    labels = np.array([0, 1, 2, 3, 3, 1])
    graph = nx.Graph([(0, 1), (1, 2), (1, 3)])
    graph.add_nodes_from(range(5))
    mask = skinning_mask(labels, graph, 5)
    for i, own in enumerate(labels):
        for k in range(5):
            assert mask[i, k] == (k == own or graph.has_edge(own, k))


def test_skinning_layer_constraints_and_loop():
    ctx = _context()
    layer = SkinningLayer(ctx.skin_mask, ctx.part_labels)
    with torch.no_grad():
        layer.logits.normal_(0, 3)
    w = layer.weights().detach().numpy()
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert (w[~ctx.skin_mask] == 0).all()  # exact zeros, not small numbers
    g = torch.randn(2, ctx.n_parts, 9)
    b = layer(g).detach().numpy()
    for bi in range(2):
        for i in range(ctx.n_vertices):
            ref = sum(w[i, k] * g[bi, k].numpy() for k in range(ctx.n_parts))
            np.testing.assert_allclose(b[bi, i], ref, rtol=1e-5, atol=1e-6)


def test_kl_and_l1_terms_against_closed_form():
    torch.manual_seed(0)
    mean, std = torch.randn(3, 5), torch.rand(3, 5) + 0.1
    kl = kl_normal(mean, std)
    for b in range(3):
        ref = sum(0.5 * (mean[b, j] ** 2 + std[b, j] ** 2 - 1 - math.log(std[b, j] ** 2)) for j in range(5))
        assert float(kl[b]) == pytest.approx(float(ref), rel=1e-5)
    from bodydata.model.base import Forward

    f, g = torch.randn(2, 4, 9), torch.randn(2, 3, 9)
    batch = PairBatch(f, g, f + 1, g - 2, torch.tensor([True, False]), torch.arange(2))
    out = Forward(f=f + 0.5, g=g, f_s=f, g_s=g, mean=mean[:2], std=std[:2], groups={"shape": slice(0, 2),
                                                                                      "pose": slice(2, 5)})
    t = loss_terms(out, batch)
    assert float(t["l1_f"]) == pytest.approx(0.5)
    assert float(t["l1_f_s"]) == pytest.approx(1.0)
    assert float(t["l1_g"]) == pytest.approx(0.0)
    assert float(t["l1_g_s"]) == pytest.approx(2.0)
    assert float(t["kl_s"]) == pytest.approx(float(kl_normal(mean[:2, :2], std[:2, :2]).mean()), rel=1e-6)
    w = LossWeights(10.0, 100.0, 0.6, 1.0, 2.0)
    ref = 100 * 0.5 + 10 * 1.0 + 0.6 * 100 * 0.0 + 0.6 * 10 * 2.0 + float(t["kl_s"]) + 2 * float(t["kl_p"])
    assert float(total_loss(t, w)) == pytest.approx(ref, rel=1e-6)


def _small(arch: str, ctx: ModelContext, **extra):
    sizes = {"dhnn": {"encoder_widths": [16, 12], "branch_widths": [10, 14]},
             "baseline": {"encoder_widths": [16, 12], "branch_widths": [10, 14]},
             "meshvae": {"encoder_widths": [16, 12], "decoder_widths": [10, 14]}, "pca": {"n_components": 6}}[arch]
    return build_network(arch, make_config(arch, {**sizes, **extra}), ctx)


@pytest.mark.parametrize("blend", ["scaled", "raw"])
def test_dhnn_neutral_branch_is_decode_with_zero_pose(blend):
    ctx = _context()
    torch.manual_seed(1)
    net = _small("dhnn", ctx, blend_space=blend)
    z = torch.randn(3, 122)
    out = net.decode(z)
    z0 = z.clone()
    z0[:, 50:] = 0
    solo = net.decode(z0, neutral=False)
    torch.testing.assert_close(out.f_s, solo.f, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.g_s, solo.g, rtol=1e-5, atol=1e-6)
    assert out.f.shape == (3, ctx.n_vertices, 9) and out.g.shape == (3, ctx.n_parts, 9)


def test_raw_blend_is_the_scaled_blend_of_raw_part_features():
    ctx = _context()
    torch.manual_seed(2)
    net = _small("dhnn", ctx, blend_space="raw")
    g = torch.rand(2, ctx.n_parts, 9) * 0.2 - 0.1
    b = net._base(g).detach().numpy()
    w = net.skinning.weights().detach().numpy()
    g_raw = g.numpy() * ctx.g_unscale + ctx.g_unoffset
    ref = np.clip(np.einsum("ik,bkc->bic", w, g_raw) * ctx.f_scale + ctx.f_offset, -1, 1)
    np.testing.assert_allclose(b, ref, rtol=1e-4, atol=1e-5)


def test_parameter_counts_follow_the_paper_tables():
    ctx = _context(n=40)
    n9 = 9 * ctx.n_vertices
    net = build_network("dhnn", make_config("dhnn", {}), ctx)

    def lin(a, b):
        return a * b + b

    enc = lin(n9, 400) + lin(400, 400) + 2 * (lin(400, 50) + lin(400, 72))
    branches = lin(50, 400) + lin(400, 800) + lin(72, 400) + lin(400, 800)
    dec = branches + lin(800, n9) + branches + lin(800, 9 * ctx.n_parts) + ctx.n_vertices * ctx.n_parts
    assert sum(p.numel() for p in net.parameters()) == enc + dec
    base = build_network("baseline", make_config("baseline", {}), ctx)
    assert sum(p.numel() for p in base.parameters()) == enc + branches + lin(800, n9)


def test_every_builtin_architecture_runs_a_batch():
    ctx = _context()
    assert {"dhnn", "baseline", "meshvae", "pca"} <= set(architecture_names())
    f = torch.randn(4, ctx.n_vertices, 9) * 0.5
    for arch in ("dhnn", "baseline", "meshvae", "pca"):
        net = _small(arch, ctx)
        out = net(f, None)
        assert out.f.shape == f.shape
        assert (out.g is not None) == (arch == "dhnn")
        assert (out.f_s is not None) == (arch in ("dhnn", "baseline"))


def test_pca_with_all_components_reconstructs_its_train_set():
    ctx = _context(n=8)
    rng = np.random.default_rng(0)
    f = rng.normal(size=(5, 8, 9)).astype(np.float32)
    net = build_network("pca", make_config("pca", {"n_components": 5}), ctx)
    info = net.fit(f)
    assert info["components"] == 5 and info["explained_variance"] == pytest.approx(1.0, abs=1e-5)
    out = net(torch.from_numpy(f)).f.numpy()
    np.testing.assert_allclose(out, f, atol=1e-4)


def test_unknown_config_key_is_one_line():
    from bodydata.model.registry import ArchitectureError

    with pytest.raises(ArchitectureError, match=r"config key 'dhnn.shape_dims' does not exist"):
        make_config("dhnn", {"shape_dims": 3})
    with pytest.raises(ArchitectureError, match="blend_space"):
        make_config("dhnn", {"blend_space": "nowhere"})


def test_pca_codes_are_whitened():
    ctx = _context(n=8)
    rng = np.random.default_rng(1)
    f = (rng.normal(size=(40, 8, 9)) * np.linspace(0.1, 2.0, 72).reshape(8, 9)).astype(np.float32)
    net = build_network("pca", make_config("pca", {"n_components": 5}), ctx)
    net.fit(f)
    z, _ = net.encode(torch.from_numpy(f))
    np.testing.assert_allclose(z.std(0, unbiased=True).numpy(), 1.0, rtol=1e-3)
