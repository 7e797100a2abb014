"""Training on a tiny anny-lite dataset: it learns, it saves and loads exactly, it resumes exactly, it refuses bad input."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bodydata.model import load
from bodydata.train.config import ConfigError, load_config
from bodydata.train.trainer import TrainError, Trainer, train

SMALL = {"encoder_widths": [48, 48], "branch_widths": [48, 96]}


def _config(tmp_path: Path, arch: str = "dhnn", **train_opts) -> Path:
    section = {"meshvae": {"encoder_widths": [48, 48], "decoder_widths": [48, 96]}, "pca": {"n_components": 8}}.get(
        arch, SMALL)
    path = tmp_path / f"{arch}.yaml"
    path.write_text(yaml.safe_dump({"arch": arch, arch: section,
                                    "train": {"batch_size": 4, "lr": 1e-3, "threads": 1, **train_opts}}))
    return path


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_dhnn_overfits_the_tiny_set_and_keeps_its_constraints(tiny_dataset, tmp_path):
    """Train-set losses with the posterior means, before and after 300 epochs (1,500 steps) on 12 meshes.

    The neutral branch (f_s, g_s) falls ~15x; the posed f, decoded through sampled codes while training, ~4x in this
    budget (it keeps falling with more steps: a VAE's reconstruction converges slower than an autoencoder's)."""
    ds, _ = tiny_dataset
    # a checkpoint every 100 epochs (default 1): the same training, without 300 rounds of checkpoint files
    tr = Trainer(ds, tmp_path / "run", load_config(_config(tmp_path, checkpoint_every=100), overrides={"epochs": 300}),
                 progress=False)
    before = tr.evaluate("train")
    res = tr.run()
    after = tr.evaluate("train")
    for term, factor in (("l1_f_s", 10), ("l1_g_s", 10), ("l1_f", 3), ("l1_g", 3)):
        assert after[term] < before[term] / factor, (term, before[term], after[term])
    assert res.epochs == 300 and (tmp_path / "run" / "curves.png").stat().st_size > 1000
    m = load(tmp_path / "run", "last", device="cpu")
    w = m.net.skinning.weights().detach().numpy()
    mask = m.net.skinning.mask.numpy()
    assert (w >= 0).all() and np.allclose(w.sum(1), 1, atol=1e-6) and (w[~mask] == 0).all()
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["dhnn"]["shape_dim"] == 50 and resolved["loss"]["rc_ratio"] == 0.6
    assert resolved["train"]["epochs"] == 300


def test_saved_model_loads_exactly_and_its_neutral_is_the_zero_pose(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    tr = Trainer(ds, tmp_path / "run", load_config(_config(tmp_path), overrides={"epochs": 2}), progress=False)
    tr.run()
    m = load(tmp_path / "run", "last", device="cpu")
    ref = tr.net.state_dict()
    for k, v in m.net.state_dict().items():
        assert torch.equal(v.cpu(), ref[k].cpu()), k
    from bodydata.dataset.torch_dataset import BodyPairsDataset

    item = BodyPairsDataset(ds, "test")[0]
    raw = torch.from_numpy(BodyPairsDataset(ds, "test", scaled=False)[0]["f"].numpy())[None]
    e_s, e_p = m.encode(raw)
    tr.net.eval()
    out = tr.net(item["f"][None])
    torch.testing.assert_close(m.decode(e_s, e_p), m.unscale(out.f), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.decode(e_s), m.unscale(out.f_s), rtol=1e-4, atol=1e-5)
    v = m.vertices(e_s, e_p)
    assert v.shape == (1, 1229, 3) and torch.isfinite(v).all()


def test_resumed_run_equals_the_uninterrupted_one(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    cfg = _config(tmp_path)
    train(ds, tmp_path / "full", config=cfg, epochs=4, progress=False)

    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(ds, tmp_path / "cut", load_config(cfg, overrides={"epochs": 4}), progress=False,
                on_epoch_end=stop).run()
    assert len(_metrics(tmp_path / "cut")) == 2
    res = train(ds, tmp_path / "cut", epochs=None, resume=True, progress=False)
    assert res.epochs == 4
    a = load(tmp_path / "full", "last", device="cpu").net.state_dict()
    b = load(tmp_path / "cut", "last", device="cpu").net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    fa, fb = _metrics(tmp_path / "full"), _metrics(tmp_path / "cut")
    assert [r["train_l1_f"] for r in fa] == [r["train_l1_f"] for r in fb]


@pytest.mark.parametrize("arch", ["baseline", "meshvae", "pca"])
def test_baselines_train_with_the_same_trainer(tiny_dataset, tmp_path, arch):
    ds, _ = tiny_dataset
    res = train(ds, tmp_path / arch, config=_config(tmp_path, arch), epochs=3, progress=False)
    rows = _metrics(tmp_path / arch)
    assert "train_l1_g" not in rows[0]
    assert ("train_l1_f_s" in rows[0]) == (arch == "baseline")
    assert res.epochs == (1 if arch == "pca" else 3)
    m = load(tmp_path / arch, device="cpu")
    assert m.net.arch == arch


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset

    def poison(epoch, row):
        if epoch == 0:
            with torch.no_grad():
                tr.net.difference.out[0].weight.fill_(float("nan"))

    tr = Trainer(ds, tmp_path / "run", load_config(_config(tmp_path), overrides={"epochs": 3}), progress=False,
                 on_epoch_end=poison)
    with pytest.raises(TrainError, match=r"epoch 2, step 1: loss term l1_f is nan; training stopped, the last good "
                                         r"checkpoint is epoch 1"):
        tr.run()
    m = load(tmp_path / "run", "last", device="cpu")
    assert all(torch.isfinite(v).all() for v in m.net.state_dict().values() if v.is_floating_point())


def test_bad_input_is_one_line(tiny_dataset, tmp_path):
    from bodydata.errors import BodydataError

    ds, _ = tiny_dataset
    broken = tmp_path / "broken"
    shutil.copytree(ds, broken, ignore=shutil.ignore_patterns("cache"))
    (broken / "card.json").unlink()
    with pytest.raises(BodydataError, match=r"broken: incomplete dataset \(no card.json"):
        train(broken, tmp_path / "r0", epochs=1, progress=False)
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("train: {epochz: 3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: config key 'train.epochz' does not exist"):
        train(ds, tmp_path / "r1", config=bad_key, progress=False)
    bad_type = tmp_path / "type.yaml"
    bad_type.write_text("train: {epochs: eight}\n")
    with pytest.raises(ConfigError, match=r"config key 'train.epochs': expected int, got 'eight'"):
        train(ds, tmp_path / "r2", config=bad_type, progress=False)
    train(ds, tmp_path / "run", config=_config(tmp_path), epochs=1, progress=False)
    with pytest.raises(TrainError, match="already holds a run"):
        train(ds, tmp_path / "run", config=_config(tmp_path), epochs=1, progress=False)
    with pytest.raises(TrainError, match="is a dhnn run; it cannot be resumed as meshvae"):
        train(ds, tmp_path / "run", arch="meshvae", epochs=2, resume=True, progress=False)
    # a checkpoint of another architecture dropped into the run
    train(ds, tmp_path / "other", config=_config(tmp_path, "meshvae"), epochs=1, progress=False)
    shutil.copy(tmp_path / "other" / "checkpoints" / "last.safetensors", tmp_path / "run" / "checkpoints")
    with pytest.raises(BodydataError, match=r"last.safetensors: checkpoint was made for arch meshvae, this run has dhnn"):
        train(ds, tmp_path / "run", epochs=2, resume=True, progress=False)


def test_cli_trains_and_reports_exit_status(tiny_dataset, tmp_path):
    from click.testing import CliRunner

    from bodydata.cli.main import cli

    ds, _ = tiny_dataset
    cfg = _config(tmp_path)
    r = CliRunner().invoke(cli, ["train", "--dataset", str(ds), "--out", str(tmp_path / "run"), "--config", str(cfg),
                                 "--epochs", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "2 epochs" in r.output
    for name in ("config.yaml", "context.npz", "metrics.csv", "curves.png", "card.md", "card.json",
                 "checkpoints/last.safetensors", "checkpoints/best.safetensors", "checkpoints/last.state.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    torch.load(tmp_path / "run" / "checkpoints" / "last.state.pt", weights_only=True)
    r = CliRunner().invoke(cli, ["train", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0 and "no such dataset folder" in r.output


def test_dataset_card_md_names_inputs_relative_to_the_dataset(tiny_dataset):
    ds, _ = tiny_dataset
    text = (ds / "card.md").read_text()
    assert str(ds.parent) not in text and "`../anny.csv`" in text


def test_resume_edge_cases(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    cfg = _config(tmp_path)

    def stop_at_once(epoch, row):
        raise KeyboardInterrupt

    # stopped before its first checkpoint (checkpoint_every 5): --resume starts it again from epoch 0
    with pytest.raises(KeyboardInterrupt):
        Trainer(ds, tmp_path / "early", load_config(cfg, overrides={"epochs": 3, "checkpoint_every": 5}),
                progress=False, on_epoch_end=stop_at_once).run()
    assert not (tmp_path / "early" / "checkpoints" / "last.state.pt").exists()
    assert train(ds, tmp_path / "early", resume=True, progress=False).epochs == 3
    # options that change the numbers cannot change on resume; a shorter total than what is done is refused
    with pytest.raises(TrainError, match="--batch-size cannot change when a run is resumed"):
        train(ds, tmp_path / "early", resume=True, batch_size=8, progress=False)
    with pytest.raises(TrainError, match="--epochs 2 is fewer than the 3 epochs this run has finished"):
        train(ds, tmp_path / "early", resume=True, epochs=2, progress=False)
    assert train(ds, tmp_path / "early", resume=True, epochs=4, threads=1, progress=False).epochs == 4
