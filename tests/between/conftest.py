"""Fixtures of the between-hours tests: the moving floor (tests/between/moving_floor.py) stored at whole
hours, held-out frames between them, and one field trained on it."""
import pytest

from airender.anchors import NeighbourBlend
from airender.data import load_sequence
from tests.between.moving_floor import floor, to_png
from tests.conftest import run_cli, write_png


@pytest.fixture(scope="session")
def moving_shadows(tmp_path_factory):
    """Hourly frames 0..23 of the floor, stored exactly (8-bit), and the store-every-frame anchor."""
    folder = tmp_path_factory.mktemp("moving")
    for hour in range(24):
        write_png(folder / f"tod_{hour}.png", to_png(floor(hour)))
    return folder, NeighbourBlend(load_sequence(folder))


@pytest.fixture(scope="session")
def extra_frames(tmp_path_factory):
    """Held-out daylight frames between the hours of the floor."""
    folder = tmp_path_factory.mktemp("extra")
    for t in (9.5, 13.5):
        write_png(folder / f"tod_{t}.png", to_png(floor(t)))
    return folder


@pytest.fixture(scope="session")
def floor_run(moving_shadows, tmp_path_factory):
    """A hashgrid field trained 400 steps on the floor's hours (its checkpoint path)."""
    folder, _ = moving_shadows
    run = tmp_path_factory.mktemp("floor_run") / "run"
    trained = run_cli("train", "--preset", "hashgrid", "--data_dir", str(folder), "--max_steps", "400",
                      "--out_dir", str(run))
    assert trained.returncode == 0, trained.stderr
    return run / "last.ckpt"
