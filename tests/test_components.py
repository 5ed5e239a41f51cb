"""Training on the lighting split by source (--components): data path, gates, decode, CLI, eval; and the
path without the option left as it was."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import airender.runtime
from airender.assembly import build_field
from airender.cli import main
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.data.readers import read_image
from airender.data.samplers import PatchSampler, PixelSampler
from airender.data.sequence import SOURCES
from airender.data.virtual_texture import SOURCE_COMPONENTS, VTLightmap, write_virtual_texture
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.export.pack import write_pack
from airender.models.checkpoint import load_checkpoint
from airender.nn.sources import SourceGate
from airender.render import FrameDecoder, frame_pixels
from airender.sizes import model_bytes
from tests.conftest import make_png_folder

HOURS = tuple(float(h) for h in range(1, 25))
NIGHT = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 0.0)  # the sun is 0 (6 and 18 too)
DAY = tuple(float(h) for h in range(6, 19))  # the lamps are 0


def split_lighting(hours, height=16, width=24, seed=0):
    """Procedural sun (a shadow edge moving with the hour, 0 for t <= 6 and t >= 18), lamps (two coloured
    blobs, on for t < 6 and t > 18) and sky (never 0), float32 linear; Original is their sum."""
    rng = np.random.default_rng(seed)
    albedo = rng.uniform(0.2, 0.9, (height, width, 3)).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    lamp = np.zeros((height, width, 3), np.float32)
    for cy, cx, colour in ((4, 5, (1.0, 0.8, 0.5)), (11, 17, (0.9, 0.9, 1.0))):
        blob = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 6.0)
        lamp += 5.0 * blob[..., None] * np.asarray(colour, np.float32)
    d, l, s = [], [], []
    for t in hours:
        t = t % 24.0
        day = max(0.0, math.sin(math.pi * (t - 6.0) / 12.0)) if 6.0 < t < 18.0 else 0.0
        lit = (xs >= width * (t - 6.0) / 12.0).astype(np.float32)[..., None]
        d.append(3.0 * day * lit * albedo)
        s.append((0.02 + 0.3 * day) * albedo)
        l.append(lamp * albedo if (t < 6.0 or t > 18.0) else np.zeros_like(lamp))
    d, l, s = (np.stack(v).astype(np.float32) for v in (d, l, s))
    mask = np.ones((height, width), bool)
    mask[:, 0] = False
    return {"original": (d + l + s).astype(np.float32), "directional": d, "local": l, "sky": s}, mask


def write_split_dataset(out: Path, hours=HOURS, sources: bool = True) -> Path:
    comps, mask = split_lighting(hours)
    if not sources:
        comps = {"original": comps["original"]}
    write_virtual_texture(out, [VTLightmap(1, list(hours), comps, mask, parts=2)])
    return out


def tiny_config(out_dir: Path, data_dir: Path, **overrides) -> ExperimentConfig:
    config = ExperimentConfig(out_dir=str(out_dir))
    config.data.data_dir = str(data_dir)
    config.field.hidden, config.field.layers = 16, 2
    config.train.epochs, config.train.samples_per_epoch, config.train.batch_size = 2, 1024, 256
    config.train.progress = False
    for key, value in overrides.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


@pytest.fixture(scope="module")
def split_vt(tmp_path_factory) -> Path:
    return write_split_dataset(tmp_path_factory.mktemp("split") / "vt", HOURS + (7.5, 20.5))


@pytest.fixture(scope="module")
def trained(split_vt, tmp_path_factory):
    """{residual_mode: Trainer} of tiny --components models (7.5 and 20.5 held out)."""
    out = {}
    for residual in (False, True):
        config = tiny_config(tmp_path_factory.mktemp("run"), split_vt, field__components=True,
                             field__residual_mode=residual, data__holdout_hours=[7.5, 20.5])
        trainer = Trainer(config, load_sequence(split_vt))
        trainer.fit()
        trainer.field.eval()
        out[residual] = trainer
    return out


# --- the path without the option ------------------------------------------------------------------------
# Final weights and decode of a tiny run (tiny_config on write_split_dataset(HOURS), all light only), measured
# with the code before --components existed: sum of |every state-dict value| and sum of the frame at 7.5 h.
BEFORE_COMPONENTS = {"default": (695.3181900312265, 1126.8261300419108),
                     "hash_switch": (259.4433095533486, 129.44010094180703)}
HASH_SWITCH = dict(field__encoding="hashgrid", field__residual_mode=False, field__light_switch=[6.0, 18.0],
                   field__film=True, field__activation="relu", field__grid_levels=4, field__grid_log2_size=8)


@pytest.mark.parametrize("variant", sorted(BEFORE_COMPONENTS))
def test_flag_off_training_is_unchanged(tmp_path, variant):
    data = write_split_dataset(tmp_path / "vt")
    overrides = HASH_SWITCH if variant == "hash_switch" else {}
    runs = {}
    for with_sources in (False, True):  # source data present but unused must change nothing
        config = tiny_config(tmp_path / f"run{with_sources}", data, **overrides)
        trainer = Trainer(config, load_sequence(data, components=with_sources))
        trainer.fit()
        runs[with_sources] = (trainer.field.state_dict(), FrameDecoder(trainer.field.eval()).decode(7.5))
    (state, frame), (state_src, frame_src) = runs[False], runs[True]
    assert list(state) == list(state_src) and all(torch.equal(state[k], state_src[k]) for k in state)
    assert torch.equal(frame, frame_src)
    assert not any("source" in k for k in state)
    weights = float(sum(v.double().abs().sum() for v in state.values()))
    expected_weights, expected_frame = BEFORE_COMPONENTS[variant]
    assert weights == pytest.approx(expected_weights, rel=1e-5)
    assert float(frame.double().sum()) == pytest.approx(expected_frame, rel=1e-5)


def test_flag_off_field_ignores_source_description(trained):
    desc = trained[False].desc
    assert desc.sources == list(SOURCES)
    off = dataclasses.replace(trained[False].config.field, components=False)
    plain = dataclasses.replace(desc, sources=[], source_off_hours={})
    torch.manual_seed(0)
    with_desc = build_field(off, desc)
    torch.manual_seed(0)
    without = build_field(off, plain)
    assert with_desc.sources == () and not hasattr(with_desc.head, "gate") and with_desc.mlp.out_dim == 3
    a, b = with_desc.state_dict(), without.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert model_bytes(with_desc) == model_bytes(without)


# --- data path ------------------------------------------------------------------------------------------
def test_source_order_matches_the_layout():
    assert SOURCES == SOURCE_COMPONENTS == ("directional", "local", "sky")


def test_load_with_components(split_vt):
    plain = load_sequence(split_vt)
    seq = load_sequence(split_vt, components=True)
    assert plain.components is None and torch.equal(seq.frames, plain.frames)
    assert seq.components.shape == (26, 16, 24, 3, 3) and seq.components.dtype == torch.float32
    comps, _ = split_lighting(sorted(HOURS + (7.5, 20.5), key=lambda h: h % 24))
    for s, name in enumerate(SOURCES):
        assert np.array_equal(seq.components[:, :, :, s].numpy(), comps[name])
    held = seq.select([0, 3])
    assert torch.equal(held.components, seq.components[[0, 3]])
    dark = seq.dark_sources()
    hours = seq.time_list()
    assert [h for h, d in zip(hours, dark[:, 0].tolist()) if d] == sorted(h % 24 for h in NIGHT + (20.5,))
    assert [h for h, d in zip(hours, dark[:, 1].tolist()) if d] == sorted(DAY + (7.5,))
    assert not bool(dark[:, 2].any())


def test_sources_not_adding_up_are_refused(tmp_path):
    comps, mask = split_lighting(HOURS)
    comps["sky"][5, 3, 4, 1] += 0.5
    write_virtual_texture(tmp_path / "bad", [VTLightmap(1, list(HOURS), comps, mask)])
    with pytest.raises(InputError, match="do not add up .* hour 6, y 3, x 4"):
        load_sequence(tmp_path / "bad", components=True)


def test_samplers_gather_sources_by_the_frame_index():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 6, 8, 3, generator=g)
    components = torch.rand(4, 6, 8, 3, 3, generator=g)
    times = torch.tensor([0.0, 6.0, 12.0, 18.0])
    sampler = PixelSampler(frames, times, torch.arange(48), torch.tensor([0, 2, 3]), components=components)
    batch = sampler.sample(300, torch.Generator().manual_seed(1))
    y, x = batch.pix // 8, batch.pix % 8
    assert torch.equal(batch.target, frames[batch.frame_index, y, x])
    assert torch.equal(batch.components, components[batch.frame_index, y, x])
    plain = PixelSampler(frames, times, torch.arange(48), torch.tensor([0, 2, 3])).sample(
        300, torch.Generator().manual_seed(1))
    assert plain.components is None and torch.equal(plain.pix, batch.pix)  # the same draws
    patches = PatchSampler(frames, times, None, torch.tensor([1]), 3, components=components)
    pbatch = patches.sample(5, torch.Generator().manual_seed(2))
    y, x = pbatch.pix // 8, pbatch.pix % 8
    assert torch.equal(pbatch.components, components[pbatch.frame_index, y, x])
    with pytest.raises(ValueError, match="do not match"):
        PixelSampler(frames, times, torch.arange(48), torch.tensor([0]), components=components[:, :5])


# --- gates ----------------------------------------------------------------------------------------------
def test_gate_reproduces_the_light_switch_and_the_night():
    hours = [float(h) for h in range(24)]
    lamps_off = [h for h in hours if 6 <= h <= 18]
    sun_off = [h for h in hours if h <= 5 or h >= 20]
    gate = SourceGate(hours, [sun_off, lamps_off])
    t = torch.arange(0, 24 * 20 + 1, dtype=torch.float32) / 20  # 0 .. 24 every 0.05 h
    on = gate(t)
    wrapped = t % 24
    assert torch.equal(on[:, 1], ((wrapped < 6) | (wrapped > 18)).float())  # the contest's light switch
    assert torch.equal(on[:, 0], ((wrapped > 5) & (wrapped < 20)).float())
    assert torch.equal(gate(t + 24), on)


def test_gates_give_exact_zeros(trained, tmp_path):
    for residual, trainer in trained.items():
        field = trainer.field
        off = trainer.desc.source_off_hours
        assert off["directional"] == sorted(h % 24 for h in NIGHT) and off["local"] == list(DAY) and off["sky"] == []
        trainer.save_checkpoint(tmp_path / f"{residual}.ckpt", with_train_state=False)
        loaded = load_checkpoint(tmp_path / f"{residual}.ckpt").field  # the gate travels in the checkpoint
        for model in (field, loaded):
            decoder = FrameDecoder(model)
            for hour in (2.0, 2.5, 23.5, 18.0, 0.0):
                assert torch.equal(decoder.decode_source(hour, "directional"), torch.zeros(16, 24, 3)), hour
            for hour in (12.0, 12.5, 6.0, 7.5, 18.0):
                assert torch.equal(decoder.decode_source(hour, "local"), torch.zeros(16, 24, 3)), hour
            # on between two trained hours unless off at both (the sun is 0 at 5, 6, 18 and 19 here)
            gate = model.head.gate(torch.tensor([12.0, 18.5, 20.5, 5.9, 6.5, 6.0]))
            assert gate.tolist() == [[1, 0, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1], [1, 0, 1], [0, 0, 1]]


def test_sources_sum_to_the_decode(trained):
    for trainer in trained.values():
        field = trainer.field
        decoder = FrameDecoder(field)
        pix, uv = frame_pixels(16, 24)
        for hour in (3.0, 7.5, 12.0, 18.1, 20.5):
            sources = [decoder.decode_source(hour, name) for name in field.sources]
            assert all(bool((s >= 0).all()) for s in sources)
            total = decoder.decode(hour)
            assert torch.allclose(sum(sources), total, rtol=1e-5, atol=1e-6)
            assert torch.equal(decoder.decode_source(hour, "original"), total)
            with torch.no_grad():  # the training forward gives the same frame
                train_path = field.transform.to_display(field(uv, torch.full((pix.numel(),), hour), pix))
            assert torch.allclose(train_path.reshape(16, 24, 3), total, rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="no light source"):
            decoder.decode_source(3.0, "moon")


def test_components_ship_in_a_pack(trained, tmp_path):
    """A --components field goes through a pack into the numpy runtime: all light, each source and single
    texels equal the torch decode (fp32), at trained hours, between them and across the switches."""
    for residual, trainer in trained.items():
        field = trainer.field
        decoder = FrameDecoder(field)
        for quant, atol in (("fp32", 2e-4), ("int8", 0.05)):
            path = tmp_path / f"c{residual}{quant}.airpack"
            write_pack(field, path, quant)
            model = airender.runtime.load(path)
            assert model.source_names == field.sources and model.header["model"]["residual"] == residual
            for hour in (3.0, 6.0, 7.5, 12.0, 18.1, 20.5):
                expected = decoder.decode(hour).numpy()
                assert np.abs(model.decode(hour) - expected).max() <= atol * max(1.0, float(expected.max())), hour
                sources = model.decode_sources(hour)
                for s, name in enumerate(field.sources):
                    want = decoder.decode_source(hour, name).numpy()
                    assert np.abs(sources[:, :, s] - want).max() <= atol * max(1.0, float(want.max())), (hour, name)
                    assert np.array_equal(model.decode_source(hour, name), sources[:, :, s])
            y, x = np.array([0, 5, 15]), np.array([1, 23, 7])
            t = np.array([20.5, 12.0, 7.5], np.float32)
            frames = [model.decode(float(h)) for h in t]
            assert np.allclose(model.query(y, x, t), np.stack([f[yy, xx] for f, yy, xx in zip(frames, y, x)]),
                               atol=1e-5)
        with pytest.raises(ValueError, match="no light source 'moon'"):
            model.decode_source(12.0, "moon")


def test_every_source_is_supervised(trained):
    trainer = trained[True]
    batch = trainer.next_batch()
    terms = trainer.field.get_loss_dict(batch, trainer.loss, 0)
    assert set(terms) == {"mse", "mse_directional", "mse_local", "mse_sky"}
    assert all(bool(v > 0) for v in terms.values())
    # each source term is the weighted MSE of that source against its target, and it has a gradient
    parts: dict = {}
    trainer.field(batch.uv, batch.t, batch.pix, parts)
    expected = ((parts["sources"][:, 0] - batch.components[:, 0]) ** 2).mean()
    assert torch.allclose(terms["mse_directional"], trainer.config.loss.loss_source_w * expected)
    trainer.field.zero_grad(set_to_none=True)  # the last training step's gradients
    terms["mse_local"].backward()
    assert trainer.field.mlp.output_layer.weight.grad[3:6].abs().sum() > 0  # the lamps' outputs
    assert trainer.field.mlp.output_layer.weight.grad[:3].abs().sum() == 0  # not the sun's
    trainer.field.zero_grad(set_to_none=True)


def test_residual_components_keep_one_baseline_per_source(trained):
    field = trained[True].field
    assert field.baseline is None and field.source_baseline.shape == (16, 24, 3, 3)
    sequence = load_sequence(trained[True].config.data.data_dir, components=True)
    expected = field.transform.to_train(sequence.components[sequence.time_list().index(12.0)])
    assert torch.equal(field.source_baseline, expected)
    assert trained[False].field.source_baseline is None


# --- bad input ------------------------------------------------------------------------------------------
def test_components_without_source_folders_is_one_line(tmp_path, capsys):
    write_split_dataset(tmp_path / "original_only", sources=False)
    make_png_folder(tmp_path / "png", [0, 6, 12, 18])
    for data in ("original_only", "png"):
        out = tmp_path / f"run_{data}"
        code = main(["train", "--data_dir", str(tmp_path / data), "--components", "--out_dir", str(out),
                     "--epochs", "1", "--samples_per_epoch", "256", "--batch_size", "256"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert "--components" in err and "source" in err
        assert not out.exists()


@pytest.mark.parametrize("flags, message", [(["--light_switch", "6", "18"], "--light_switch: not with --components"),
                                            (["--component", "sky"], "--component sky:")])
def test_components_refuse_contradictions(split_vt, tmp_path, capsys, flags, message):
    code = main(["train", "--data_dir", str(split_vt), "--components", *flags, "--out_dir", str(tmp_path / "r"),
                 "--epochs", "1", "--samples_per_epoch", "256", "--batch_size", "256"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


# --- command line ---------------------------------------------------------------------------------------
def test_cli_train_eval_render(split_vt, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data_dir", str(split_vt), "--components", "--residual_mode", "False",
                 "--hidden", "16", "--layers", "2", "--epochs", "1", "--samples_per_epoch", "2048",
                 "--batch_size", "512", "--holdout_hours", "7.5", "20.5", "--out_dir", str(run),
                 "--progress", "False"]) == 0
    ckpt = run / "best.ckpt"
    assert load_checkpoint(ckpt).desc.sources == list(SOURCES)
    assert main(["eval", "--ckpt", str(ckpt), "--data_dir", str(split_vt), "--protocol", "hprc-vt-masked",
                 "--device", "cpu", "--out_dir", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    means = metrics["means"]
    for group in ("hours", "between_day", "between_night", "between"):
        assert math.isfinite(means[group]["psnr"])
        for source in SOURCES:
            assert f"{group}/{source}" in means, group
    for source in SOURCES:
        assert math.isfinite(means[f"hours/{source}"]["psnr"]) and "ssim" in means[f"hours/{source}"]
    # the sun at night and the lamps by day have no score, and decode to exactly 0
    assert means["hours/directional"]["dark_frames"] == len(NIGHT) and means["hours/directional"]["dark_max_abs"] == 0
    assert means["hours/local"]["dark_frames"] == len(DAY) and means["hours/local"]["dark_max_abs"] == 0
    assert "dark_frames" not in means["hours/sky"]
    assert means["between_night/directional"]["dark_frames"] == 1  # 20.5 h
    rows = [r for r in metrics["rows"] if r["group"] == "hours/local"]
    assert len(rows) == 24 and all("decode_s" in r for r in metrics["rows"])
    assert "<group>/<source>" in (tmp_path / "eval" / "metrics.md").read_text()
    # the per-source scores are those of the decoded source against its reference
    from airender.protocols import masked_vt_frame

    field = load_checkpoint(ckpt).field
    truth = load_sequence(split_vt, components=True)
    k = truth.time_list().index(12.0)
    score = masked_vt_frame(FrameDecoder(field).decode_source(12.0, "sky"), truth.components[k, :, :, 2], truth.mask)
    row = next(r for r in metrics["rows"] if r["group"] == "hours/sky" and r["time"] == 12.0)
    assert row["psnr"] == pytest.approx(score["psnr"], rel=1e-6)

    out = tmp_path / "sun_night.exr"
    assert main(["render", "--ckpt", str(ckpt), "--time", "2.5", "--component", "directional", "--out", str(out),
                 "--device", "cpu"]) == 0
    image, is_hdr = read_image(out)
    assert is_hdr and image.shape == (16, 24, 3) and not image.any()
    out = tmp_path / "lamps.exr"
    assert main(["render", "--ckpt", str(ckpt), "--time", "22", "--component", "local", "--out", str(out),
                 "--device", "cpu"]) == 0
    image, _ = read_image(out)
    expected = FrameDecoder(field).decode_source(22.0, "local").numpy()
    assert np.allclose(image, expected, rtol=1e-3, atol=1e-4)


def test_render_component_needs_a_components_model(split_vt, tmp_path, capsys):
    config = tiny_config(tmp_path / "run", split_vt)
    config.train.epochs = 1
    trainer = Trainer(config, load_sequence(split_vt))
    trainer.save_checkpoint(tmp_path / "plain.ckpt", with_train_state=False)
    code = main(["render", "--ckpt", str(tmp_path / "plain.ckpt"), "--time", "3", "--component", "sky",
                 "--out", str(tmp_path / "x.exr"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--component sky" in err and "--components" in err
    assert not (tmp_path / "x.exr").exists()
