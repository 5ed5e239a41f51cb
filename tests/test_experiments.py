"""Anchors, the results table, compare on tiny data, and a killed sweep that resumes."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from airender.anchors import NeighbourBlend, PCABasis
from airender.data import load_sequence
from airender.experiments import parse_grid, sweep_specs, write_tables
from tests.conftest import REPO, make_png_folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tod")
    make_png_folder(folder, [0, 4, 8, 12, 16, 20], height=36, width=40)
    return folder


def test_pca_full_rank_reproduces_training_frames(data_dir):
    seq = load_sequence(data_dir)
    pca = PCABasis(seq, k=seq.num_frames, quantize=False)
    for k, hour in enumerate(seq.time_list()):
        assert torch.allclose(pca.decode(hour), seq.frames[k], atol=1e-6)
    low = PCABasis(seq, k=2)
    assert low.nbytes < pca.nbytes and not torch.allclose(low.decode(4.0), seq.frames[1], atol=1e-3)


def test_neighbour_blend_equals_stored_frames_at_hours(data_dir):
    seq = load_sequence(data_dir)
    blend = NeighbourBlend(seq)
    for k, hour in enumerate(seq.time_list()):
        assert torch.equal(blend.decode(hour), seq.frames[k])
    assert torch.allclose(blend.decode(2.0), (seq.frames[0] + seq.frames[1]) / 2, atol=1e-6)
    assert torch.allclose(blend.decode(22.0), (seq.frames[5] + seq.frames[0]) / 2, atol=1e-6)  # wraps at midnight
    assert blend.nbytes == seq.frames.numel()  # 8 bits per value


def test_table_builder_on_two_result_files(tmp_path):
    rows = [{"method": "a", "psnr_hours": 30.123, "ssim_hours": 0.91234, "lpips_hours": None, "bytes": 2048,
             "percent_of_raw": 1.5, "decode_ms_1080p": 12.34, "train_seconds": 10.0},
            {"method": "b", "psnr_hours": 25.0, "ssim_hours": 0.8, "lpips_hours": 0.2, "bytes": 4096,
             "percent_of_raw": 3.0, "decode_ms_1080p": float("nan"), "train_seconds": 0.0}]
    for row in rows:
        (tmp_path / row["method"]).mkdir()
        (tmp_path / row["method"] / "result.json").write_text(json.dumps({"row": row, "frames": []}))
    from airender.experiments import load_results

    text = write_tables(load_results(tmp_path, ["a", "b"]), tmp_path)
    lines = text.strip().splitlines()
    assert lines[0].startswith("| method | psnr_hours | ssim_hours | lpips_hours |")
    assert "| a | 30.12 | 0.9123 | - |" in lines[2] and "2.0 KiB" in lines[2] and "| 12 |" in lines[2]
    assert "| b | 25.00 | 0.8000 | 0.2000 |" in lines[3] and lines[3].endswith("| - |")
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("method,psnr_hours,ssim_hours,lpips_hours") and len(csv_lines) == 3


def test_grid_parsing_and_names():
    grid = parse_grid(["patch_size=16,32", "loss_ssim_w=0.1,0.5", "use_baseline_encoder=True"])
    assert grid == {"patch_size": [16, 32], "loss_ssim_w": [0.1, 0.5], "use_baseline_encoder": [True]}
    specs = sweep_specs(grid, "hybrid")
    assert len(specs) == 4 and specs[0].overrides == {"loss": {"loss_ssim_w": 0.1}, "train": {"patch_size": 16},
                                                       "field": {"use_baseline_encoder": True}}
    assert len({s.name for s in specs}) == 4


def test_compare_on_tiny_data(data_dir, tmp_path):
    out = tmp_path / "cmp"
    result = subprocess.run([sys.executable, "-m", "airender.cli", "compare", "--data", str(data_dir), "--out",
                             str(out), "--methods", "baseline,hashgrid,blend,pca3", "--decode_repeats", "0",
                             "--budget", "smoke"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("|")][2:]
    rows = {line.split("|")[1].strip(): line for line in table}
    assert set(rows) == {"baseline", "hashgrid", "blend", "pca3"}
    assert "Groups: hours = the trained hours" in (out / "results.md").read_text()
    for name in ("results.csv", "metrics_vs_hour.png", "quality_vs_bytes.png"):
        assert (out / name).is_file()
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"psnr_hours", "ssim_hours", "flip_hours", "psnr_between_day", "psnr_between_night", "psnr_switch",
            "psnr_between", "bytes", "decode_ms_1080p"} <= set(header)


def test_killed_sweep_resumes_without_redoing_runs(data_dir, tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "airender.cli", "sweep", "--data", str(data_dir), "--out", str(out),
               "--preset", "baseline", "--grid", "hidden=8,12,16", "--grid", "layers=1", "--budget", "smoke"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("*/result.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    assert 1 <= len(finished) < 3, "the sweep was not interrupted mid-way"
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} of 3 runs already finished; skipping them" in resumed.stdout
    for name, mtime in finished.items():
        assert (out / name / "result.json").stat().st_mtime_ns == mtime  # not redone
    assert len(list(out.glob("*/result.json"))) == 3
    assert len([line for line in (out / "results.md").read_text().splitlines() if line.startswith("|")]) == 5
