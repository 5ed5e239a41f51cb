"""The run's network between the hours ships with its model: a pack (the numpy runtime), ONNX and the contest
folder decode the frames between the hours that ``airender render --between auto`` decodes."""
from __future__ import annotations

import json

import numpy as np
import pytest

import airender.runtime
from airender.between import between_frames
from airender.between.cli import run_network
from airender.export.contest.Interface import ContestDecoder
from airender.models import load_model
from airender.render import FrameDecoder
from airender.runtime.onnx_decoder import OnnxDecoder
from tests.conftest import make_contest_dataset, run_cli

DAY_BETWEEN = (9.5, 10.25, 13.75)  # blended per pixel by the network
OWN = (3.5, 5.9, 9.0, 18.1, 21.25)  # the model's own frames: night, next to a switch, a stored hour


@pytest.fixture(scope="module")
def run(moving_shadows, tmp_path_factory):
    folder, _ = moving_shadows
    run = tmp_path_factory.mktemp("shipped") / "run"
    trained = run_cli("train", "--preset", "hashgrid", "--data_dir", str(folder), "--max_steps", "60",
                      "--between_steps", "30", "--between_store_dtype", "int8", "--out_dir", str(run))
    assert trained.returncode == 0, trained.stderr
    return run / "last.ckpt"


def render_frames(ckpt) -> dict[float, np.ndarray]:
    """What airender render --between auto decodes (the torch field, blended by the run's network)."""
    loaded = load_model(ckpt, "cpu")
    net, switch_hours = run_network(ckpt, loaded.config)
    decoder = between_frames(FrameDecoder(loaded.field), "learned", switch_hours, net)
    return {t: decoder.decode(t).numpy() for t in DAY_BETWEEN + OWN}, FrameDecoder(loaded.field)


def test_pack_and_onnx_decode_the_frames_render_decodes(run, tmp_path):
    expected, own = render_frames(run)
    assert run_cli("export", "--ckpt", str(run), "--out", str(tmp_path / "m.airpack")).returncode == 0
    assert run_cli("export", "--ckpt", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")).returncode == 0
    assert (tmp_path / "m.between.onnx").is_file()
    model = airender.runtime.load(tmp_path / "m.airpack")
    onnx = OnnxDecoder(tmp_path / "m.onnx", threads=1)
    assert isinstance(model, airender.runtime.BetweenHours) and model.between["switch_hours"] == [6.0, 18.0]
    for t, frame in expected.items():
        assert np.abs(model.decode(t) - frame).max() <= 2e-4, t
        assert np.abs(onnx.decode(t) - frame).max() <= 2e-3, t
        if t in DAY_BETWEEN:  # the network moved something: not the field's own frame
            assert np.abs(frame - own.decode(t).numpy()).max() > 1e-3, t
        else:
            assert np.abs(model.decode(t) - own.decode(t).numpy()).max() <= 2e-4, t
    # single texels equal the frame, between the hours too
    y, x = np.array([0, 17, 39, 20]), np.array([0, 50, 95, 3])
    t = np.array([9.5, 9.5, 3.5, 13.75], np.float32)
    frames = {float(h): model.decode(float(h)) for h in np.unique(t)}
    assert np.abs(model.query(y, x, t) - np.stack([frames[float(h)][i, j] for i, j, h in zip(y, x, t)])).max() <= 1e-5
    # another size: the field's own frame (the network works at the training size)
    assert np.allclose(model.decode(9.5, 48, 20), FrameDecoder(load_model(run, "cpu").field, 20, 48).decode(9.5).numpy(),
                       atol=2e-4)
    # --between model leaves it out
    assert run_cli("export", "--ckpt", str(run), "--between", "model", "--out", str(tmp_path / "own.airpack")
                   ).returncode == 0
    plain = airender.runtime.load(tmp_path / "own.airpack")
    assert not isinstance(plain, airender.runtime.BetweenHours)
    assert (tmp_path / "own.airpack").stat().st_size < (tmp_path / "m.airpack").stat().st_size


def test_contest_folder_decodes_between_the_hours(tmp_path):
    """An HDR run with the network, exported as a contest folder: reconstruct at daylight times between the
    hours equals the pack's numpy decode, single texel by single texel."""
    hours = list(range(24))
    make_contest_dataset(tmp_path / "data", [str(h * 100) for h in hours], [("0", 1, 40, 24)])
    run = tmp_path / "run"
    trained = run_cli("train", "--preset", "hashgrid", "--data_dir", str(tmp_path / "data"), "--max_steps", "40",
                      "--between_steps", "20", "--out_dir", str(run))
    assert trained.returncode == 0, trained.stderr
    assert (run / "between.pt").is_file()
    out = tmp_path / "contest"
    exported = run_cli("export", "--ckpt", str(run / "last.ckpt"), "--format", "contest", "--data_dir",
                       str(tmp_path / "data"), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    entry = json.loads((out / "lightmaps.json").read_text())["lightmaps"][0]
    model = airender.runtime.load(out / entry["pack"])
    assert isinstance(model, airender.runtime.BetweenHours)
    decoder = ContestDecoder(out)
    ys, xs = np.meshgrid(np.arange(24), np.arange(40), indexing="ij")
    for t in (10.5, 14.25, 3.0):
        coords = np.stack([ys.ravel(), xs.ravel(), np.full(ys.size, t)], axis=1).astype(np.float32)
        got = decoder.reconstruct(None, 1, coords).reshape(24, 40, 3)
        assert np.abs(got - model.decode(t)).max() <= 1e-4 * max(1.0, float(np.abs(got).max())), t
