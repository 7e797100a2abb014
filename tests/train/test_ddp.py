"""Two CPU processes on gloo (DistributedDataParallel): one step equals the single-process step on the same global batch."""
from __future__ import annotations

import os
import socket

import networkx as nx
import numpy as np
import torch
import torch.multiprocessing as mp

from bodydata.dataset.format import PairBatch
from bodydata.model.base import ModelContext
from bodydata.model.losses import LossWeights
from bodydata.model.registry import build_network, make_config
from bodydata.model.skinning import skinning_mask
from bodydata.train.noise import sample_noise
from bodydata.train.trainer import train_step

N, PARTS, GLOBAL = 24, 4, 8


def _setup():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(PARTS), N // PARTS)
    mask = skinning_mask(labels, nx.path_graph(PARTS), PARTS)
    one, zero = np.ones((N, 9)), np.zeros((N, 9))
    ctx = ModelContext(N, PARTS, labels, mask, one, zero, one, zero, np.ones((PARTS, 9)), np.zeros((PARTS, 9)),
                       np.ones((PARTS, 9)), np.zeros((PARTS, 9)))
    f = torch.from_numpy(rng.uniform(-0.9, 0.9, (GLOBAL, N, 9)).astype(np.float32))
    g = torch.from_numpy(rng.uniform(-0.9, 0.9, (GLOBAL, PARTS, 9)).astype(np.float32))
    flags = torch.tensor([True] * (GLOBAL // 2) + [False] * (GLOBAL // 2))
    batch = PairBatch(f, g, f.flip(0), g.flip(0), flags, torch.arange(GLOBAL))
    torch.manual_seed(0)
    net = build_network("dhnn", make_config("dhnn", {"encoder_widths": [16, 16], "branch_widths": [16, 24]}), ctx)
    return net, batch


def _rank_positions(rank: int, world: int) -> list[int]:
    half, share = GLOBAL // 2, GLOBAL // 2 // world
    return [rank * share + j for j in range(share)] + [half + rank * share + j for j in range(share)]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        net, batch = _setup()
        pos = _rank_positions(rank, world)
        local = PairBatch(*(t[pos] for t in (batch.f, batch.g, batch.f_s, batch.g_s, batch.is_neutral, batch.index)))
        model = DistributedDataParallel(net)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        eps = sample_noise(0, 0, 0, pos, 122)
        train_step(model, local, eps, LossWeights(), opt)
        if rank == 0:
            torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, out)
        # both ranks leave together: a rank tearing gloo down while its peer still writes aborted the peer once
        # (SIGABRT, "terminate called without an active exception") in a CI run
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_step_equals_single_process_step(tmp_path):
    net, batch = _setup()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    train_step(net, batch, sample_noise(0, 0, 0, list(range(GLOBAL)), 122), LossWeights(), opt)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, port, out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    before, _ = _setup()
    moved = 0
    for k, v in net.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6, msg=k)
        moved += int(not torch.equal(v, before.state_dict()[k]))
    assert moved > 10  # the step changed the weights, so the comparison means something


def _trainer_worker(rank: int, world: int, port: int, dataset: str, out: str, cfg: str) -> None:
    from bodydata.train.distributed import run_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        run_distributed(dataset, out, config=cfg, epochs=2, device="cpu", progress=False)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def test_trainer_under_two_processes_equals_one_process(tiny_dataset, tmp_path):
    """The whole loop as torchrun runs it (rank 0 alone writes and runs the test pass): same weights as one process."""
    import yaml

    from bodydata.model import load
    from bodydata.train.trainer import train

    ds, _ = tiny_dataset
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dhnn": {"encoder_widths": [16, 16], "branch_widths": [16, 24]},
                                   "train": {"batch_size": 4, "lr": 1e-3, "threads": 1}}))
    train(ds, tmp_path / "one", config=cfg, epochs=2, device="cpu", progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_trainer_worker, args=(2, port, str(ds), str(tmp_path / "two"), str(cfg)), nprocs=2, join=True)
    a = load(tmp_path / "one", device="cpu").net.state_dict()
    b = load(tmp_path / "two", device="cpu").net.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    import json

    assert json.loads((tmp_path / "two" / "card.json").read_text())["processes"] == 2
