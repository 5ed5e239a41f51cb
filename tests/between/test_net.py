"""The learned per-pixel blend weight between hours (airender/between/net.py, airender fit-between)."""
import json
import shutil

import numpy as np
import pytest
import torch

from airender.between.net import (BetweenNetConfig, BlendWeightNet, LearnedBlendDecoder, fit_between_net,
                                  fit_for_decoder, load_between_net, net_bytes, save_between_net,
                                  training_triplets)
from airender.errors import InputError
from tests.between.moving_floor import floor, to_png
from tests.conftest import run_cli

FIT_STEPS = 600


def without_timing(means: dict) -> dict:
    """eval's per-group means without the decode times (which differ from run to run)."""
    return {group: {k: v for k, v in values.items() if k != "decode_s_sum"} for group, values in means.items()}


@pytest.fixture(scope="module")
def fitted(moving_shadows):
    _, blend = moving_shadows
    config = BetweenNetConfig(steps=FIT_STEPS)
    return blend, fit_for_decoder(blend, config, report=lambda line: None), config


def test_triplets_are_stored_daylight_hours():
    config = BetweenNetConfig(day=(6.0, 10.0), gaps=(2, 3))
    triplets = training_triplets([float(h) for h in range(24)], config)
    assert (6.0, 7.0, 8.0) in triplets and (7.0, 8.0, 10.0) in triplets and (7.0, 9.0, 10.0) in triplets
    assert all(6 <= h0 < h < h2 <= 10 and h2 - h0 in (2, 3) for h0, h, h2 in triplets)
    # the context hours h0 - gap and h2 + gap must be stored: without 3 h, (6, 7, 9) has no earlier hour
    assert (6.0, 7.0, 9.0) not in training_triplets([float(h) for h in range(24) if h != 3], config)
    with pytest.raises(InputError, match="no three stored hours"):
        fit_between_net({6.0: torch.zeros(3, 8, 8), 7.0: torch.zeros(3, 8, 8)}, config)


def test_an_untrained_network_is_close_to_the_blend():
    net = BlendWeightNet(8)
    frames = torch.rand(4, 1, 3, 16, 24)
    with torch.no_grad():
        w = net(*frames, torch.tensor(0.3).view(1, 1, 1, 1))
    assert w.shape == (1, 1, 16, 24) and float((w - 0.3).abs().max()) < 0.1


def test_learned_weight_beats_the_blend_on_moving_shadows(fitted):
    blend, net, _ = fitted
    learned = LearnedBlendDecoder(blend, net, (6.0, 18.0))
    gains = []
    for t in (9.5, 12.25, 14.75):
        truth = torch.from_numpy(to_png(floor(t))).float() / 255
        error = lambda image: float(((image - truth) ** 2).mean())
        gains.append(10 * np.log10(error(blend.decode(t)) / error(learned.decode(t))))
    # dB above the blend of the two stored hours; measured 7.0, 2.9 and 6.6 dB: not every frame gains much,
    # none loses
    assert np.mean(gains) > 3.0 and min(gains) > -0.5, gains
    for t in (7.0, 5.9):  # a stored hour; lamps on at t but not at 6 h
        assert torch.equal(learned.decode(t), blend.decode(t))


def test_saved_network_decodes_the_same_and_bad_files_are_named(fitted, tmp_path):
    blend, net, config = fitted
    path = tmp_path / "between.pt"
    save_between_net(path, net, config, fitted_on="test")
    loaded, loaded_config = load_between_net(path)
    assert loaded_config == config and net_bytes(loaded) == net_bytes(net)
    first = LearnedBlendDecoder(blend, net).decode(9.5)
    again = LearnedBlendDecoder(blend, loaded).decode(9.5)
    assert float((first - again).abs().max()) < 2e-3  # float16 weights
    (tmp_path / "junk.pt").write_bytes(b"not a network")
    for bad in (tmp_path / "junk.pt", tmp_path / "missing.pt", tmp_path):
        with pytest.raises(InputError, match=str(bad)):
            load_between_net(bad)


def test_fit_between_command_and_learned_decode(moving_shadows, extra_frames, floor_run, tmp_path):
    folder, _ = moving_shadows
    run = tmp_path / "run"
    shutil.copytree(floor_run.parent, run)
    ckpt = str(run / "last.ckpt")
    missing = run_cli("eval", "--ckpt", ckpt, "--data_dir", str(folder), "--between", "learned",
                      "--out_dir", str(tmp_path / "ev0"))
    assert missing.returncode == 2 and "between.pt: no blend-weight network here" in missing.stderr
    assert not (tmp_path / "ev0").exists()
    fitted = run_cli("fit-between", "--ckpt", ckpt, "--steps", str(FIT_STEPS))
    assert fitted.returncode == 0, fitted.stderr
    assert "wrote" in fitted.stdout and (run / "between.pt").is_file()
    stamp = (run / "between.pt").stat().st_mtime_ns
    again = run_cli("fit-between", "--ckpt", ckpt, "--steps", "1")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert (run / "between.pt").stat().st_mtime_ns == stamp
    scores = {}
    for between in ("model", "learned", "auto"):
        evaluated = run_cli("eval", "--ckpt", ckpt, "--data_dir", str(folder), "--extra", str(extra_frames),
                            "--between", between, "--out_dir", str(tmp_path / f"ev_{between}"))
        assert evaluated.returncode == 0, evaluated.stderr
        scores[between] = json.loads((tmp_path / f"ev_{between}" / "metrics.json").read_text())["means"]
    assert scores["learned"]["between_day"]["psnr"] > scores["model"]["between_day"]["psnr"] + 0.5, scores
    assert scores["learned"]["hours"]["psnr"] == scores["model"]["hours"]["psnr"]
    # the run was trained without --between_steps: the default (auto) is the model's own decode, as before,
    # even with a network beside it
    assert without_timing(scores["auto"]) == without_timing(scores["model"])
    size = json.loads((tmp_path / "ev_learned" / "metrics.json").read_text())["size"]
    assert size["between_net_bytes"] == net_bytes(load_between_net(run / "between.pt")[0])
    rendered = run_cli("render", "--ckpt", ckpt, "--time", "9.5", "--between", "learned",
                       "--between_net", str(run / "between.pt"), "--out", str(tmp_path / "learned.png"))
    assert rendered.returncode == 0, rendered.stderr


def test_int8_weights_decode_as_stored(moving_shadows, tmp_path):
    _, blend = moving_shadows
    config = BetweenNetConfig(steps=5, store_dtype="int8")
    net = fit_for_decoder(blend, config, report=lambda line: None)
    save_between_net(tmp_path / "between.pt", net, config)
    loaded, loaded_config = load_between_net(tmp_path / "between.pt")
    assert loaded_config.store_dtype == "int8"
    # the fitted network already holds its stored (quantised) weights: what is evaluated is what is shipped
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    half = BlendWeightNet(config.channels)
    assert net_bytes(loaded) < 0.55 * net_bytes(half)
    payload = torch.load(tmp_path / "between.pt", weights_only=True)
    payload["config"]["store_dtype"] = "int4"
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(InputError, match="odd.pt: not a blend-weight network.*int4"):
        load_between_net(tmp_path / "odd.pt")


def test_train_fits_the_network_and_eval_uses_it(moving_shadows, extra_frames, tmp_path):
    """--between_steps (the quality preset's 1500, int8) fits between.pt after training; --between auto,
    the default, then decodes the daylight frames between hours with it and leaves the rest as they were."""
    from airender.presets import preset_config

    assert preset_config("quality").train.between_steps == 1500
    assert preset_config("quality").train.between_store_dtype == "int8"
    folder, _ = moving_shadows
    run = tmp_path / "run"
    trained = run_cli("train", "--preset", "hashgrid", "--data_dir", str(folder), "--max_steps", "150",
                      "--between_steps", "200", "--between_store_dtype", "int8", "--out_dir", str(run))
    assert trained.returncode == 0, trained.stderr
    assert "fit-between step 200/200" in trained.stdout and (run / "between.pt").is_file()
    assert load_between_net(run / "between.pt")[1].store_dtype == "int8"
    ckpt = str(run / "last.ckpt")
    metrics = {}
    for name, flags in (("auto", []), ("model", ["--between", "model"])):
        evaluated = run_cli("eval", "--ckpt", ckpt, "--data_dir", str(folder), "--extra", str(extra_frames),
                            "--out_dir", str(tmp_path / f"ev_{name}"), *flags)
        assert evaluated.returncode == 0, evaluated.stderr
        metrics[name] = json.loads((tmp_path / f"ev_{name}" / "metrics.json").read_text())
    auto, model = metrics["auto"], metrics["model"]
    assert auto["size"]["between_net_bytes"] == net_bytes(load_between_net(run / "between.pt")[0])
    assert "between_net_bytes" not in model["size"]
    assert without_timing(auto["means"])["hours"] == without_timing(model["means"])["hours"]
    assert auto["means"]["between_day"]["psnr"] != model["means"]["between_day"]["psnr"]

    # another size than the training size: the model's own frame, with a note saying why
    pictures = {}
    for name, flags in (("auto", []), ("model", ["--between", "model"])):
        out = tmp_path / f"small_{name}.png"
        rendered = run_cli("render", "--ckpt", ckpt, "--time", "9.5", "--width", "48", "--height", "20",
                           "--out", str(out), *flags)
        assert rendered.returncode == 0, rendered.stderr
        pictures[name] = (out.read_bytes(), rendered.stderr)
    assert pictures["auto"][0] == pictures["model"][0]
    assert "works at the training size" in pictures["auto"][1]

    # without its file the run decodes as the model, and says so
    (run / "between.pt").unlink()
    evaluated = run_cli("eval", "--ckpt", ckpt, "--data_dir", str(folder), "--extra", str(extra_frames),
                        "--out_dir", str(tmp_path / "ev_missing"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "between.pt is missing" in evaluated.stderr
    missing = json.loads((tmp_path / "ev_missing" / "metrics.json").read_text())["means"]
    assert without_timing(missing) == without_timing(model["means"])


def test_train_refuses_a_bad_network_option_before_training(tmp_path):
    from tests.conftest import make_png_folder

    make_png_folder(tmp_path / "hours", [float(h) for h in range(24)])
    for flag, value, problem in (("--between_channels", "0", "must be positive"),
                                 ("--between_steps", "-5", "must be zero or positive")):
        run = tmp_path / f"run{flag}"
        trained = run_cli("train", "--preset", "hashgrid", "--data_dir", str(tmp_path / "hours"), "--max_steps",
                          "5", "--between_steps", "5", flag, value, "--out_dir", str(run))
        assert trained.returncode == 2 and f"{flag}: {problem}" in trained.stderr, trained.stderr
        assert trained.stderr.count("\n") == 1 and not run.exists()


def test_train_without_daylight_hours_to_learn_from_keeps_its_run(tmp_path):
    """Hours 6 h apart hold no triplet to fit the network on: the run is kept, with a note, and decodes
    its own frames between hours."""
    from tests.conftest import make_png_folder

    make_png_folder(tmp_path / "hours", [0.0, 6.0, 12.0, 18.0])
    run = tmp_path / "run"
    trained = run_cli("train", "--preset", "hashgrid", "--data_dir", str(tmp_path / "hours"), "--max_steps", "5",
                      "--between_steps", "5", "--out_dir", str(run))
    assert trained.returncode == 0, trained.stderr
    assert "note: no blend-weight network for this run: fit-between: no three stored hours" in trained.stdout
    assert (run / "last.ckpt").is_file() and not (run / "between.pt").exists()
