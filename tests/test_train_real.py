"""Training on real renders (../shared/data/courtyard) and the roadmap's original commands."""
import json

import numpy as np
from PIL import Image

from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from tests.conftest import REPO, run_cli


def test_short_training_lowers_loss_on_real_data(courtyard, tmp_path):
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.data.data_dir = str(courtyard / "png")
    config.field.xy_include_input = True
    config.train.epochs = 4
    config.train.samples_per_epoch = 65536
    config.train.progress = False
    result = Trainer(config, load_sequence(config.data.data_dir)).fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and log[-1]["step"] == result.steps == 32
    assert log[-1]["loss"] < 0.6 * log[0]["loss"]
    assert log[-1]["val/psnr"] > log[0]["val/psnr"] + 1.0
    assert result.best_metric == max(entry["val/psnr"] for entry in log)
    for name in ("best.ckpt", "last.ckpt", "config.json", "baseline.png", "train_log.jsonl"):
        assert (tmp_path / "run" / name).is_file()
    baseline = np.asarray(Image.open(tmp_path / "run" / "baseline.png"))
    assert np.array_equal(baseline, np.asarray(Image.open(courtyard / "png" / "tod_12.png").convert("RGB")))


def test_roadmap_commands(courtyard, tmp_path):
    run_dir = tmp_path / "runs" / "delta_small"
    train = run_cli(str(REPO / "scripts" / "train.py"), "--data_dir", str(courtyard / "png"), "--out_dir", str(run_dir),
                    "--epochs", "2", "--batch_size", "8192", "--hidden", "64", "--layers", "6",
                    "--time_harmonics", "4", "--xy_harmonics", "4", "--xy_include_input", "--lr", "5e-4",
                    "--num_workers", "1", "--samples_per_epoch", "20000", "--residual_mode", "True",
                    "--baseline_time", "12", "--progress", "False")
    assert train.returncode == 0, train.stderr
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["field"]["residual_mode"] is True and config["field"]["xy_include_input"] is True
    assert config["train"]["samples_per_epoch"] == 20000 and config["field"]["hidden"] == 64

    out = tmp_path / "runs" / "recon_18_with_base.png"
    infer = run_cli(str(REPO / "scripts" / "infer.py"), "--ckpt", str(run_dir / "best.ckpt"),
                    "--baseline_path", str(courtyard / "png" / "tod_12.png"), "--time", "18", "--out", str(out))
    assert infer.returncode == 0, infer.stderr
    assert np.asarray(Image.open(out)).shape == (180, 320, 3)

    batch_dir = tmp_path / "runs" / "batch_infer"
    batch = run_cli(str(REPO / "scripts" / "batch_infer.py"), "--ckpt", str(run_dir / "best.ckpt"),
                    "--infer_script", str(REPO / "scripts" / "infer.py"), "--output_dir", str(batch_dir),
                    "--start_hour", "0", "--end_hour", "23")
    assert batch.returncode == 0, batch.stderr
    assert sorted(p.name for p in batch_dir.glob("tod_*.png")) == sorted(f"tod_{h:02d}.00.png" for h in range(24))
    assert (batch_dir / "day.gif").is_file()
    # the hour-18 frame of batch_infer is the same decode as infer.py's (same stored baseline)
    assert np.array_equal(np.asarray(Image.open(batch_dir / "tod_18.00.png")), np.asarray(Image.open(out)))


def test_residual_mode_false_parses_as_false(courtyard, tmp_path):
    from airender.cli import build_parser
    from airender.cli_args import config_from_args

    args = build_parser().parse_args(["train", "--data_dir", "x", "--residual_mode", "False", "--xy_include_input"])
    config = config_from_args(args)
    assert config.field.residual_mode is False and config.field.xy_include_input is True
    args = build_parser().parse_args(["train", "--holdout_hours", "7,13", "17"])
    assert config_from_args(args).data.holdout_hours == [7.0, 13.0, 17.0]
