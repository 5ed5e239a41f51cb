"""shadow_edges.png: crops where the sun's shadows moved between two trained hours (airender/shadow_edges.py)."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from airender.anchors import NeighbourBlend
from airender.cli import main
from airender.data import load_sequence
from airender.data.sequence import TODSequence
from airender.engine.trainer import Trainer
from airender.evaluate import EvalReport
from airender.presets import apply_overrides, preset_config
from airender.shadow_edges import (default_crop_size, moving_shadow_crops, neighbour_blend_frame,
                                   shadow_edge_rows, write_shadow_edges, default_view)
from tests.conftest import make_png_folder, write_png

HEIGHT, WIDTH, SIDE, ROW = 48, 64, 8, 20  # the shadow: a SIDE x SIDE square with its top at y=ROW


def shadow_frame(x: int) -> np.ndarray:
    """A lit grey floor [HEIGHT, WIDTH, 3] with a dark square shadow whose left edge is at ``x``."""
    frame = np.full((HEIGHT, WIDTH, 3), 0.8, np.float32)
    frame[ROW:ROW + SIDE, x:x + SIDE] = 0.2
    return frame


def overlaps(top: int, left: int, size: int, x: int) -> bool:
    """Does the size x size window at (top, left) overlap the shadow square at x?"""
    return top < ROW + SIDE and ROW < top + size and left < x + SIDE and x < left + size


def windows_overlap(a: tuple[int, int], b: tuple[int, int], size: int) -> bool:
    return abs(a[0] - b[0]) < size and abs(a[1] - b[1]) < size


def test_top_crop_holds_the_moving_shadow_and_the_blend_fails_there():
    before, truth, after = shadow_frame(10), shadow_frame(20), shadow_frame(30)  # 9 h, 9.5 h, 10 h
    size = default_crop_size(HEIGHT, WIDTH)
    assert size == 16
    crops = moving_shadow_crops(truth, before, after, 0.5, count=3)
    top, left = crops[0]
    assert overlaps(top, left, size, 20)  # the shadow where it is at 9.5 h, which the blend misses
    assert any(overlaps(t, x, size, 10) or overlaps(t, x, size, 30) for t, x in crops)  # its ghosts
    assert len(crops) == 2  # nothing else moved: windows that score 0 are not shown

    # the same through the report: hours 9 and 10 of a day of frames, a perfect prediction at 9.5
    hours = [0.0, 6.0, 9.0, 10.0, 15.0, 21.0]
    frames = torch.from_numpy(np.stack([shadow_frame({9.0: 10, 10.0: 30}.get(h, 50)) for h in hours]))
    sequence = TODSequence(frames, torch.tensor(hours, dtype=torch.float64), None, False, "synthetic")
    report = EvalReport(rows=[], predictions={("between_day", 9.5): torch.from_numpy(truth)},
                        truths={("between_day", 9.5): torch.from_numpy(truth)})
    rows = shadow_edge_rows(report, [("hours", sequence)], False, default_view(False), count=3)
    assert len(rows) == 2 and (rows[0].top, rows[0].left) == (top, left)
    assert (rows[0].before_hour, rows[0].after_hour, rows[0].weight) == (9.0, 10.0, 0.5)
    assert rows[0].truth.shape == (size, size, 3)
    assert math.isinf(rows[0].psnr_prediction)
    assert rows[0].psnr_blend < 30.0


def test_windows_do_not_overlap_and_stop_when_none_is_left():
    rng = np.random.default_rng(0)
    truth, before, after = (rng.random((HEIGHT, WIDTH, 3)).astype(np.float32) for _ in range(3))
    size = 16
    crops = moving_shadow_crops(truth, before, after, 0.3, size=size, count=6)
    assert len(crops) == 6
    for i, a in enumerate(crops):
        assert 0 <= a[0] <= HEIGHT - size and 0 <= a[1] <= WIDTH - size
        for b in crops[i + 1:]:
            assert not windows_overlap(a, b, size), (a, b)
    # a window as large as the frame's height leaves room for one; invalid texels never score
    assert len(moving_shadow_crops(truth, before, after, 0.3, size=HEIGHT, count=3)) == 1
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[:, 40:] = True
    (top, left), = moving_shadow_crops(truth, before, after, 0.3, size=size, count=1, mask=mask)
    assert left >= 40 - size // 4  # over the valid texels


def test_blend_column_is_the_neighbour_blend_anchor():
    rng = np.random.default_rng(1)
    for is_hdr, scale in ((False, 1.0), (True, 5.0)):
        frames = torch.from_numpy((rng.random((4, 6, 8, 3)) * scale).astype(np.float32))
        sequence = TODSequence(frames, torch.tensor([0.0, 6.0, 12.0, 18.0], dtype=torch.float64), None, is_hdr, "s")
        anchor = NeighbourBlend(sequence)
        assert torch.allclose(neighbour_blend_frame(frames[1], frames[2], 0.25, is_hdr), anchor.decode(7.5))
        assert torch.allclose(neighbour_blend_frame(frames[3], frames[0], 0.5, is_hdr), anchor.decode(21.0))


def test_nothing_is_written_without_between_day_frames(tmp_path):
    frames = torch.from_numpy(np.stack([shadow_frame(10), shadow_frame(30)]))
    sequence = TODSequence(frames, torch.tensor([9.0, 10.0], dtype=torch.float64), None, False, "s")
    night = EvalReport(rows=[], predictions={("between_night", 22.5): frames[0]},
                       truths={("between_night", 22.5): frames[0]})
    assert write_shadow_edges(night, [("hours", sequence)], tmp_path / "a.png", False) is None
    kept_nothing = EvalReport(rows=[{"group": "between_day", "time": 9.5}])
    assert kept_nothing.shadow_edges(tmp_path / "b.png", [("hours", sequence)], False) is None
    assert not list(tmp_path.iterdir())


def test_hdr_sheet_is_drawn_with_the_contact_sheet_tone_mapping(tmp_path):
    before, truth, after = (torch.from_numpy(shadow_frame(x) * 6.0) for x in (10, 20, 30))  # radiance
    sequence = TODSequence(torch.stack([before, after]), torch.tensor([9.0, 10.0], dtype=torch.float64), None,
                           True, "s")
    report = EvalReport(rows=[], predictions={("between_day", 9.5): truth * 1.1},
                        truths={("between_day", 9.5): truth})
    path = report.shadow_edges(tmp_path / "shadow_edges.png", [("hours", sequence)], True, title="hdr")
    assert path == tmp_path / "shadow_edges.png" and path.is_file()
    rows = shadow_edge_rows(report, [("hours", sequence)], True, default_view(True, 0.9 / 6.0))
    assert 20.0 < rows[0].psnr_prediction < 60.0 and rows[0].psnr_blend < rows[0].psnr_prediction


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A field trained a few steps on random 40 x 48 PNG frames at eight hours; returns (data, ckpt)."""
    root = tmp_path_factory.mktemp("shadow_edges")
    make_png_folder(root / "hours", [0, 3, 6, 9, 12, 15, 18, 21], height=40, width=48)
    config = apply_overrides(preset_config("baseline"), {
        "train": {"epochs": 1, "samples_per_epoch": 8 * 256, "batch_size": 256, "progress": False,
                  "val_downsample": 2}})
    config.data.data_dir, config.out_dir = str(root / "hours"), str(root / "run")
    Trainer(config, load_sequence(root / "hours")).fit()
    return root, root / "run" / "best.ckpt"


def test_eval_writes_shadow_edges_only_with_a_daylight_between_frame(tiny_run, tmp_path):
    root, ckpt = tiny_run
    rng = np.random.default_rng(5)
    write_png(tmp_path / "day" / "tod_10.5.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    write_png(tmp_path / "night" / "tod_22.5.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    base = ["eval", "--ckpt", str(ckpt), "--data_dir", str(root / "hours"), "--device", "cpu"]
    assert main(base + ["--extra", str(tmp_path / "day"), "--out_dir", str(tmp_path / "ev_day")]) == 0
    sheet = tmp_path / "ev_day" / "shadow_edges.png"
    assert sheet.is_file() and (tmp_path / "ev_day" / "contact_sheet.png").is_file()
    pixels = np.asarray(Image.open(sheet))
    assert pixels.shape[0] > 3 * 200 and pixels.std() > 10  # three crop rows of something
    assert main(base + ["--extra", str(tmp_path / "night"), "--out_dir", str(tmp_path / "ev_night")]) == 0
    assert (tmp_path / "ev_night" / "contact_sheet.png").is_file()
    assert not (tmp_path / "ev_night" / "shadow_edges.png").exists()
