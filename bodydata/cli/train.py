"""``bodydata train``: train an embedding (dhnn, baseline, meshvae, pca) on a ``bodydata build-dataset`` folder."""
from __future__ import annotations

import click

EXAMPLE = """
\b
Examples:
  bodydata train --dataset bodydata-runs/anny-demo/build-dataset/dataset --out runs/dhnn --epochs 50
  bodydata train --dataset DS --out runs/pca --arch pca
  bodydata train --dataset DS --out runs/dhnn --resume --epochs 100      # continue (or extend) a run
  torchrun --nproc_per_node 2 -m bodydata.train --dataset DS --out runs/ddp   # several GPUs (DDP)

Exit status: 0 trained; 1 stopped (a NaN loss: the last good checkpoint is kept); 2 cannot start
(not a complete dataset, bad config, a run already in --out without --resume); 130 interrupted (Ctrl-C).
"""


@click.command("train", epilog=EXAMPLE)
@click.option("--dataset", required=True, type=click.Path(file_okay=False, path_type=str),
              help="a `bodydata build-dataset` output folder")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="the run folder to write")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="YAML config (sections arch, <arch>, loss, train); default: the paper's settings")
@click.option("--arch", default=None, help="dhnn (default), baseline, meshvae, pca, or a registered architecture")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: auto = CUDA when present]")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="total epochs [default: 2200, the paper's 1600 + 600; the schedule is stretched in proportion]")
@click.option("--batch-size", type=click.IntRange(min=2), default=None, help="global batch, half neutral [default: 24]")
@click.option("--seed", type=int, default=None, help="seed of the weights, batches and noise [default: 0]")
@click.option("--resume", is_flag=True, help="continue the run in --out from its last finished epoch")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_cmd(dataset, out, config, arch, device, epochs, batch_size, seed, resume, quiet) -> None:
    """Train the disentangled body embedding (paper §5) or a baseline on DATASET, writing the run to OUT."""
    from bodydata.errors import BodydataError
    from bodydata.train.trainer import TrainStopped, train

    try:
        res = train(dataset, out, config=config, arch=arch, epochs=epochs, device=device, resume=resume,
                    progress=not quiet, batch_size=batch_size, seed=seed)
    except TrainStopped as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
    except BodydataError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    m = res.metrics
    test = m.get("test_l1_f", "")
    click.echo(f"{out}: {res.epochs} epochs in {res.seconds:.1f} s; best epoch {res.best_epoch}; last train L1(f) "
               f"{float(m.get('train_l1_f', 'nan')):.4f}" + (f", test L1(f) {float(test):.4f}" if test != "" else "")
               + " (scaled features)")


COMMANDS = [train_cmd]
