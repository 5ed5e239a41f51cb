"""The feature x runtime matrix: every kind of model that ``train`` makes, through every runtime, against the
torch decode that ``airender render`` writes (frames at trained hours and between them).

Rows are the presets and the flags that change the model's parts (light switch, sun term, light sources,
residual sources, sources with a sun term, the network between the hours); columns are the runtimes. A cell
passes when the runtime's frames equal the torch frames within the column's tolerance, or is a refusal with
one clear line. The refusals are listed in ``GAPS``: the test fails when a cell refuses that is not listed
there, and when a listed cell no longer refuses (so the list, and the table in docs/RESULTS.md that
:func:`matrix_table` prints, stay true). The contest interface takes HDR lightmaps only: LDR rows have no
cell there ("-").
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import airender.runtime
from airender.between import between_frames
from airender.between.cli import fit_after_training, run_network
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.export.contest import write_contest
from airender.export.contest.Interface import ContestDecoder
from airender.export.pack import write_pack
from airender.export.web import field_program
from airender.models import load_model
from airender.presets import apply_overrides, preset_config
from airender.render import FrameDecoder
from tests.conftest import make_contest_dataset
from tests.export.conftest import QUICK, SWITCH, psnr

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'airender[export]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'airender[export]')")

from airender.export.onnx_export import write_onnx  # noqa: E402
from airender.runtime.onnx_decoder import OnnxDecoder  # noqa: E402
from tests.test_components import write_split_dataset  # noqa: E402

# name: (preset, field overrides, data): "ldr" the PNG folder of the export tests, "split" lighting split by source,
# "hdr24" an HDR lightmap of the contest layout at every hour (enough daylight hours to fit the network between
# the hours, which rows named "... + network between the hours" fit and ship)
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
    "hashgrid + network between the hours": ("hashgrid", {}, "hdr24"),
}
COLUMNS = ("pack fp32 + numpy", "pack int8 + numpy", "ONNX", "contest reconstruct", "GLSL / WGSL viewer")
BETWEEN_STEPS = 20
# (row, column): the start of the one-line refusal
GAPS: dict[tuple[str, str], str] = {}
HOURS = (0.0, 5.9, 7.5, 12.0, 13.25, 18.1, 20.5)  # trained hours and times between them
# a column's bound: PSNR in dB of its frames against the torch frames, over the display range of the frame
BOUNDS = {"pack fp32 + numpy": 80.0, "pack int8 + numpy": 34.0, "ONNX": 60.0, "contest reconstruct": 80.0}


@pytest.fixture(scope="module")
def row_checkpoints(export_data, tmp_path_factory) -> dict[str, tuple[Path, Path | None]]:
    """{row: (its checkpoint, the dataset a contest export reads, None for LDR data)}."""
    root = tmp_path_factory.mktemp("matrix")
    split = write_split_dataset(root / "split")
    make_contest_dataset(root / "hdr24", [str(h * 100) for h in range(24)], [("0", 1, 48, 40)])
    data = {"ldr": export_data["ldr"], "split": split, "hdr24": root / "hdr24"}
    out = {}
    for name, (preset, field, kind) in ROWS.items():
        overrides = dict(field)
        if overrides.get("components") and preset == "sun":
            overrides["residual_mode"] = False
        config = apply_overrides(apply_overrides(preset_config(preset), QUICK), {"field": overrides})
        config.train.between_steps = BETWEEN_STEPS if "network between" in name else 0
        config.data.data_dir, config.out_dir = str(data[kind]), str(root / f"run{len(out)}")
        Trainer(config, load_sequence(data[kind], components=bool(overrides.get("components")))).fit()
        if config.train.between_steps:
            assert fit_after_training(config, config.out_dir) is not None
        out[name] = (Path(config.out_dir) / "last.ckpt", None if kind == "ldr" else data[kind])
    return out


def _peak(frames: list[np.ndarray]) -> float:
    return max(1.0, max(float(f.max()) for f in frames))


def _cell(column: str, ckpt: Path, dataset: Path | None, folder: Path) -> dict[float, np.ndarray] | None:
    """The column's frames (display values [H, W, 3]) of the checkpoint at HOURS, as ``airender export`` writes
    them (the run's network between the hours included); raises the runtime's refusal; None: no such cell."""
    loaded = load_model(ckpt, "cpu")
    field, between = loaded.field, run_network(ckpt, loaded.config)
    if column.startswith("pack"):
        path = folder / "model.airpack"
        write_pack(field, path, column.split()[1], between)
        model = airender.runtime.load(path)
        return {h: model.decode(h) for h in HOURS}
    if column == "ONNX":
        decoder = OnnxDecoder(write_onnx(field, folder / "model.onnx", between)[0], threads=1)
        return {h: decoder.decode(h) for h in HOURS}
    if column == "contest reconstruct":
        if dataset is None:
            return None
        write_contest([str(ckpt)], dataset, folder / "contest")
        decoder = ContestDecoder(folder / "contest")
        lightmap = decoder.lightmaps[0]
        ys, xs = np.meshgrid(np.arange(lightmap["height"]), np.arange(lightmap["width"]), indexing="ij")
        frames = {}
        for h in HOURS:
            coords = np.stack([ys.ravel(), xs.ravel(), np.full(ys.size, h)], axis=1).astype(np.float32)
            frames[h] = decoder.reconstruct(None, lightmap["id"], coords).reshape(*ys.shape, 3)
        return frames
    # the viewer's shader program (with the passes of the network between the hours): refuses what the shaders
    # cannot decode; its pixels are checked by test_web, test_web_quant and test_web_between
    field_program(field, "fp32", between)
    return {}


def render_frames(ckpt: Path) -> dict[float, np.ndarray]:
    """What ``airender render --between auto`` writes at HOURS: the torch field, with daylight frames between the
    hours blended by the run's network when it fitted one."""
    loaded = load_model(ckpt, "cpu")
    decoder, between = FrameDecoder(loaded.field), run_network(ckpt, loaded.config)
    if between is not None:
        decoder = between_frames(decoder, "learned", between[1], between[0])
    return {h: decoder.decode(h).numpy() for h in HOURS}


def test_feature_runtime_matrix(row_checkpoints, tmp_path):
    table, problems = {}, []
    for row, (ckpt, dataset) in row_checkpoints.items():
        torch_frames = render_frames(ckpt)
        peak = _peak(list(torch_frames.values()))
        for k, column in enumerate(COLUMNS):
            folder = tmp_path / f"{len(table)}_{k}"
            folder.mkdir()
            try:
                frames = _cell(column, ckpt, dataset, folder)
            except InputError as refusal:
                message = str(refusal)
                table[row, column] = "refuses"
                expected = GAPS.get((row, column))
                if expected is None or not message.startswith(expected) or "\n" in message:
                    problems.append(f"{row} / {column}: refuses: {message}")
                continue
            if frames is None:
                continue
            if (row, column) in GAPS:
                problems.append(f"{row} / {column}: listed as a gap but decodes; update GAPS and docs/RESULTS.md")
            if not frames:  # the viewer column: its pixels are checked by test_web, _quant and _between
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
