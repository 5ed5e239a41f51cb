"""``airender bench --runtimes``: one run times the same fields in torch, the numpy pack runtime (fp32, int8)
and onnxruntime, with the ratio to the quality preset; the default prints what it always printed."""
from __future__ import annotations

import argparse
import json
import re

import pytest

from airender.bench import add_bench_arguments, cmd_bench
from airender.errors import InputError

SMALL = ["--parts", "decode", "--width", "48", "--height", "24", "--repeats", "1"]


def bench_main(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="airender bench")
    add_bench_arguments(parser)
    args = parser.parse_args(list(argv))
    return cmd_bench(args)


def test_runtimes_table(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'airender[export]')")
    out = tmp_path / "bench.json"
    assert bench_main(*SMALL, "--preset", "basis", "--runtimes", "torch,numpy,onnx", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "(c) whole-frame decode 48x24" in text and "(d) runtimes" in text
    rows = json.loads(out.read_text())["runtimes"]
    assert [(r["label"], r["runtime"]) for r in rows] == [
        (label, runtime) for label in ("basis", "quality")
        for runtime in ("torch", "numpy fp32", "numpy int8", "onnxruntime")]
    for r in rows:
        assert r["decode_ms"] > 0 and r["queries_per_s"] > 0 and r["nbytes"] > 0
        line = re.search(rf"^\s+{r['label']}\s+{r['runtime']}\s+(\S+)\s+(\S+)", text, re.M)
        assert line is not None, (r, text)
        if r["label"] == "quality":
            assert line.group(2) == "1.000"
    packs = {r["runtime"]: r["nbytes"] for r in rows if r["label"] == "basis"}
    assert packs["numpy int8"] < packs["numpy fp32"]


def test_default_is_torch_only(capsys):
    assert bench_main(*SMALL, "--preset", "hashgrid") == 0
    text = capsys.readouterr().out
    assert "(c) whole-frame decode" in text and "(d)" not in text and "numpy" not in text


@pytest.mark.parametrize("argv, message", [
    (("--runtimes", "torch,tensorflow"), "--runtimes torch,tensorflow: choose from"),
    (("--runtimes", ""), "choose from"),
    (("--runtimes", "numpy", "--parts", "train"), "add decode to --parts"),
])
def test_runtimes_bad_input(argv, message):
    with pytest.raises(InputError, match=message):
        bench_main(*SMALL, *argv)
