"""A user's first hour: runs are never lost, resume needs only the run, every bad input is one line
(exit 2, nothing written), help shows each default once (a preset's with --preset), plain progress lines
in a log file, sortable frame names."""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from airender.cli import build_parser, main
from airender.models.checkpoint import read_checkpoint
from tests.conftest import make_contest_dataset, make_png_folder, run_cli

TINY = ["--hidden", "16", "--layers", "2", "--samples_per_epoch", "1024", "--batch_size", "256",
        "--progress", "False"]


@pytest.fixture()
def data_dir(tmp_path):
    make_png_folder(tmp_path / "data", [0, 3, 6, 9, 12, 15, 18, 21], height=24, width=32)
    return tmp_path / "data"


@pytest.fixture()
def trained(tmp_path, data_dir):
    run = tmp_path / "run"
    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(run), "--epochs", "2", *TINY]) == 0
    return run


def one_error_line(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    return err[0]


# --- runs are never lost --------------------------------------------------------------------------------
def test_existing_run_is_not_overwritten_without_overwrite(tmp_path, data_dir, trained, capsys):
    (trained / "eval").mkdir()
    before = (trained / "best.ckpt").read_bytes()
    code = main(["train", "--data_dir", str(data_dir), "--out_dir", str(trained), "--epochs", "1", *TINY])
    assert code == 2
    one_error_line(capsys, str(trained), "already holds a run", "--overwrite", f"{trained}-2")
    assert (trained / "best.ckpt").read_bytes() == before and (trained / "eval").is_dir()

    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(trained), "--epochs", "1", "--overwrite",
                 *TINY]) == 0
    assert not (trained / "eval").exists()  # the old run's evaluation went with it
    assert read_checkpoint(trained / "last.ckpt")["config"]["train"]["epochs"] == 1


def test_demo_picks_a_free_folder(tmp_path, monkeypatch):
    from airender.engine.run_folder import free_name

    (tmp_path / "runs" / "demo").mkdir(parents=True)
    assert free_name(tmp_path / "runs" / "demo") == tmp_path / "runs" / "demo"
    (tmp_path / "runs" / "demo" / "best.ckpt").write_bytes(b"x")
    (tmp_path / "runs" / "demo-2").mkdir()
    (tmp_path / "runs" / "demo-2" / "last.ckpt").write_bytes(b"x")
    assert free_name(tmp_path / "runs" / "demo") == tmp_path / "runs" / "demo-3"


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_resume_run_alone_continues_to_a_larger_max_steps(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    # 8 epochs x 4 steps planned; the budget stops it at 12 steps.
    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(run), "--epochs", "8", "--max_steps", "12",
                 "--val_every", "1", *TINY]) == 0
    first = _log(run)
    assert first[-1]["step"] == 12
    capsys.readouterr()
    # Only the run and the new budget: every other option comes from the checkpoint.
    assert main(["train", "--resume", str(run), "--max_steps", "24"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "at step 12 of 24" in out
    log = _log(run)
    steps = [line["step"] for line in log]
    assert steps == sorted(set(steps)) and steps[-1] == 24
    ckpt = read_checkpoint(run / "last.ckpt")
    assert ckpt["train_state"]["step"] == 24 and ckpt["config"]["train"]["max_steps"] == 24
    assert ckpt["config"]["field"]["hidden"] == 16  # the stored options, not the defaults
    assert log[-1]["val/psnr"] >= first[-1]["val/psnr"] - 0.05
    # The schedule continues over the new plan: the learning rate keeps falling after the resume.
    lrs = [line["lr"] for line in log]
    assert lrs[-1] < log[len(first)]["lr"]


def test_time_budget_stops_with_a_note_and_resume_finishes(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(run), "--epochs", "400",
                 "--time_budget_s", "0.5", *TINY]) == 0
    out = capsys.readouterr().out
    assert "training ended at step" in out and "of 1600 planned" in out and "--time_budget_s 0.5" in out
    assert f"airender train --resume {run}" in out
    stopped = read_checkpoint(run / "last.ckpt")["train_state"]["step"]
    assert 0 < stopped < 1600
    # The same budget again trains another half second (the budget is per invocation), not one step.
    assert main(["train", "--resume", str(run)]) == 0
    again = read_checkpoint(run / "last.ckpt")["train_state"]["step"]
    assert again > stopped + 1


def test_resume_refuses_other_options_naming_them(tmp_path, trained, capsys):
    assert main(["train", "--resume", str(trained), "--hidden", "8", "--lr", "0.01"]) == 2
    one_error_line(capsys, "--hidden (16 -> 8)", "--lr (0.0005 -> 0.01)")
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    one_error_line(capsys, "nowhere", "no checkpoint to resume from")


def test_kill_leaves_no_log_line_past_the_checkpoint(tmp_path, trained):
    """A kill between an epoch's log line and its checkpoint leaves one line too many; resume drops it."""
    log = trained / "train_log.jsonl"
    last_step = read_checkpoint(trained / "last.ckpt")["train_state"]["step"]
    assert _log(trained)[-1]["step"] == last_step
    with open(log, "a") as f:
        f.write(json.dumps({"epoch": 99, "step": last_step + 4}) + "\n")
    assert main(["train", "--resume", str(trained), "--epochs", "3"]) == 0
    steps = [line["step"] for line in _log(trained)]
    assert steps == sorted(set(steps)) and steps[-1] == read_checkpoint(trained / "last.ckpt")["train_state"]["step"]


def test_field_without_baseline_needs_no_baseline_hour(tmp_path):
    make_png_folder(tmp_path / "odd", [1, 5, 9, 13, 17, 21], height=24, width=32)
    run = tmp_path / "hg"
    assert main(["train", "--data_dir", str(tmp_path / "odd"), "--preset", "hashgrid", "--out_dir", str(run),
                 "--max_steps", "3", "--progress", "False"]) == 0
    assert (run / "last.ckpt").is_file()
    assert main(["train", "--data_dir", str(tmp_path / "odd"), "--preset", "baseline", "--out_dir",
                 str(tmp_path / "b"), "--max_steps", "3", "--progress", "False"]) == 2


# --- every bad input: one line, exit 2, nothing written -----------------------------------------------
def _bad_contest(tmp_path: Path) -> Path:
    make_contest_dataset(tmp_path / "c", ["0", "1200"], [("lv", 0, 8, 6)])
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    config["lightmap_list"] = {"0": config["lightmap_list"][0]}
    (tmp_path / "c" / "config.json").write_text(json.dumps(config))
    return tmp_path / "c"


BAD_TRAIN = {
    "lr nan": (["--lr", "nan"], "--lr: must be a finite number"),
    "lr negative": (["--lr", "-1"], "--lr: must be zero or positive"),
    "hidden 0": (["--hidden", "0"], "--hidden: must be positive"),
    "baseline hour 99": (["--baseline_time", "99"], "--baseline_time: must be a time of day in [0, 24]"),
    "val hour 30": (["--val_hours", "30"], "--val_hours: must be a time of day in [0, 24]"),
    "holdout inf": (["--holdout_hours", "inf"], "--holdout_hours: must be a finite number"),
    "switch 30": (["--light_switch", "6", "30"], "--light_switch: must be a time of day"),
    "budget negative": (["--time_budget_s", "-1"], "--time_budget_s: must be zero or positive"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_training_values(case, tmp_path, data_dir, capsys):
    flags, message = BAD_TRAIN[case]
    out = tmp_path / "out"
    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(out), *TINY, *flags]) == 2
    one_error_line(capsys, message)
    assert not out.exists()


def test_bad_contest_config_and_parent_that_is_a_file(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    assert main(["train", "--data_dir", str(_bad_contest(tmp_path)), "--out_dir", str(out), *TINY]) == 2
    one_error_line(capsys, "config.json", "lightmap_list must be a list")
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(tmp_path / "file" / "run"), *TINY]) == 2
    one_error_line(capsys, "is a regular file")


BAD_RENDER = {
    "time nan": (["--time", "nan"], "--time: must be a finite time of day"),
    "time inf": (["--time", "inf"], "--time: must be a finite time of day"),
    "time 30": (["--time", "30"], "--time: must be a time of day in [0, 24], got 30"),
    "time -3": (["--time", "-3"], "--time: must be a time of day in [0, 24], got -3"),
    "huge": (["--time", "3", "--width", "100000", "--height", "100000"], "too large"),
    "negative size": (["--time", "3", "--width", "-5", "--height", "90"], "must be positive, got -5x90"),
    "one side": (["--time", "3", "--width", "50"], "give both, or neither"),
}


@pytest.mark.parametrize("case", sorted(BAD_RENDER))
def test_bad_render_values(case, tmp_path, trained, capsys):
    flags, message = BAD_RENDER[case]
    out = tmp_path / "r" / "f.png"
    assert main(["render", "--ckpt", str(trained / "best.ckpt"), "--out", str(out), *flags]) == 2
    one_error_line(capsys, message)
    assert not out.parent.exists()


def test_render_destinations_and_files(tmp_path, trained, capsys):
    ckpt = str(trained / "best.ckpt")
    (tmp_path / "file").write_text("x")
    assert main(["render", "--ckpt", ckpt, "--time", "3", "--out", str(tmp_path / "file" / "f.png")]) == 2
    one_error_line(capsys, "is a regular file")
    assert main(["render-all", "--ckpt", ckpt, "--out_dir", str(tmp_path / "file" / "all")]) == 2
    one_error_line(capsys, "is a regular file")
    assert main(["render-all", "--ckpt", ckpt, "--out_dir", str(tmp_path / "all"), "--step", "nan"]) == 2
    one_error_line(capsys, "--step: must be a positive number")
    assert main(["render-all", "--ckpt", ckpt, "--out_dir", str(tmp_path / "all"), "--end_hour", "25"]) == 2
    one_error_line(capsys, "--end_hour: must be a time of day")
    assert not (tmp_path / "all").exists()
    # A file that is not a checkpoint gets our message, not PyTorch's.
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert main(["render", "--ckpt", str(tmp_path / "notes.ckpt"), "--time", "3", "--out",
                 str(tmp_path / "x.png")]) == 2
    line = one_error_line(capsys, "notes.ckpt", "not a readable airender checkpoint")
    assert "weights_only" not in line and "Weights only" not in line


def test_lpips_weights_path_errors(tmp_path, trained, data_dir, capsys):
    base = ["eval", "--ckpt", str(trained / "best.ckpt"), "--data_dir", str(data_dir),
            "--out_dir", str(tmp_path / "ev")]
    assert main([*base, "--lpips_weights", str(tmp_path / "typo.pth")]) == 2
    one_error_line(capsys, "typo.pth", "does not exist")
    (tmp_path / "bad.pth").write_text("no weights here")
    assert main([*base, "--lpips_weights", str(tmp_path / "bad.pth")]) == 2
    line = one_error_line(capsys, "bad.pth", "not a readable LPIPS weight file")
    assert "Weights only" not in line
    assert not (tmp_path / "ev").exists()


def _tmpfs(path: Path, size: str):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here ({result.stderr.decode().strip()})")


def test_full_disk_is_named(tmp_path, data_dir, trained, capsys):
    disk = tmp_path / "small"
    _tmpfs(disk, "32k")  # room for the config and previews, not for the checkpoints
    try:
        assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(disk / "run"), "--epochs", "1",
                     *TINY]) == 2
        one_error_line(capsys, str(disk / "run"), "no space left on the device")
        assert not list((disk / "run").glob(".*tmp*"))  # no half-written file left
        for ckpt in (disk / "run").glob("*.ckpt"):  # whatever was written whole is readable
            read_checkpoint(ckpt)
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=1k", "count=200"], capture_output=True)
        assert main(["render", "--ckpt", str(trained / "best.ckpt"), "--time", "3", "--out",
                     str(disk / "f.png")]) == 2
        one_error_line(capsys, "f.png", "no space left on the device")
        assert not (disk / "f.png").exists()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# --- what a person reads --------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_argument_has_help_and_one_default():
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            assert action.help.count("(default:") <= 1, f"{name} {action.option_strings}: {action.help}"


def test_preset_help_shows_the_preset_defaults():
    plain = run_cli("train", "--help").stdout
    hashgrid = run_cli("train", "--preset", "hashgrid", "--help").stdout
    assert "peak learning rate (default: 0.0005)" in " ".join(plain.split())
    assert "peak learning rate (default: 0.005)" in " ".join(hashgrid.split())
    assert "--encoding {fourier,hashgrid}" in hashgrid and "(default: hashgrid)" in " ".join(hashgrid.split())


def test_subcommand_errors_print_its_short_usage():
    result = run_cli("render", "--ckpt", "x", "--time", "3", "--out", "x.png", "--bogus")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) <= 3
    assert lines[0].startswith("usage: airender render ") and "unrecognized arguments: --bogus" in lines[-1]
    result = run_cli("train", "--lr", "abc")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 2 and lines[0].startswith("usage: airender train ")


def test_same_path_flags_everywhere_with_old_spellings():
    for name, sub in _subparsers(build_parser()).items():
        options = {o for a in sub._actions for o in a.option_strings}
        assert "--data" not in options or "--data_dir" in options, name
        assert "--output_dir" not in options or "--out_dir" in options, name


def test_progress_in_a_log_file_is_plain_lines(tmp_path, data_dir):
    result = run_cli("train", "--data_dir", str(data_dir), "--out_dir", str(tmp_path / "run"), "--epochs", "2",
                     *TINY[:-2])
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "\r" not in text
    assert "data: " in result.stdout and "8 training frames of 32x24 LDR" in result.stdout
    assert "model: " in result.stdout and "training: 8 steps of 256 texels" in result.stdout
    assert "train step 8/8 (100 %)" in result.stdout
    validation = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(validation) == 2 and all(line.count("psnr") == 1 for line in validation)


def test_render_all_names_sort_by_time(tmp_path, trained):
    assert main(["render-all", "--ckpt", str(trained / "best.ckpt"), "--out_dir", str(tmp_path / "all"),
                 "--start_hour", "4.5", "--end_hour", "11", "--step", "1.5", "--gif", ""]) == 0
    names = sorted(p.name for p in (tmp_path / "all").glob("*.png"))
    assert names == ["tod_04.50.png", "tod_06.00.png", "tod_07.50.png", "tod_09.00.png", "tod_10.50.png"]
    from airender.data import hour_from_name

    assert [hour_from_name(n) for n in names] == [4.5, 6.0, 7.5, 9.0, 10.5]
