"""Shared fixtures. Real data come from ../shared (beside the checkout; override with AIRENDER_SHARED)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AIRENDER_SHARED", REPO.parent / "shared"))
COURTYARD = SHARED / "data" / "courtyard"
LPIPS_WEIGHTS = SHARED / "weights" / "lpips_alex_v0.1.pth"

torch.set_num_threads(min(2, torch.get_num_threads()))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (real data live in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def courtyard() -> Path:
    return need(COURTYARD)


@pytest.fixture(scope="session")
def lpips_weights() -> Path:
    return need(LPIPS_WEIGHTS)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m airender.cli ARGS`` (or a script path) in a subprocess; returns the completed process."""
    command = [sys.executable, *args] if args and args[0].endswith(".py") else \
        [sys.executable, "-m", "airender.cli", *args]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command, cwd=cwd or REPO, capture_output=True, text=True, env=full_env, timeout=600)


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_png_folder(folder: Path, hours: list[float], height: int = 6, width: int = 8, seed: int = 0) -> dict:
    """Tiny LDR dataset: each frame a distinct random image; returns {hour: uint8 array}."""
    rng = np.random.default_rng(seed)
    frames = {}
    for hour in hours:
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        write_png(folder / f"tod_{hour:g}.png", array)
        frames[hour] = array
    return frames


def make_contest_dataset(root: Path, keys: list[str], lightmaps: list[tuple[str, int, int, int]],
                         data_subdir: bool = True, seed: int = 0) -> dict:
    """Tiny contest-layout dataset. lightmaps: (level, id, width, height). Returns {(level, id): {key: array}}
    and writes masks with the left column invalid (-1)."""
    rng = np.random.default_rng(seed)
    data_dir = root / "Data" if data_subdir else root
    data_dir.mkdir(parents=True, exist_ok=True)
    entries, arrays = [], {}
    for level, ident, width, height in lightmaps:
        files, masks, values = {}, {}, {}
        mask = np.full((height, width), 127, dtype=np.int8)
        mask[:, 0] = -1
        for key in keys:
            data = (rng.random((height, width, 3)) * 5.0).astype(np.float32)
            name = f"lightmapRawData_{level}_TOD_{key}_{width}_{height}.bin_0"
            data.tofile(data_dir / name)
            mask_name = f"lightmapCoverage_{level}_TOD_{key}_{width}_{height}.bin_0"
            mask.tofile(data_dir / mask_name)
            files[key], masks[key], values[key] = name, mask_name, data
        entries.append({"id": ident, "level": level, "resolution": {"width": width, "height": height},
                        "lightmaps": files, "masks": masks})
        arrays[(level, ident)] = values
    (root / "config.json").write_text(json.dumps({"lightmap_count": len(entries), "lightmap_list": entries}))
    return arrays
