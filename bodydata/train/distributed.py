"""Training in several processes (DistributedDataParallel) as started by ``torchrun``.

Each process takes its rank's share of every global half-neutral batch
(:class:`~bodydata.dataset.torch_dataset.HalfNeutralBatchSampler` with ``num_replicas``/``rank``) and its samples' noise
from their place in the global batch, and DDP averages the gradients, so one step equals the single-process step on the
same global batch. Rank 0 alone writes the run folder.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import torch

__all__ = ["world_from_env", "init_process_group", "main"]


def world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def init_process_group(device: str = "auto") -> tuple[int, int]:
    """Start the process group (NCCL on CUDA, gloo on the CPU) and pin this process's GPU; returns (rank, world)."""
    import torch.distributed as dist

    rank, world, local = world_from_env()
    if world > 1 and not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world


def run_distributed(dataset: str, out: str, **options: Any):
    """:func:`bodydata.train.trainer.train` under torchrun's process group (started here), one GPU per rank."""
    from bodydata.train.trainer import train

    rank, world = init_process_group(options.get("device") or "auto")
    rank_device = None
    if world > 1 and torch.cuda.is_available() and options.get("device") != "cpu":
        # this rank's GPU: given to the trainer, never written into the run's config
        rank_device = f"cuda:{world_from_env()[2]}"
    return train(dataset, out, distributed=(rank, world), rank_device=rank_device, **options)


def main(argv: list[str] | None = None) -> None:
    """Parse the options of ``bodydata train`` and train under torchrun's process group."""
    import argparse

    from bodydata.errors import BodydataError

    ap = argparse.ArgumentParser(prog="python -m bodydata.train", description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config")
    ap.add_argument("--arch")
    ap.add_argument("--device", help="auto, cpu or cuda")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        run_distributed(a.dataset, a.out, config=a.config, arch=a.arch, epochs=a.epochs, device=a.device,
                        resume=a.resume, progress=not a.quiet, batch_size=a.batch_size, seed=a.seed)
    except BodydataError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
