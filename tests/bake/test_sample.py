"""The bundled sample atlas: materialised in the VT layout without Mitsuba, additive, with the light switch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from airender.bake.sample import SAMPLE_FILE, materialise_sample_atlas, sample_atlas_dir
from airender.data.virtual_texture import list_lightmaps, open_component, open_mask
from airender.errors import InputError

TIMES = [float(h) for h in range(1, 25)] + [2.5, 5.9, 7.5, 10.25, 13.5, 16.75, 18.1, 19.5, 22.5]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return materialise_sample_atlas(tmp_path_factory.mktemp("sample") / "atlas")


def read(root, component, entry, t):
    return open_component(root, entry, component).read(t)


def test_the_sample_ships_small():
    folder = sample_atlas_dir()
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert (folder / SAMPLE_FILE).is_file() and (folder / "meta.json").is_file()
    assert total < 3_000_000


def test_materialised_layout_and_sources(sample):
    [entry] = list_lightmaps(sample)
    mask = open_mask(sample, entry).read(0, entry.height)
    valid = mask == 127
    assert set(np.unique(mask).tolist()) <= {-1, 127} and 0.2 < valid.mean() <= 1.0
    meta = json.loads((sample / "meta.json").read_text())
    for t in TIMES:
        d, l, s, o = (read(sample, c, entry, t) for c in ("directional", "local", "sky", "original"))
        np.testing.assert_array_equal(o, (d + l) + s)
        if meta["sun"][f"{t:.2f}"]["elevation_deg"] <= 0:
            assert not d.any(), t
        assert (not l.any()) == (6.0 <= t <= 18.0), t
        assert s[valid].mean() > 0
    noon = read(sample, "directional", entry, 12.0)[valid].max(axis=1) > 0
    morning = read(sample, "directional", entry, 7.0)[valid].max(axis=1) > 0
    assert noon.mean() > 0.3 and (noon != morning).mean() > 0.02


def test_parts_and_reuse(sample, tmp_path):
    [entry] = list_lightmaps(sample)
    split = materialise_sample_atlas(tmp_path / "split", parts=2)
    [split_entry] = list_lightmaps(split)
    assert split_entry.parts == 2 and len(list((split / "Original").glob("*_18.10.bin_*"))) == 2
    np.testing.assert_array_equal(read(split, "original", split_entry, 18.1), read(sample, "original", entry, 18.1))
    stamp = (split / "config.json").stat().st_mtime_ns
    assert materialise_sample_atlas(tmp_path / "split", parts=2) == tmp_path / "split"
    assert (split / "config.json").stat().st_mtime_ns == stamp, "an existing copy is reused"


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="exists and is not an empty folder"):
        materialise_sample_atlas(tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["mine.txt"]
