"""eval, render-all, demo and bench produce their files and numbers."""
import json

import numpy as np
from PIL import Image

from airender.cli import main
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from tests.conftest import make_contest_dataset, run_cli


def test_eval_on_real_data_with_extra_frames(courtyard, lpips_weights, tmp_path, capsys):
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.data.data_dir = str(courtyard / "png")
    config.train.epochs, config.train.samples_per_epoch, config.train.progress = 1, 16384, False
    Trainer(config, load_sequence(config.data.data_dir)).fit()
    code = main(["eval", "--ckpt", str(tmp_path / "run" / "best.ckpt"), "--data_dir", str(courtyard / "png"),
                 "--extra", str(courtyard / "png_extra"), "--lpips_weights", str(lpips_weights), "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "**hours mean**" in out and "**between_day mean**" in out and "LPIPS" in out
    assert "Groups: hours = the trained hours" in out
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert len([r for r in metrics["rows"] if r["group"] == "hours"]) == 24
    held = {g: sorted(r["time"] for r in metrics["rows"] if r["group"] == g)
            for g in ("between_day", "between_night", "switch")}
    assert held == {"between_day": [7.5, 10.25, 13.5, 16.75], "between_night": [2.5, 19.5, 22.5],
                    "switch": [5.9, 18.1]}
    day, night = metrics["means"]["between_day"]["psnr"], metrics["means"]["between_night"]["psnr"]
    assert abs(metrics["means"]["between"]["psnr"] - (4 * day + 3 * night) / 7) < 1e-6
    for group in ("hours", "between_day", "between_night", "switch"):
        mean = metrics["means"][group]
        assert 10 < mean["psnr"] < 60 and 0 < mean["ssim"] < 1 and 0 < mean["lpips"] < 1 and 0 < mean["flip"] < 1
    for name in ("metrics.csv", "metrics.md", "metrics_vs_hour.png", "contact_sheet.png"):
        assert (tmp_path / "run" / "eval" / name).is_file()


def test_hdr_contest_train_render_eval(tmp_path, capsys):
    keys = ["0", "600", "1200", "1800", "590", "1810"]
    make_contest_dataset(tmp_path / "c", keys, [("lv", 0, 12, 10)])
    run = tmp_path / "run"
    assert main(["train", "--data_dir", str(tmp_path / "c"), "--out_dir", str(run), "--epochs", "2",
                 "--samples_per_epoch", "2000", "--batch_size", "500", "--hidden", "16", "--layers", "2",
                 "--holdout_hours", "5.9", "18.1", "--progress", "False"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["is_hdr"] and config["data"]["transform"] == "log1p"
    assert config["data"]["train_times"] == [0.0, 6.0, 12.0, 18.0]
    assert (run / "baseline.exr").is_file()
    assert main(["render-all", "--ckpt", str(run / "best.ckpt"), "--output_dir", str(tmp_path / "all"),
                 "--start_hour", "5", "--end_hour", "6", "--step", "0.25"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.exr")) == \
        [f"tod_{t}.exr" for t in ("05.00", "05.25", "05.50", "05.75", "06.00")]
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(run / "best.ckpt"), "--data_dir", str(tmp_path / "c"),
                 "--out_dir", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "| switch | 5.9 |" in out and "| hours | 12 |" in out


def test_demo_short_budget(tmp_path, lpips_weights):
    result = run_cli("demo", "--out_dir", str(tmp_path / "demo"), "--seconds", "4", "--lpips_weights",
                     str(lpips_weights), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    demo = tmp_path / "demo"
    assert "hours mean" in result.stdout and "between_day mean" in result.stdout and "switch mean" in result.stdout
    assert "training ended at step" in result.stdout and "time budget (--time_budget_s 4) ran out" in result.stdout
    for name in ("best.ckpt", "contact_sheet.png", "metrics.md", "day.gif", "eval/metrics.csv",
                 "eval/metrics_vs_hour.png", "renders/tod_05.90.png", "renders/tod_12.00.png"):
        assert (demo / name).is_file(), name
    sheet = np.asarray(Image.open(demo / "contact_sheet.png"))
    assert sheet.shape[0] > 400 and sheet.std() > 10


def test_bench_prints_all_parts(tmp_path):
    result = run_cli("bench", "--width", "320", "--height", "180", "--repeats", "2", "--train_steps", "3",
                     "--device", "cpu", "--out", str(tmp_path / "bench.json"))
    assert result.returncode == 0, result.stderr
    assert "(a) data path" in result.stdout and "(b) training" in result.stdout and "(c) whole-frame" in result.stdout
    numbers = json.loads((tmp_path / "bench.json").read_text())
    assert numbers["data_path"]["speedup"] > 1 and numbers["train_samples_per_s"] > 0
    assert numbers["decode"][0]["decode_ms_median"] > 0 and numbers["decode"][0]["model_bytes"] > 0
