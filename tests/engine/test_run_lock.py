"""Two commands never write one run folder at once: `airender train` (one field or tiled) holds the
folder's lock while it writes, a second one is refused with one line, and a lock file left by a killed
process does not block the next run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from airender.cli import main
from airender.engine.run_folder import LOCK_FILE, run_lock
from airender.errors import InputError
from tests.conftest import make_png_folder

TINY = ["--hidden", "16", "--layers", "2", "--samples_per_epoch", "1024", "--batch_size", "256",
        "--progress", "False", "--epochs", "1"]


@pytest.fixture()
def data_dir(tmp_path):
    make_png_folder(tmp_path / "data", [0, 6, 12, 18], height=16, width=16)
    return tmp_path / "data"


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("tiled", [[], ["--preset", "hashgrid", "--tile_size", "8", "--max_steps", "2"]],
                         ids=["field", "tiled"])
def test_second_writer_is_refused_and_the_lock_goes_with_the_run(tiled, data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data_dir", str(data_dir), "--out_dir", str(run), *TINY, *tiled]
    with run_lock(run):
        assert main(argv) == 2
        line = error_line(capsys)
        assert str(run) in line and "another airender command is writing this run" in line
        assert not (run / "last.ckpt").exists() and not (run / "config.json").exists()
    assert not (run / LOCK_FILE).exists()
    assert main(argv) == 0
    assert (run / "last.ckpt").is_file()
    assert not (run / LOCK_FILE).exists()


def test_lock_is_exclusive_and_released(tmp_path):
    with run_lock(tmp_path / "r"):
        assert (tmp_path / "r" / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(InputError, match="another airender command"):
            with run_lock(tmp_path / "r"):
                pass
    with run_lock(tmp_path / "r"):  # released: taken again
        pass


def test_lock_of_a_killed_process_does_not_block(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from airender.engine.run_folder import run_lock\n"
        f"with run_lock(Path({str(run)!r})):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(run), *TINY]) == 2
        assert "another airender command" in error_line(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / LOCK_FILE).exists()  # left behind by kill -9 ...
    assert main(["train", "--data_dir", str(data_dir), "--out_dir", str(run), *TINY]) == 0  # ... and harmless
    assert (run / "last.ckpt").is_file() and not (run / LOCK_FILE).exists()
