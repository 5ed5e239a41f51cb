"""The feature x runtime matrix: every kind of model that ``train`` makes, through every runtime, against the
torch decode that ``airender render`` writes (frames at trained hours and between them).

Rows are the presets and the flags that change the model's parts (light switch, sun term, light sources,
residual sources, sources with a sun term); columns are the runtimes. A cell passes when the runtime's
frames equal the torch frames within the column's tolerance, or is a refusal with one clear line. The
refusals are listed in ``GAPS``: the test fails when a cell refuses that is not listed there, and when a
listed cell no longer refuses (so the list, and the table in docs/RESULTS.md that ``MATRIX_TABLE`` prints,
stay true).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import airender.runtime
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.export.pack import write_pack
from airender.export.web import field_program
from airender.models.checkpoint import load_checkpoint
from airender.presets import apply_overrides, preset_config
from airender.render import FrameDecoder
from tests.export.conftest import QUICK, SWITCH, psnr

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'airender[export]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'airender[export]')")

from airender.export.onnx_export import write_onnx  # noqa: E402
from airender.runtime.onnx_decoder import OnnxDecoder  # noqa: E402
from tests.test_components import write_split_dataset  # noqa: E402

# name: (preset, field overrides, data): "ldr" the PNG folder of the export tests, "split" lighting split by source
ROWS: dict[str, tuple[str, dict, str]] = {
    "baseline": ("baseline", {}, "ldr"),
    "encoder": ("encoder", {}, "ldr"),
    "film": ("film", {}, "ldr"),
    "hashgrid": ("hashgrid", {}, "ldr"),
    "quality": ("quality", {}, "ldr"),
    "basis": ("basis", {}, "ldr"),
    "sun": ("sun", {}, "ldr"),
    "quality --light_switch": ("quality", SWITCH, "ldr"),
    "hashgrid --components": ("hashgrid", {"components": True}, "split"),
    "baseline --components (residual)": ("baseline", {"components": True}, "split"),
    "sun --components": ("sun", {"components": True}, "split"),
}
COLUMNS = ("pack fp32 + numpy", "pack int8 + numpy", "ONNX", "GLSL / WGSL viewer")
# (row, column): the start of the one-line refusal
GAPS = {
    ("sun", "GLSL / WGSL viewer"): "the shaders do not decode a sun term",
    ("hashgrid --components", "GLSL / WGSL viewer"): "the shaders do not decode fields of several light sources",
    ("baseline --components (residual)", "GLSL / WGSL viewer"):
        "the shaders do not decode fields of several light sources",
    ("sun --components", "GLSL / WGSL viewer"): "the shaders do not decode fields of several light sources",
}
HOURS = (0.0, 5.9, 7.5, 12.0, 13.25, 18.1, 20.5)  # trained hours and times between them
# a column's bound: PSNR in dB of its frames against the torch frames, over the display range of the frame
BOUNDS = {"pack fp32 + numpy": 80.0, "pack int8 + numpy": 34.0, "ONNX": 60.0}


@pytest.fixture(scope="module")
def row_checkpoints(export_data, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matrix")
    split = write_split_dataset(root / "split")
    data = {"ldr": export_data["ldr"], "split": split}
    out = {}
    for name, (preset, field, kind) in ROWS.items():
        overrides = dict(field)
        if overrides.get("components") and preset == "sun":
            overrides["residual_mode"] = False
        config = apply_overrides(apply_overrides(preset_config(preset), QUICK), {"field": overrides})
        config.train.between_steps = 0
        config.data.data_dir, config.out_dir = str(data[kind]), str(root / f"run{len(out)}")
        Trainer(config, load_sequence(data[kind], components=bool(overrides.get("components")))).fit()
        out[name] = Path(config.out_dir) / "best.ckpt"
    return out


def _peak(frames: list[np.ndarray]) -> float:
    return max(1.0, max(float(f.max()) for f in frames))


def _cell(column: str, field, folder: Path) -> dict[float, np.ndarray]:
    """The column's frames (display values [H, W, 3]) of ``field`` at HOURS; raises the runtime's refusal."""
    if column.startswith("pack"):
        path = folder / "model.airpack"
        write_pack(field, path, column.split()[1])
        model = airender.runtime.load(path)
        return {h: model.decode(h) for h in HOURS}
    if column == "ONNX":
        frame_path, _ = write_onnx(field, folder / "model.onnx")
        decoder = OnnxDecoder(frame_path, threads=1)
        return {h: decoder.decode(h) for h in HOURS}
    field_program(field, "fp32")  # the viewer's shader program: refuses what the shaders cannot decode
    return {}


def test_feature_runtime_matrix(row_checkpoints, tmp_path):
    table, problems = {}, []
    for row, ckpt in row_checkpoints.items():
        field = load_checkpoint(ckpt).field
        decoder = FrameDecoder(field)
        torch_frames = {h: decoder.decode(h).numpy() for h in HOURS}
        peak = _peak(list(torch_frames.values()))
        for column in COLUMNS:
            folder = tmp_path / f"{len(table)}"
            folder.mkdir()
            try:
                frames = _cell(column, field, folder)
            except InputError as refusal:
                message = str(refusal)
                table[row, column] = "refuses"
                expected = GAPS.get((row, column))
                if expected is None or not message.startswith(expected) or "\n" in message:
                    problems.append(f"{row} / {column}: refuses: {message}")
                continue
            if (row, column) in GAPS:
                problems.append(f"{row} / {column}: listed as a gap but decodes; update GAPS and docs/RESULTS.md")
            if not frames:  # the viewer column: its pixels are checked by test_web / test_web_quant
                table[row, column] = "decodes"
                continue
            worst = min(psnr(frames[h], torch_frames[h], peak) for h in HOURS)
            table[row, column] = f"{min(worst, 99.0):.0f} dB"
            if worst < BOUNDS[column]:
                problems.append(f"{row} / {column}: {worst:.1f} dB < {BOUNDS[column]} dB against torch")
    print(matrix_table(table))
    if os.environ.get("AIRENDER_MATRIX_OUT"):
        Path(os.environ["AIRENDER_MATRIX_OUT"]).write_text(matrix_table(table) + "\n")
    assert not problems, "\n".join(problems)


def matrix_table(table: dict[tuple[str, str], str]) -> str:
    """The matrix as a Markdown table (worst PSNR against torch over HOURS; 99 = equal to float precision)."""
    rows = list(dict.fromkeys(row for row, _ in table))
    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += ["| " + row + " | " + " | ".join(table.get((row, c), "-") for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)
