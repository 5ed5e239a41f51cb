import numpy as np
import pytest
import torch

from airender.data import hour_from_contest_key, hour_from_name, load_sequence, wrap_hours
from tests.conftest import make_png_folder


@pytest.mark.parametrize("name, hour", [
    ("tod_7.png", 7.0), ("tod_7.5.png", 7.5), ("hour_07.exr", 7.0), ("07.png", 7.0), ("tod_23.png", 23.0),
    ("tod_24.png", 0.0), ("tod_0.png", 0.0), ("scene_v2_tod_10.25.jpg", 10.25), ("TOD_18.1.PNG", 18.1),
])
def test_hour_from_name(name, hour):
    assert hour_from_name(name) == pytest.approx(hour)


@pytest.mark.parametrize("name", ["baseline.png", "tod_.png", "frame_0730.png", "tod_25.png"])
def test_hour_from_name_rejects(name):
    with pytest.raises(ValueError):
        hour_from_name(name)


@pytest.mark.parametrize("key, hour", [("0", 0.0), ("100", 1.0), ("590", 5.9), ("1810", 18.1), ("550", 5.5),
                                       ("2400", 0.0)])
def test_contest_keys(key, hour):
    assert hour_from_contest_key(key) == pytest.approx(hour)


def test_contest_key_rejects():
    for key in ("18.1", "abc", "2500"):
        with pytest.raises(ValueError):
            hour_from_contest_key(key)


def test_wrap_hours_is_periodic():
    t = torch.tensor([-1.0, 0.0, 24.0, 25.5, 48.0])
    assert torch.allclose(wrap_hours(t), torch.tensor([23.0, 0.0, 0.0, 1.5, 0.0]))


def test_times_come_from_names_not_sort_order(tmp_path):
    hours = [float(h) for h in range(24)] + [7.5]
    frames = make_png_folder(tmp_path, hours)
    seq = load_sequence(tmp_path)
    assert seq.time_list() == sorted(hours)  # tod_10 after tod_9, 7.5 between 7 and 8
    # sorted file names would put tod_10 third; the frame at hour 10 must hold tod_10's pixels
    for k, hour in enumerate(seq.time_list()):
        assert np.array_equal(np.round(seq.frames[k].numpy() * 255).astype(np.uint8), frames[hour])
    assert seq.names[seq.index_of_time(10)] == "tod_10.png"
    assert seq.index_of_time(24.0) == seq.index_of_time(0.0)
