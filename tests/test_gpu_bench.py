"""scripts/gpu_bench.py runs unattended: its quick sizes on the CPU write every part's figures and the table."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_bench.py"


def test_gpu_bench_quick_writes_every_part(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--quick", "--device", "cpu", "--presets", "hashgrid,basis",
                                      "--out", str(tmp_path / "bench")])
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as done:
        assert done.code == 0
    results = json.loads((tmp_path / "bench" / "gpu_bench.json").read_text())
    assert [(r["preset"], r["precision"], r["compile"]) for r in results["decode"]] == [
        ("hashgrid", "fp32", False), ("basis", "fp32", False)]  # no fp16 or compile rows off CUDA
    assert all(r["decode_ms"] > 0 and r["queries_per_s"] > 0 for r in results["decode"])
    fit = results["fit"]
    assert fit["tiles"] == 2 and fit["tiles_per_s"] > 0 and fit["level_tiles"] == 17408
    assert abs(fit["level_hours"] - 17408 / fit["tiles_per_s"] / 3600) < 1e-9
    assert results["atlas"]["decode_ms"] > 0 and results["atlas"]["texels"] == 512 ** 2
    table = (tmp_path / "bench" / "gpu_bench.md").read_text()
    assert "| hashgrid | fp32 | no |" in table and "a whole level (17,408 tiles)" in table
