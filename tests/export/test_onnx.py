"""ONNX export: the frame and prepare graphs on onnxruntime decode like the torch field."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'airender[export]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'airender[export]')")

import onnx  # noqa: E402

from airender.models.checkpoint import load_checkpoint  # noqa: E402
from airender.export.onnx_export import prepare_path, write_onnx  # noqa: E402
from airender.render import FrameDecoder  # noqa: E402
from airender.runtime.onnx_decoder import OnnxDecoder  # noqa: E402
from tests.export.conftest import HEIGHT, VARIANTS, WIDTH  # noqa: E402
from tests.export.test_pack_runtime import export_main  # noqa: E402

HOURS = [0.0, 5.9, 12.0, 13.25, 18.1, 22.5]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_onnx_decodes_like_torch(name, trained, tmp_path):
    field = load_checkpoint(trained(name)).field
    frame_path, prepare = write_onnx(field, tmp_path / "scene.onnx")
    assert prepare == tmp_path / "scene.prepare.onnx" and prepare.is_file()
    decoder = OnnxDecoder(frame_path, threads=1)
    native, other = FrameDecoder(field), FrameDecoder(field, 23, 61)
    for hour in HOURS:
        got = decoder.decode(hour)
        assert got.shape == (HEIGHT, WIDTH, 3) and got.dtype == np.float32
        assert np.abs(got - native.decode(hour).numpy()).max() <= 1e-3, (name, hour)
        resized = decoder.decode(hour, width=61, height=23)
        assert np.abs(resized - other.decode(hour).numpy()).max() <= 1e-3, (name, hour)


def test_graph_interface(trained, tmp_path):
    field = load_checkpoint(trained("quality_switch")).field
    frame_path, prepare = write_onnx(field, tmp_path / "q.onnx")
    frame = onnx.load(str(frame_path))
    meta = json.loads({p.key: p.value for p in frame.metadata_props}["airender"])
    assert meta["prepare"] == "q.prepare.onnx" and (meta["height"], meta["width"]) == (HEIGHT, WIDTH)
    assert [i.name for i in frame.graph.input] == ["first", "hour", "lamp"] == meta["frame_inputs"]
    assert [o.name for o in frame.graph.output] == ["rgb"]
    # the per-frame graph holds no hash-grid table: those live only in the prepare graph
    largest = max(int(np.prod(t.dims)) for t in frame.graph.initializer)
    assert largest < field.xy_encoding.table.numel()
    assert [o.name for o in onnx.load(str(prepare)).graph.output] == ["first", "lamp"]
    assert prepare_path(tmp_path / "a.b.onnx").name == "a.b.prepare.onnx"


def test_export_command_onnx(trained, tmp_path):
    out = tmp_path / "out" / "model.onnx"
    assert export_main("--ckpt", str(trained("hashgrid")), "--format", "onnx", "--out", str(out)) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.prepare.onnx"]
    assert OnnxDecoder(out).decode(7.0).shape == (HEIGHT, WIDTH, 3)
