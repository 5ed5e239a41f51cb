"""Frames between the hours with the shadows moved (airender/between/motion.py).

A synthetic floor whose shadows move linearly in time (a post's square shadow that translates, a
building's straight front that sweeps) is stored at whole hours only; between two hours the shadow must
appear once, where it is at that time, not as the blend's two half-dark copies.
"""
import json

import numpy as np
import pytest
import torch

from airender.anchors import NeighbourBlend
from airender.between.motion import CANDIDATES, ShadowMotionDecoder, block_flow
from airender.data import load_sequence
from airender.data.sequence import linear_to_srgb, srgb_to_linear
from tests.between.moving_floor import HEIGHT, SPEED, SQUARE, WIDTH, floor, texture, to_png
from tests.conftest import run_cli, write_png


def crossings(row: np.ndarray, level: float) -> list[float]:
    """Sub-pixel x (pixel centres at k + 0.5) of every place where ``row`` crosses ``level``."""
    ks = np.nonzero((row[:-1] - level) * (row[1:] - level) < 0)[0]
    return [k + 0.5 + (level - row[k]) / (row[k + 1] - row[k]) for k in ks]


def test_block_flow_finds_a_translation():
    rng = np.random.default_rng(0)
    s0 = torch.from_numpy(rng.random((32, 48))).float()
    s1 = torch.roll(s0, shifts=(2, -5), dims=(0, 1))  # s1(p + (2, -5)) = s0(p)
    flow = block_flow(s0, s1, radius=8)
    inner = flow[:, 8:-8, 8:-8]
    assert (inner[0] == 2).all() and (inner[1] == -5).all()


@pytest.mark.parametrize("t", [9.5, 12.25, 14.75])
def test_shadows_move_to_where_they_are_at_t(moving_shadows, t):
    _, blend = moving_shadows
    motion = ShadowMotionDecoder(blend)
    truth = torch.from_numpy(to_png(floor(t))).float() / 255
    moved, blended = motion.decode(t), blend.decode(t)
    albedo = texture()
    front, post = 10 + SPEED * (t - 6), 20 + SPEED * (t - 6)
    for rows, edges in ((slice(24, 36), [front]), (slice(6, 6 + SQUARE), [post, post + SQUARE])):
        lit_fraction = lambda image: (srgb_to_linear(image[rows].mean(-1)).numpy() / albedo[rows]).mean(0)
        low, high = lit_fraction(truth).min(), lit_fraction(truth).max()
        got = crossings(lit_fraction(moved), 0.5 * (low + high))
        assert len(got) == len(edges) and np.allclose(got, edges, atol=1.0), (t, got, edges)
        # the edges are sharp, as in the truth; the blend has a half-dark band where each edge moved in the hour
        half_dark = lambda image: int((np.abs((lit_fraction(image) - low) / (high - low) - 0.5) < 0.4).sum())
        assert half_dark(truth) <= len(edges) and half_dark(moved) <= 2 * len(edges)
        assert half_dark(blended) >= len(edges) * (SPEED - 1)
    error = lambda image: float(((image - truth) ** 2).mean())
    assert 10 * np.log10(error(blended) / error(moved)) > 6.0  # dB better than the blend on the whole frame


def test_nothing_changes_where_nothing_moves(tmp_path):
    """Frames that only brighten and darken (no shadow moves): the motion decode is the blend in linear light."""
    for hour in range(24):
        gain = 0.3 + 0.6 * np.sin(np.pi * hour / 24)
        write_png(tmp_path / f"tod_{hour}.png", to_png(gain * floor(0, square=False, front=False)))
    blend = NeighbourBlend(load_sequence(tmp_path))
    motion = ShadowMotionDecoder(blend)
    for t in (3.5, 11.25):
        before, after = blend.decode(int(t)), blend.decode(int(t) + 1)
        s = t - int(t)
        linear = (1 - s) * srgb_to_linear(before) + s * srgb_to_linear(after)
        assert torch.allclose(motion.decode(t), linear_to_srgb(linear), atol=1e-5)
        weights, choice = motion.weights_and_choice(int(t), int(t) + 1, s)
        assert torch.all(weights == s)
        assert set(choice.unique().tolist()) <= set(range(len(CANDIDATES)))


def test_hours_and_light_switches_are_the_wrapped_decoders_frames(moving_shadows):
    _, blend = moving_shadows
    motion = ShadowMotionDecoder(blend, switch_hours=(6.0, 18.0))
    for t in (0.0, 7.0, 23.0):
        assert torch.equal(motion.decode(t), blend.decode(t))
    for t in (5.9, 18.1, 2.5, 19.5):  # next to the light switch, and at night: no sun moves
        assert torch.equal(motion.decode(t), blend.decode(t))
    assert not torch.allclose(motion.decode(9.5), blend.decode(9.5), atol=1e-3)


def test_compare_offers_motion_and_learned(moving_shadows, extra_frames, tmp_path):
    folder, _ = moving_shadows
    out = tmp_path / "cmp"
    methods = ["blend", "motion", "learned", "hashgrid+motion", "hashgrid+learned"]
    result = run_cli("compare", "--data", str(folder), "--extra", str(extra_frames), "--out", str(out),
                     "--methods", ",".join(methods), "--decode_repeats", "0", "--budget", "smoke")
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip() for line in (out / "results.md").read_text().splitlines()
            if line.startswith("|")}
    assert set(methods) <= rows
    runs = {name: json.loads((out / name / "result.json").read_text()) for name in methods}
    assert runs["motion"]["row"]["psnr_between_day"] > runs["blend"]["row"]["psnr_between_day"] + 6.0
    for name in ("hashgrid+motion", "hashgrid+learned"):
        assert runs[name]["spec"]["preset"] == "hashgrid" and runs[name]["spec"]["between"] == name.split("+")[1]
    from airender.between.net import load_between_net, net_bytes

    net, _ = load_between_net(out / "learned" / "between.pt")  # fitted on the stored frames (10 smoke steps)
    assert runs["learned"]["row"]["bytes"] == runs["blend"]["row"]["bytes"] + net_bytes(net)
    assert (out / "hashgrid+learned" / "between.pt").is_file()
    for wrong in ("blend+motion", "pca8+learned"):
        refused = run_cli("compare", "--data", str(folder), "--out", str(tmp_path / "no"), "--methods", wrong)
        assert refused.returncode == 2 and f"unknown method {wrong!r}" in refused.stderr


def test_eval_and_render_of_a_trained_field(moving_shadows, extra_frames, floor_run, tmp_path):
    """A field trained on the hours: ``--between motion`` scores its frames between hours above its own
    decode, and render writes what the decoder computes."""
    from PIL import Image

    from airender.models.checkpoint import load_checkpoint
    from airender.render import FrameDecoder

    folder, _ = moving_shadows
    ckpt = str(floor_run)
    scores = {}
    for between in ("model", "motion"):
        evaluated = run_cli("eval", "--ckpt", ckpt, "--data_dir", str(folder), "--extra", str(extra_frames),
                            "--between", between, "--out_dir", str(tmp_path / f"ev_{between}"))
        assert evaluated.returncode == 0, evaluated.stderr
        metrics = json.loads((tmp_path / f"ev_{between}" / "metrics.json").read_text())
        scores[between] = metrics["means"]["between_day"]["psnr"]
    assert scores["motion"] > scores["model"] + 0.5, scores  # measured: 28.4 -> 29.3 dB
    field = load_checkpoint(ckpt, "cpu").field
    wanted = {"model": FrameDecoder(field).decode(9.5),
              "motion": ShadowMotionDecoder(FrameDecoder(field), (6.0, 18.0)).decode(9.5)}
    assert (wanted["model"] - wanted["motion"]).abs().max() * 255 > 10  # so the files tell the two apart
    for between, frame in wanted.items():
        rendered = run_cli("render", "--ckpt", ckpt, "--time", "9.5", "--between", between,
                           "--out", str(tmp_path / f"{between}.png"))
        assert rendered.returncode == 0, rendered.stderr
        written = np.asarray(Image.open(tmp_path / f"{between}.png"), np.float32)
        assert np.abs(written - frame.numpy() * 255).max() <= 0.51
    refused = run_cli("render", "--ckpt", ckpt, "--time", "9.5", "--between", "motion", "--width", str(2 * WIDTH),
                      "--height", str(2 * HEIGHT), "--out", str(tmp_path / "big.png"))
    assert refused.returncode == 2 and f"training size {WIDTH}x{HEIGHT} only" in refused.stderr
    assert not (tmp_path / "big.png").exists()
