"""The training loop (paper appendix): half-neutral batches, Adam, the two-phase λ schedule, checkpoints every epoch.

:class:`Trainer` validates the dataset, the config and (``resume``) the run folder and builds everything in
``__init__``; :meth:`Trainer.run` trains. :func:`train` is the one-call form the CLI uses.

An epoch is the unit of safety: the checkpoint, metrics and curves are written (atomically) after every epoch, so
Ctrl-C or ``kill -9`` loses at most the epoch in progress, and ``resume=True`` continues from the last one. On the
CPU with a seed, a resumed run equals the uninterrupted one (the noise is a function of the seed, not of RNG state:
:mod:`bodydata.train.noise`).
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from bodydata.dataset.format import FILES, PairBatch, read_card
from bodydata.device import pick_device
from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_path, atomic_write_csv, atomic_write_text, sha256_file
from bodydata.model.base import EmbeddingNet, ModelContext
from bodydata.model.losses import LossWeights, loss_terms, total_loss
from bodydata.model.registry import build_network
from bodydata.model.run_format import RUN_FILES
from bodydata.train.checkpoint import load_state, load_weights, save_state, save_weights
from bodydata.train.config import RunConfig, load_config
from bodydata.train.noise import sample_noise

__all__ = ["TrainError", "TrainStopped", "TrainResult", "Trainer", "train", "train_step", "dataset_digest"]


class TrainError(BodydataError):
    """Training cannot start (a run folder in the way, nothing to resume, a bad option); the message says why."""


class TrainStopped(TrainError):
    """Training started and had to stop (a loss term went NaN); the last good checkpoint is kept."""


#: loop options a resumed run may change: they change speed or bookkeeping, not the numbers
RESUMABLE_OPTIONS = ("device", "threads", "workers", "data_on_device", "test_every", "checkpoint_every")


@dataclass
class TrainResult:
    """run : the folder.  epochs : epochs finished in all.  best_epoch / best_test : the best checkpoint's epoch and
    its test reconstruction loss.  seconds : this call's time.  metrics : the last epoch's row."""

    run: Path
    arch: str
    epochs: int
    best_epoch: int
    best_test: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def train_step(net: torch.nn.Module, batch: PairBatch, eps: torch.Tensor | None, weights: LossWeights,
               optimizer: torch.optim.Optimizer | None) -> dict[str, torch.Tensor]:
    """One optimisation step on ``batch``; returns the loss terms (detached) and ``total``.
    Raises TrainError before stepping when a term is not finite."""
    out = net(batch.f, eps)
    terms = loss_terms(out, batch)
    loss = total_loss(terms, weights)
    finite = bool(torch.isfinite(loss))
    import torch.distributed as dist

    if optimizer is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        # every rank stops together: one rank raising alone would leave the others waiting in backward's all-reduce
        # (only training steps: the test pass runs on rank 0 alone, so it must not enter a collective)
        flag = torch.tensor([1.0 if finite else 0.0], device=loss.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite = bool(flag.item() > 0)
    if not finite:
        bad = next((k for k, v in terms.items() if not torch.isfinite(v)), None)
        raise TrainStopped(f"loss term {bad} is {float(terms[bad].detach())}" if bad else
                           "a loss term went NaN in another process")
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    res = {k: v.detach() for k, v in terms.items()}
    res["total"] = loss.detach()
    return res


def dataset_digest(root: Path) -> str:
    """sha256 over the dataset's card and scaling: two runs saw the same data when these agree."""
    import hashlib

    h = hashlib.sha256()
    for key in ("card_json", "scaling", "pairs"):
        h.update(sha256_file(root / FILES[key]).encode())
    return h.hexdigest()


class Trainer:
    """dataset : a ``bodydata build-dataset`` folder.  out : the run folder.  config : :class:`RunConfig`.
    resume : continue the run in ``out`` with its saved config; ``epochs`` (optional) sets a new total, and
    ``resume_options`` may change what does not change the numbers (:data:`RESUMABLE_OPTIONS`: device, threads, ...).
    progress : a bar.  distributed : (rank, world size) when running under ``torchrun`` (process group initialised).
    device : this process's device, overriding the config's without being written into it (one GPU per rank).
    on_epoch_end : called with (epoch, metrics row) after the epoch's files are written."""

    def __init__(self, dataset: str | os.PathLike, out: str | os.PathLike, config: RunConfig | None = None,
                 resume: bool = False, progress: bool = True, distributed: tuple[int, int] | None = None,
                 on_epoch_end: Callable[[int, dict], None] | None = None, epochs: int | None = None,
                 resume_options: dict[str, Any] | None = None, device: str | None = None):
        from bodydata.dataset.torch_dataset import BodyPairsDataset, HalfNeutralBatchSampler
        from bodydata.train.context import context_from_dataset

        self.root, self.out = Path(dataset), Path(out)
        self.card = read_card(self.root)
        self.rank, self.world = distributed or (0, 1)
        self.progress = progress and self.rank == 0
        self.on_epoch_end = on_epoch_end
        self.config = config or load_config()
        self._requested_arch = config.arch if config is not None else None
        self.state: dict[str, Any] | None = None
        self.saved_epoch = 0
        self.data_digest = dataset_digest(self.root)
        if resume:
            self._check_resumable(epochs, resume_options or {})
        elif (self.out / RUN_FILES["config"]).is_file():
            raise TrainError(f"{self.out}: already holds a run; continue it with --resume or pick another --out")
        cfg = self.config
        self.device = pick_device(device or cfg.train.device)
        self.ctx: ModelContext = context_from_dataset(self.root, self.card)
        torch.manual_seed(cfg.train.seed)  # initial weights depend on the seed only
        self.net: EmbeddingNet = build_network(cfg.arch, cfg.model, self.ctx).to(self.device)
        self.meta = {"arch": cfg.arch, "n_vertices": self.ctx.n_vertices,
                     "template_digest": self.card["template"]["digest"], "dataset_digest": self.data_digest}
        self.train_set = BodyPairsDataset(self.root, "train")
        self.test_set = BodyPairsDataset(self.root, "test")
        if not len(self.train_set):
            raise TrainError(f"{self.root}: the train split is empty")
        self.sampler = HalfNeutralBatchSampler(self.train_set, cfg.train.batch_size, seed=cfg.train.seed,
                                               num_replicas=self.world, rank=self.rank)
        self.in_memory = self._hold_in_memory()
        self._memory: dict[str, Any] = {}
        self.model = self.net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda"
                                                 else None)
        self.optimizer = None
        if self.net.trainable:
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.train.lr, **_adam_speed(self.device))
        self.start_epoch, self.best = 0, (math.inf, 0)
        self.rows: list[dict[str, Any]] = []
        if resume:
            self._restore()

    # -------------------------------------------------------------------------------------------- set-up
    def _check_resumable(self, epochs: int | None, options: dict[str, Any]) -> None:
        from bodydata.model.run_format import state_path

        path = self.out / RUN_FILES["config"]
        if not path.is_file():
            raise TrainError(f"{self.out}: nothing to resume (no {RUN_FILES['config']}); start the run without --resume")
        fixed = sorted(k for k, v in options.items() if v is not None and k not in RESUMABLE_OPTIONS)
        if fixed:
            raise TrainError(f"{self.out}: --{fixed[0].replace('_', '-')} cannot change when a run is resumed (it changes "
                             f"the numbers); resumable options: {', '.join(RESUMABLE_OPTIONS)}")
        saved = load_config(path, overrides={"epochs": epochs, **{k: v for k, v in options.items() if v is not None}})
        if self._requested_arch not in (None, saved.arch):
            raise TrainError(f"{self.out}: this run is a {saved.arch} run; it cannot be resumed as {self._requested_arch}")
        self.config = saved
        # stopped before its first checkpoint: nothing to restore, it starts again from epoch 0 with its config
        self.state = load_state(self.out) if state_path(self.out).is_file() else None
        done = int((self.state or {}).get("epoch", 0))
        if epochs is not None and epochs < done:
            raise TrainError(f"{self.out}: --epochs {epochs} is fewer than the {done} epochs this run has finished")

    def _restore(self) -> None:
        from bodydata.model.run_format import checkpoint_path

        st = self.state
        if st is None:
            return
        meta = load_weights(self.net, checkpoint_path(self.out, "last"), {k: v for k, v in self.meta.items()})
        # the state file is written last, so it names the epoch of a complete checkpoint; weights of another epoch
        # mean a crash between the two writes
        if str(meta.get("epoch", st.get("epoch"))) != str(st.get("epoch")):
            raise TrainError(f"{self.out}: checkpoint weights are from epoch {meta.get('epoch')} but the training state "
                             f"from epoch {st.get('epoch')} (a crash between the two writes); delete "
                             f"{RUN_FILES['checkpoints']}/last.safetensors and last.state.pt to restart the run")
        if self.optimizer is not None and "optimizer" in st:
            self.optimizer.load_state_dict(st["optimizer"])
        self.start_epoch = self.saved_epoch = int(st.get("epoch", 0))
        self.best = (float(st.get("best_test", math.inf)), int(st.get("best_epoch", 0)))
        self.rows = _read_metrics(self.out / RUN_FILES["metrics"])[: self.start_epoch]

    def _hold_in_memory(self) -> bool:
        mode = self.config.train.data_on_device
        if mode != "auto":
            return mode == "yes"
        if self.device.type != "cuda":
            return True
        need = 4 * 9 * self.ctx.n_vertices * (len(self.train_set) + len(self.test_set)) * 2
        return need < torch.cuda.get_device_properties(self.device).total_memory / 4

    # -------------------------------------------------------------------------------------------- data
    def _batches(self, split: str, positions_iter: Iterable[list[int]]) -> Iterable[tuple[list[int], PairBatch]]:
        ds = self.train_set if split == "train" else self.test_set
        if self.in_memory:
            if split not in self._memory:
                from bodydata.dataset.torch_dataset import InMemoryPairs

                self._memory[split] = InMemoryPairs(ds, self.device)
            mem = self._memory[split]
            for pos in positions_iter:
                yield pos, mem.batch(pos)
            return
        from torch.utils.data import DataLoader

        batches = list(positions_iter)
        loader = DataLoader(ds, batch_sampler=batches, num_workers=self.config.train.workers,
                            pin_memory=self.device.type == "cuda")
        for pos, d in zip(batches, loader):
            yield pos, PairBatch.from_dict(d).to(self.device, non_blocking=True)

    def _global_positions(self, n_local: int) -> list[int]:
        """Places of this rank's samples in the global batch (neutral share, then pose share)."""
        share = n_local // 2
        half = share * self.world
        return [self.rank * share + j for j in range(share)] + [half + self.rank * share + j for j in range(share)]

    # -------------------------------------------------------------------------------------------- loop
    def _train_epoch(self, epoch: int, weights: LossWeights, bar) -> dict[str, float]:
        self.model.train()
        self.sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        n = 0
        latent = sum(s.stop - s.start for s in self.net.latent_groups().values())
        for step, (pos, batch) in enumerate(self._batches("train", iter(self.sampler))):
            eps = sample_noise(self.config.train.seed, epoch, step, self._global_positions(len(pos)), latent,
                               self.device)
            try:
                terms = train_step(self.model, batch, eps, weights, self.optimizer)
            except TrainStopped as exc:
                good = (f"the last good checkpoint is epoch {self.saved_epoch} ({RUN_FILES['checkpoints']}/"
                        "last.safetensors)" if self.saved_epoch else "no checkpoint was written yet")
                raise TrainStopped(f"{self.out}: epoch {epoch + 1}, step {step + 1}: {exc}; training stopped, {good}") from None
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(pos)
            n += len(pos)
            if bar is not None:
                bar.set_postfix_str(f"l1_f {float(terms['l1_f']):.4f}", refresh=False)
        out = {k: v / max(n, 1) for k, v in sums.items()}
        if self.world > 1:
            import torch.distributed as dist

            keys = sorted(out)
            t = torch.tensor([out[k] for k in keys], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            out = {k: float(v) / self.world for k, v in zip(keys, t.tolist())}
        return out

    @torch.no_grad()
    def evaluate(self, split: str = "test", weights: LossWeights | None = None) -> dict[str, float]:
        """Mean loss terms over a split with the posterior means (no noise); empty split -> {}."""
        ds = self.train_set if split == "train" else self.test_set
        if not len(ds):
            return {}
        self.net.eval()
        bs = self.config.train.batch_size
        order = [list(range(i, min(i + bs, len(ds)))) for i in range(0, len(ds), bs)]
        sums: dict[str, float] = {}
        for pos, batch in self._batches(split, iter(order)):
            terms = train_step(self.net, batch, None, weights or LossWeights(), None)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(pos)
        return {k: v / len(ds) for k, v in sums.items()}

    def _fit_linear(self) -> dict[str, float]:
        """A fitted (not trained) architecture, e.g. PCA: fit on the scaled train features, pose and neutral."""
        from bodydata.dataset.torch_dataset import InMemoryPairs

        mem = InMemoryPairs(self.train_set, "cpu")
        info = self.net.fit(mem.f.numpy())
        self.net.to(self.device)
        return info

    def run(self) -> TrainResult:
        """Train from the start epoch to ``train.epochs``; returns the result. Ctrl-C propagates after the message."""
        from tqdm.auto import tqdm

        cfg = self.config
        t0 = time.perf_counter()
        self._curves_at = t0
        threads = torch.get_num_threads()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        try:
            if self.rank == 0:
                self._write_static()
            epochs = cfg.train.epochs if self.net.trainable else 1
            bar = tqdm(range(self.start_epoch, epochs), initial=self.start_epoch, total=epochs, unit="epoch",
                       desc=f"train {cfg.arch}", disable=not self.progress)
            for epoch in bar:
                t_ep = time.perf_counter()
                phase, weights = cfg.loss.weights(epoch, epochs)
                if self.net.trainable:
                    train_terms = self._train_epoch(epoch, weights, bar)
                else:
                    self._fit_linear()
                    train_terms = self.evaluate("train", weights)
                test_terms = {}
                if self.rank == 0 and ((epoch + 1) % cfg.train.test_every == 0 or epoch + 1 == epochs
                                       or (epoch + 1) % cfg.train.checkpoint_every == 0):
                    test_terms = self.evaluate("test", weights)
                row = self._row(epoch, phase, weights, train_terms, test_terms, time.perf_counter() - t_ep)
                if self.rank == 0:
                    self._end_epoch(epoch, row, test_terms if len(self.test_set) else train_terms)
                if self.world > 1:
                    import torch.distributed as dist

                    dist.barrier()
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch, row)
        except KeyboardInterrupt:
            if self.rank == 0:
                print(f"\ninterrupted: the epoch in progress is lost; `bodydata train --resume --out {self.out}` "
                      "continues from the last finished epoch", flush=True)
            raise
        finally:
            torch.set_num_threads(threads)
        last = self.rows[-1] if self.rows else {}
        return TrainResult(self.out, self.config.arch, len(self.rows), self.best[1], self.best[0], time.perf_counter() - t0, last)

    # -------------------------------------------------------------------------------------------- files
    def _row(self, epoch: int, phase: int, w: LossWeights, train_terms: dict, test_terms: dict, sec: float) -> dict:
        row: dict[str, Any] = {"epoch": epoch + 1, "phase": phase + 1, "lambda_r1": w.lambda_r1,
                               "lambda_r2": w.lambda_r2, "lr": self.config.train.lr, "seconds": round(sec, 4)}
        row.update({f"train_{k}": v for k, v in train_terms.items()})
        row.update({f"test_{k}": v for k, v in test_terms.items()})
        return row

    def _end_epoch(self, epoch: int, row: dict, judged: dict) -> None:
        last = epoch + 1 == (self.config.train.epochs if self.net.trainable else 1)
        self.rows.append(row)
        if not (last or (epoch + 1) % self.config.train.checkpoint_every == 0):
            _write_metrics(self.out / RUN_FILES["metrics"], self.rows)
            return
        meta = {**self.meta, "epoch": epoch + 1}
        rec = judged.get("l1_f", math.inf) + judged.get("l1_f_s", 0.0)
        if judged and rec < self.best[0]:
            self.best = (rec, epoch + 1)
            save_weights(self.out, "best", self.net, meta)
        save_weights(self.out, "last", self.net, meta)
        _write_metrics(self.out / RUN_FILES["metrics"], self.rows)
        state = {"epoch": epoch + 1, "best_test": self.best[0], "best_epoch": self.best[1]}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        save_state(self.out, state)  # last: the state names the epoch of a complete checkpoint
        self.saved_epoch = epoch + 1
        # the picture costs ~0.5-1.5 s: draw it 30 s into the run, then at most every 30 s, and at the end (a short
        # run draws it once)
        if last or time.perf_counter() - self._curves_at > 30:
            self._write_curves()
            self._curves_at = time.perf_counter()
        self._write_card(finished_epochs=epoch + 1)

    def _write_static(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / RUN_FILES["config"], self.config.to_yaml())
        with atomic_path(self.out / RUN_FILES["context"]) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **self.ctx.arrays())
        self._started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._write_card(finished_epochs=self.start_epoch)

    def _write_curves(self) -> None:
        from bodydata.viz.curves import training_curves_png

        keys = sorted({k for r in self.rows for k in r if k.startswith(("train_", "test_"))})
        series = {k: [float(r.get(k, "nan") if r.get(k, "") != "" else "nan") for r in self.rows] for k in keys}
        starts = [int(r["epoch"]) for a, r in zip(self.rows, self.rows[1:]) if int(r["phase"]) != int(a["phase"])]
        training_curves_png(self.out / RUN_FILES["curves"], [int(r["epoch"]) for r in self.rows], series, starts,
                            title=f"{self.config.arch} on {self.root.name}")

    def _write_card(self, finished_epochs: int) -> None:
        import importlib.metadata

        import bodydata

        versions = {"bodydata": bodydata.__version__, "torch": torch.__version__, "numpy": np.__version__,
                    "python": platform.python_version()}
        try:
            versions["anny"] = importlib.metadata.version("anny")
        except importlib.metadata.PackageNotFoundError:
            pass
        n_params = sum(p.numel() for p in self.net.parameters())
        card = {
            "format": "bodydata-run", "arch": self.config.arch, "parameters": n_params,
            "dataset": {"name": self.root.name, "digest": self.data_digest, "pairs": self.card["counts"]["total"]},
            "template": {k: self.card["template"][k] for k in ("name", "spec", "n_vertices", "digest")},
            "features": {"weighting": self.card["features"]["extractor"].get("weighting", "acap"),
                         "extractor": self.card["features"]["extractor"]},
            "seed": self.config.train.seed, "device": str(self.device), "processes": self.world,
            "data_in_memory": self.in_memory, "started": getattr(self, "_started", ""),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "epochs_finished": finished_epochs, "epochs_planned": self.config.train.epochs,
            "best_epoch": self.best[1], "best_test_l1": None if math.isinf(self.best[0]) else self.best[0],
            "train_seconds": round(sum(float(r["seconds"]) for r in self.rows), 2), "versions": versions,
        }
        atomic_write_text(self.out / RUN_FILES["card_json"], json.dumps(card, indent=1) + "\n")
        atomic_write_text(self.out / RUN_FILES["card_md"], _card_md(card, self.rows))


def _adam_speed(device: torch.device) -> dict[str, Any]:
    """Fused Adam (one kernel over all parameters) where this torch has it: on the CPU the default per-tensor
    loop reads and writes the ~135 M parameters' four arrays several times; fused reads them once."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError, ValueError):
        return {}


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    atomic_write_csv(path, cols, rows)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: (v if k in ("epoch", "phase") else (float(v) if v != "" else "")) for k, v in r.items()}
                for r in csv.DictReader(fh)]


def _card_md(card: dict, rows: list[dict]) -> str:
    last = rows[-1] if rows else {}
    lines = [f"# Run card: {card['arch']}", "",
             f"- dataset `{card['dataset']['name']}` (digest {card['dataset']['digest'][:16]}…, "
             f"{card['dataset']['pairs'].get('total', '?')} pairs); template `{card['template']['name']}` "
             f"({card['template']['n_vertices']} vertices, digest {card['template']['digest'][:16]}…)",
             f"- {card['parameters']:,} parameters; seed {card['seed']}; device {card['device']} x {card['processes']} "
             f"process(es); data held in memory: {card['data_in_memory']}",
             f"- epochs {card['epochs_finished']} of {card['epochs_planned']}; training time {card['train_seconds']} s; "
             f"best epoch {card['best_epoch']} (test L1 of f + f_s, scaled: {card['best_test_l1']})",
             f"- started {card['started']}, updated {card['updated']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()), ""]
    if last:
        lines += ["## Last epoch", "", "| term | train | test |", "|---|---:|---:|"]
        for t in sorted({k.split("_", 1)[1] for k in last if k.startswith(("train_", "test_"))}):
            a, b = last.get(f"train_{t}", ""), last.get(f"test_{t}", "")
            lines.append(f"| {t} | {a if a == '' else f'{float(a):.5g}'} | {b if b == '' else f'{float(b):.5g}'} |")
        lines.append("")
    lines += ["Files: `config.yaml` (resolved config), `checkpoints/` (best, last), `metrics.csv`, `curves.png`.", ""]
    return "\n".join(lines)


def train(dataset: str | os.PathLike, out: str | os.PathLike, config: str | os.PathLike | None = None,
          arch: str | None = None, epochs: int | None = None, device: str | None = None, resume: bool = False,
          progress: bool = True, distributed: tuple[int, int] | None = None, rank_device: str | None = None,
          **train_overrides: Any) -> TrainResult:
    """One call: resolve the config (file, ``arch``, overrides), build a :class:`Trainer`, run it.
    ``distributed``/``rank_device``: set by :func:`bodydata.train.distributed.run_distributed` under torchrun."""
    if resume:
        if config is not None:
            raise TrainError(f"{out}: --config cannot be given with --resume (the run keeps its own config.yaml)")
        cfg = load_config(arch=arch) if arch else None
        return Trainer(dataset, out, cfg, resume=True, progress=progress, epochs=epochs, distributed=distributed,
                       device=rank_device, resume_options={"device": device, **train_overrides}).run()
    cfg = load_config(config, arch=arch, overrides={"epochs": epochs, "device": device, **train_overrides})
    return Trainer(dataset, out, cfg, progress=progress, distributed=distributed, device=rank_device).run()
