"""Tiny trained fields for the export tests: every field the presets produce, trained a few steps.

``trained(name)`` trains a variant once per test session (a second or two each on 40 x 48 frames) and
returns the path of its best.ckpt; the fields are loaded from the checkpoint, as ``airender export``
does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airender.data import load_sequence
from airender.data.virtual_texture import VTLightmap, write_virtual_texture
from airender.engine.trainer import Trainer
from airender.presets import apply_overrides, preset_config
from tests.conftest import make_contest_dataset, make_png_folder
from tests.test_components import split_lighting

HEIGHT, WIDTH = 40, 48
HOURS = [0, 3, 5, 6, 9, 12, 15, 18, 19, 21]
QUICK = {"train": {"epochs": 1, "samples_per_epoch": 20 * 256, "batch_size": 256, "progress": False,
                   "val_downsample": 2}}
SWITCH = {"light_switch": [6.0, 18.0]}

# name: (preset, overrides, data) -- data "ldr" (the PNG folder) or "hdr" (the contest layout)
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "quality": ("quality", {}, "ldr"),
    "hashgrid": ("hashgrid", {}, "ldr"),
    "baseline": ("baseline", {}, "ldr"),
    "film": ("film", {}, "ldr"),
    "encoder": ("encoder", {}, "ldr"),
    "quality_switch": ("quality", {"field": SWITCH}, "ldr"),
    "hashgrid3d_switch": ("hashgrid", {"field": {"grid_dims": 3, "grid_levels": 6, "grid_log2_size": 10, **SWITCH}},
                          "ldr"),
    "baseline_switch_spline_blend": ("baseline", {"field": {"time_encoding": "spline", "time_blend": True, **SWITCH}},
                                     "ldr"),
    "encoder_ds2_no_xy": ("encoder", {"field": {"be_downsample": 2, "be_with_xy": False}}, "ldr"),
    "quality_hdr": ("quality", {"field": SWITCH}, "hdr"),
    "baseline_hdr_linear": ("baseline", {"data": {"hdr_transform": "linear"}}, "hdr"),
    "basis": ("basis", {}, "ldr"),
    "basis_hdr_switch": ("basis", {"field": SWITCH}, "hdr"),
    "sun": ("sun", {}, "ldr"),
    "sun_hdr_switch": ("sun", {"field": SWITCH}, "hdr"),
    "hashgrid_components": ("hashgrid", {"field": {"components": True}}, "split"),
    "baseline_components": ("baseline", {"field": {"components": True}}, "split"),
    "sun_components": ("sun", {"field": {"components": True, "residual_mode": False}}, "split"),
}
PRESET_VARIANTS = ["quality", "hashgrid", "baseline", "film", "encoder", "basis"]
# trained on demand by the tests that name them (not part of the VARIANTS every format is tested on)
EXTRA_VARIANTS: dict[str, tuple[str, dict, str]] = {
    "quality_vt": ("quality", {"field": SWITCH}, "vt"),
    "hashgrid_hdr_second": ("hashgrid", {"data": {"lightmap_id": "7"}}, "hdr"),
}
VT_HOURS = [1, 3, 5, 6, 9, 12, 15, 18, 19, 21, 24]


@pytest.fixture(scope="session")
def export_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export_data")
    make_png_folder(root / "ldr", HOURS, height=HEIGHT, width=WIDTH)
    keys = [str(h * 100) for h in HOURS]
    make_contest_dataset(root / "hdr", keys, [("0", 1, WIDTH, HEIGHT), ("0", 7, WIDTH, HEIGHT)])
    rng = np.random.default_rng(3)
    ramp = np.linspace(0.5, 4.0, WIDTH, dtype=np.float32)[None, :, None]
    frames = np.stack([ramp * (1.0 + np.sin(h / 24.0 * 2 * np.pi)) + rng.random((HEIGHT, WIDTH, 3), np.float32)
                       for h in VT_HOURS]).astype(np.float32)
    mask = np.ones((HEIGHT, WIDTH), bool)
    mask[:3] = False
    write_virtual_texture(root / "vt", [VTLightmap(4, [float(h) for h in VT_HOURS], {"original": frames}, mask, parts=2)])
    split, split_mask = split_lighting([float(h) for h in range(1, 25)], height=HEIGHT, width=WIDTH)
    write_virtual_texture(root / "split", [VTLightmap(1, [float(h) for h in range(1, 25)], split, split_mask, parts=2)])
    return {"ldr": root / "ldr", "hdr": root / "hdr", "vt": root / "vt", "split": root / "split"}


@pytest.fixture(scope="session")
def trained(export_data, tmp_path_factory):
    """trained(name) -> Path of best.ckpt of variant ``name`` (trained once per session)."""
    root = tmp_path_factory.mktemp("export_runs")
    done: dict[str, Path] = {}

    def train(name: str) -> Path:
        if name not in done:
            preset, overrides, data = {**VARIANTS, **EXTRA_VARIANTS}[name]
            config = apply_overrides(apply_overrides(preset_config(preset), QUICK), overrides)
            config.data.data_dir, config.out_dir = str(export_data[data]), str(root / name)
            Trainer(config, load_sequence(export_data[data], config.data.lightmap_id,
                                          components=config.field.components)).fit()
            done[name] = root / name / "best.ckpt"
        return done[name]

    return train


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of a against b (same shape), for values with range ``peak``."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak ** 2 / mse)


def run_without_torch(folder: Path, statements: str, cwd: Path) -> str:
    """Run ``statements`` in a fresh interpreter that cannot import airender or torch, with ``folder`` (a
    contest export) first on sys.path and ``reconstruct`` imported from its Interface.py; returns stdout.
    ``loaded`` (a sorted list) names the airender and torch modules that got imported (none, if the folder
    is self-contained)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('airender', 'torch'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.path.insert(0, {str(folder)!r})\n"
            "from Interface import reconstruct\n"
            + statements.replace("loaded", "sorted(m for m in sys.modules if m.split('.')[0] in ('airender', 'torch'))"))
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
