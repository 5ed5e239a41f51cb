"""The field assembled from parts (airender.assembly, nn/terms, nn/heads): it trains as the field did before it
was made of parts, reads the checkpoints written before, and checks the option rules once."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import airender
from airender.assembly import build_field
from airender.config import ExperimentConfig, field_problems
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.field import RENAMED_STATE
from airender.presets import preset_config, preset_names
from tests.test_components import write_split_dataset

PLAZA = Path(airender.__file__).parent / "sample_data" / "plaza" / "hours"
SWITCH = {"light_switch": [6.0, 18.0]}
# Sum of |value| over the state dict (the baseline frames left out) after 6 steps of 1024 texels on the bundled
# plaza (the split-lighting set for --components), one torch thread, measured with the code before the field
# was made of parts (commit 56177d4). "sun+switch" differs from that code in the last bits (5.6e-8 at most in
# any weight): the sun term's and the lamps' gradients reach the shared features in the other order.
BEFORE_PARTS = {
    "baseline": 162.647893107, "encoder": 613.886537531, "patch_ssim": 162.611766274, "hybrid": 613.865895503,
    "film": 318.471490007, "hashgrid": 3379.67798604, "quality": 5646.46864077, "sun": 6020.86684837,
    "basis": 5816.9538255, "hashgrid+switch": 3362.42384153, "sun+switch": 5988.31346482,
    "baseline+switch": 500.200251301, "hashgrid+components": 1174.97838827, "baseline+components": 487.060573724,
    "sun+components": 2185.3048402,
}
EXTRA = {"switch": SWITCH, "components": {"components": True}}


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return write_split_dataset(tmp_path_factory.mktemp("split") / "vt")


def six_steps(label: str, split: Path, out: Path) -> Trainer:
    name, _, extra = label.partition("+")
    config = preset_config(name)
    for key, value in EXTRA.get(extra, {}).items():
        setattr(config.field, key, value)
    if name == "sun" and extra == "components":
        config.field.residual_mode = False
    data = split if extra == "components" else PLAZA
    config.data.data_dir, config.out_dir = str(data), str(out)
    config.train.max_steps, config.train.batch_size, config.train.progress = 6, 1024, False
    config.train.between_steps = 0
    trainer = Trainer(config, load_sequence(data, components=extra == "components"))
    trainer.fit()
    return trainer


def test_every_preset_and_term_trains_as_before(split, tmp_path):
    assert set(preset_names()) <= set(BEFORE_PARTS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for label, expected in BEFORE_PARTS.items():
            state = six_steps(label, split, tmp_path / label).field.state_dict()
            total = float(sum(v.double().abs().sum() for k, v in state.items()
                              if k not in ("baseline", "source_baseline")))
            assert total == pytest.approx(expected, rel=1e-6), label
    finally:
        torch.set_num_threads(threads)


def test_checkpoints_written_before_the_parts_load(split, tmp_path):
    for label in ("hashgrid+switch", "baseline+switch", "hashgrid+components"):
        field = six_steps(label, split, tmp_path / label).field
        state = field.state_dict()
        old = {}
        for key, value in state.items():  # the keys as the field before the parts named them
            for before, now in RENAMED_STATE.items():
                if key.startswith(now):
                    key = before + key[len(now):]
            old[key] = value.clone()
        assert set(old) != set(state)
        fresh = build_field(field.cfg, field.desc)
        fresh.load_state_dict(old)
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items()), label


def test_parts_of_each_field(split, tmp_path):
    quality = build_field(preset_config("quality").field, six_steps("quality", split, tmp_path / "q").desc)
    assert quality.term_names == () and quality.sources == () and quality.residual_name is None
    sun = six_steps("sun+switch", split, tmp_path / "s").field
    assert sun.term_names == ("lamp", "sun") and [t.name for t in sun.terms] == ["lamp", "sun"]
    sources = six_steps("baseline+components", split, tmp_path / "c").field
    assert sources.sources == ("directional", "local", "sky") and sources.residual_name == "source_baseline"
    assert sources.head.outputs == 9 and sources.mlp.out_dim == 9


@pytest.mark.parametrize("options, message", [
    ({"light_switch": [18.0, 6.0]}, "--light_switch takes two hours OFF ON"),
    ({"light_switch": [6.0, 18.0], "components": True}, "--light_switch: not with --components"),
    ({"sun_path": "learn", "components": True, "residual_mode": True}, "it needs --residual_mode False"),
    ({"xy_harmonics": 0, "xy_include_input": False}, "the field has no pixel inputs"),
])
def test_option_rules_are_checked_once_before_any_work(options, message, tmp_path):
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    for key, value in options.items():
        setattr(config.field, key, value)
    assert any(message in p for p in field_problems(config.field))
    config.data.data_dir = str(tmp_path / "missing")  # refused before the data are read
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        Trainer(config, None)
