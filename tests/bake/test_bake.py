"""The lightmap baker: a tiny bake checked for layout, additivity, masks, light switch, sun, meta; and its parts."""
from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mitsuba", reason="the baker needs Mitsuba 3 (pip install -e .[scene])")
pytest.importorskip("xatlas", reason="the baker needs xatlas (pip install -e .[scene])")
pytest.importorskip("trimesh", reason="the baker needs trimesh (pip install -e .[scene])")

from airender.bake.bake import HELD_OUT, HOURS, BakeSettings, bake, baked_times  # noqa: E402
from airender.bake.cli import add_bake_parser  # noqa: E402
from airender.solar import Site, sun_position  # noqa: E402
from airender.data.virtual_texture import (COMPONENT_FOLDERS, VTEntry, list_lightmaps, open_component,  # noqa: E402
                                           open_mask, raw_file_name, time_text)
from airender.errors import InputError  # noqa: E402

SETTINGS = BakeSettings(size=128, atlases=2, parts=2, spp=2, seed=3)
NIGHT = [1.0, 2.0, 2.5, 22.5, 24.0]


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bake") / "level"
    bake(out, SETTINGS, progress=False)
    return out


FOLDERS = list(COMPONENT_FOLDERS.values())  # Original, DirectionalOnly, LocalOnly, SkyLightOnly


def entries(root: Path) -> list[VTEntry]:
    return list_lightmaps(root)


def read(root: Path, component: str, entry: VTEntry, t: float) -> np.ndarray:
    """[H, W, 3] float32 of one component at hour ``t``, read back through the layout's reader."""
    return open_component(root, entry, component).read(t)


def read_mask(root: Path, entry: VTEntry) -> np.ndarray:
    """[H, W] int8 coverage (127 / -1)."""
    return open_mask(root, entry).read(0, entry.height)


def all_images(root: Path, component: str):
    for entry in entries(root):
        opened = open_component(root, entry, component)
        for t in baked_times():
            yield entry, t, opened.read(t)


def test_layout_names_and_sizes(baked):
    config = json.loads((baked / "config.json").read_text())
    assert config["lightmap_count"] == 2 == len(config["lightmap_list"])
    assert sorted(p.name for p in baked.iterdir()) == sorted(
        ["config.json", "meta.json", "contact_sheet.png", "level.glb", "Mask", *FOLDERS])
    assert [p.name for p in baked.parent.iterdir()] == ["level"], "the staging folder must be gone"
    expected = {name: set() for name in ("Mask", *FOLDERS)}
    first = config["lightmap_list"][0]
    assert first["resolution"] == {"width": 128, "height": 128} and first["parts"] == 2
    for item in config["lightmap_list"]:
        w, h, p, i = item["resolution"]["width"], item["resolution"]["height"], item["parts"], item["id"]
        assert w <= 128 and h <= 128 and h % p == 0
        for k in range(p):
            name = f"lightmapCoverage_Dilate_VirtualTexture0_{i}_HQ_{w}_{h}_1.00.bin_{k}"
            expected["Mask"].add(name)
            assert (baked / "Mask" / name).stat().st_size == w * h // p
            for t in baked_times():
                name = f"lightmapRawData_Dilate_VirtualTexture0_{i}_HQ_{w}_{h}_{t:.2f}.bin_{k}"
                for source in FOLDERS:
                    expected[source].add(name)
                    assert (baked / source / name).stat().st_size == w * h * 3 * 4 // p
    for folder, names in expected.items():
        assert {p.name for p in (baked / folder).iterdir()} == names
    names = expected["Original"]
    for suffix in ("_1.00.bin_0", "_24.00.bin_1", "_7.50.bin_0", "_10.25.bin_0", "_5.90.bin_0", "_18.10.bin_1"):
        assert any(n.endswith(suffix) for n in names), suffix
    assert not any(n.endswith("_0.00.bin_0") for n in names)


def test_parts_of_the_bake_concatenate(baked):
    entry = entries(baked)[0]
    whole = read(baked, "original", entry, 12.0)
    rows = entry.height // entry.parts
    for k in range(entry.parts):
        name = raw_file_name(entry.lightmap_id, entry.width, entry.height, time_text(12.0), k)
        part = np.fromfile(baked / "Original" / name, "<f4").reshape(rows, entry.width, 3)
        np.testing.assert_array_equal(part, whole[k * rows:(k + 1) * rows])
        assert part.max() > 0.0, "both halves of the atlas hold lit charts"


def test_original_is_the_sum_of_the_sources(baked):
    for entry in entries(baked):
        for t in baked_times():
            d, l, s, o = (read(baked, c, entry, t) for c in ("directional", "local", "sky", "original"))
            np.testing.assert_allclose(o, d + l + s, rtol=1e-6, atol=1e-7,
                                       err_msg=f"lightmap {entry.lightmap_id} t={t}")
            assert np.isfinite(o).all() and (d >= 0).all() and (l >= 0).all() and (s >= 0).all()


def test_mask_and_gutter_dilation(baked):
    for entry in entries(baked):
        mask = read_mask(baked, entry)
        assert set(np.unique(mask).tolist()) == {-1, 127}
        valid = mask == 127
        assert 0.05 < valid.mean() < 0.95
        noon = read(baked, "original", entry, 12.0)
        lit_invalid = ~valid & (noon.max(axis=2) > 0)
        assert lit_invalid.any(), "gutter texels must be dilated"
        # Every dilated texel copies a valid texel at most 4 texels away (Chebyshev).
        ys, xs = np.nonzero(lit_invalid)
        for y, x in list(zip(ys, xs))[:: max(1, len(ys) // 200)]:
            window = (slice(max(0, y - 4), y + 5), slice(max(0, x - 4), x + 5))
            candidates = noon[window][valid[window]]
            assert (np.abs(candidates - noon[y, x]).max(axis=1) == 0).any(), (y, x)
        # Farther than 4 texels (Chebyshev) from every valid texel the lightmap is zero.
        padded = np.pad(valid, 4)
        near = np.lib.stride_tricks.sliding_window_view(padded, (9, 9)).any(axis=(2, 3))
        far = ~near  # (packed small atlases may have none; the dilation plan is checked on its own below)
        assert (noon[far] == 0).all()


def test_a_window_of_the_bake_round_trips_through_the_sample_format(baked, tmp_path):
    from airender.bake.sample import materialise_sample_atlas, save_sample_atlas

    entry = entries(baked)[0]
    window = (32, 16, 64, 96)  # rows 32..95 cross the two parts
    save_sample_atlas(baked, entry.lightmap_id, window, tmp_path / "stored")
    copy = materialise_sample_atlas(tmp_path / "copy", parts=2, source=tmp_path / "stored")
    [small] = entries(copy)
    assert (small.height, small.width, small.parts) == (64, 96, 2)
    valid = read_mask(copy, small) == 127
    np.testing.assert_array_equal(read_mask(copy, small), open_mask(baked, entry).read(32, 96, 16, 112))
    for t in (1.0, 12.0, 18.1):
        for component in ("directional", "local", "sky"):
            source = open_component(baked, entry, component).read(t, window)[valid]
            np.testing.assert_allclose(read(copy, component, small, t)[valid], source, rtol=1e-3, atol=1e-6)


def test_sun_is_dark_below_the_horizon_and_moves(baked):
    meta = json.loads((baked / "meta.json").read_text())
    for entry, t, image in all_images(baked, "directional"):
        above = meta["sun"][f"{t:.2f}"]["elevation_deg"] > 0
        if t in NIGHT:
            assert not above
        if not above:
            assert not image.any(), f"sun at t={t} while below the horizon"
    entry = entries(baked)[0]
    valid = read_mask(baked, entry) == 127
    lit = {t: read(baked, "directional", entry, t)[valid].max(axis=1) > 0
           for t in (9.0, 12.0, 15.0)}
    assert 0.2 < lit[12.0].mean() < 0.95
    assert (lit[9.0] != lit[15.0]).mean() > 0.05, "shadows must move between 9 h and 15 h"


def test_lamps_only_at_night(baked):
    for entry, t, image in all_images(baked, "local"):
        if 6.0 <= t <= 18.0:
            assert not image.any(), f"lamps on at t={t}"
        else:
            assert image.max() > 0.01, f"lamps off at t={t}"
    entry = entries(baked)[0]
    np.testing.assert_array_equal(read(baked, "local", entry, 1.0), read(baked, "local", entry, 22.5))


def test_sky_bright_by_day_faint_at_night(baked):
    entry = entries(baked)[0]
    valid = read_mask(baked, entry) == 127
    day = read(baked, "sky", entry, 12.0)[valid]
    night = read(baked, "sky", entry, 24.0)[valid]
    assert (day.max(axis=1) > 0).mean() > 0.5
    assert 0 < night.mean() < 0.05 * day.mean()
    assert day[:, 2].mean() > day[:, 0].mean(), "the day sky is blue"


def test_meta(baked):
    meta = json.loads((baked / "meta.json").read_text())
    params = meta["parameters"]
    assert {k: params[k] for k in ("size", "atlases", "parts", "spp", "seed")} == \
        {"size": 128, "atlases": 2, "parts": 2, "spp": 2, "seed": 3}
    assert params["latitude"] == Site().latitude and params["day"] == Site().day.isoformat()
    assert meta["times"]["hours"] == list(HOURS) and meta["times"]["held_out"] == list(HELD_OUT)
    assert set(meta["sun"]) == {f"{t:.2f}" for t in baked_times()}
    for key, sun in meta["sun"].items():
        assert math.isclose(np.linalg.norm(sun["direction"]), 1.0, rel_tol=1e-5)
        assert math.isclose(math.degrees(math.asin(sun["direction"][2])), sun["elevation_deg"], abs_tol=1e-3)
        assert 0.0 <= sun["azimuth_deg"] < 360.0
        t = float(key)
        assert sun["lights_on"] == (t < 6.0 or t > 18.0)
    assert meta["sun"]["12.00"]["elevation_deg"] > 60 and meta["sun"]["24.00"]["elevation_deg"] < 0
    assert [m["id"] for m in meta["lightmaps"]] == [e.lightmap_id for e in entries(baked)]
    assert meta["samples_per_texel"]["sky"] == 2 and meta["software"]["mitsuba"]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_bake_parser(parser.add_subparsers())
    return parser.parse_args(["bake", *argv])


@pytest.mark.parametrize("flags, message", [
    (["--size", "100"], "--size"), (["--size", "0"], "--size"), (["--size", "8"], "--size"),
    (["--parts", "3"], "--parts"), (["--parts", "0"], "--parts"), (["--atlases", "0"], "--atlases"),
    (["--spp", "0"], "--spp"), (["--date", "2024-13-01"], "--date"), (["--latitude", "95"], "--latitude"),
])
def test_bad_input_is_refused_before_writing(tmp_path, flags, message):
    out = tmp_path / "out"
    args = _parse(["--out", str(out), "--quiet", *flags])
    with pytest.raises(InputError, match=message):
        args.func(args)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, message", [
    (["--times", "7:6:1"], "--times 7:6:1"), (["--times", "7.125"], "two decimals"), (["--times", "25"], "--times 25"),
    (["--holdout_times", "7.1"], "give the training times too"),
    (["--times", "6:9:1", "--holdout_times", "7"], "7 also in --times"),
])
def test_bad_times_are_refused_before_writing(tmp_path, flags, message):
    out = tmp_path / "out"
    args = _parse(["--out", str(out), "--quiet", *flags])
    with pytest.raises(InputError, match=message):
        args.func(args)
    assert list(tmp_path.iterdir()) == []


def test_any_times_and_held_out_times_apart(tmp_path):
    """--times bakes exactly those times; --holdout_times bakes its own into OUT/holdout, the same level and
    lighting (a time in both would give the same image); meta.json gives each time's sun."""
    out = tmp_path / "dense"
    args = _parse(["--out", str(out), "--quiet", "--size", "128", "--atlases", "1", "--spp", "1",
                   "--times", "6:9:0.25,12", "--holdout_times", "7.1, 8.05"])
    args.func(args)
    dense = [6.0 + 0.25 * k for k in range(12)] + [12.0]
    (entry,) = entries(out)
    assert sorted(open_component(out, entry, "original").hours) == dense
    (held,) = entries(out / "holdout")
    assert sorted(open_component(out / "holdout", held, "original").hours) == [7.1, 8.05]
    assert (held.width, held.height) == (entry.width, entry.height)
    assert np.array_equal(read_mask(out, entry), read_mask(out / "holdout", held))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["times"]["baked"] == dense and meta["times"]["held_out"] == [7.1, 8.05]
    assert meta["times"]["held_out_folder"] == "holdout"
    assert set(meta["sun"]) == {time_text(t) for t in dense + [7.1, 8.05]}
    # the sun moves between 7 and 7.1 and between 7.1 and 7.25: the held-out frame lies between the baked ones
    sun = [read(root, "directional", e, t).sum() for root, e, t in ((out, entry, 7.0), (out / "holdout", held, 7.1),
                                                                   (out, entry, 7.25))]
    assert sun[0] < sun[1] < sun[2]
    assert read(out, "local", entry, 7.0).sum() == 0 and read(out / "holdout", "original", held, 7.1).sum() > 0


def test_existing_folder_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = _parse(["--out", str(out), "--size", "16", "--quiet"])
    with pytest.raises(InputError, match="exists and is not an empty folder.*pass --overwrite"):
        args.func(args)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_missing_mitsuba_names_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mitsuba", None)  # makes `import mitsuba` fail
    args = _parse(["--out", str(tmp_path / "out"), "--quiet"])
    with pytest.raises(InputError, match=r"^mitsuba: .*pip install -e \.\[scene\]") as caught:
        args.func(args)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_too_small_an_atlas_is_refused_before_writing(tmp_path):
    args = _parse(["--out", str(tmp_path / "out"), "--size", "16", "--atlases", "1", "--quiet"])
    with pytest.raises(InputError, match="--atlases"):
        args.func(args)
    assert list(tmp_path.iterdir()) == []


def test_sun_position_noaa():
    site = Site(latitude=45.4, longitude=12.3, timezone=1.0, day=date(2024, 6, 21))
    noon = max((sun_position(site, h / 60.0) for h in range(11 * 60, 14 * 60)), key=lambda s: s.elevation_deg)
    assert abs(noon.elevation_deg - (90.0 - 45.4 + 23.44)) < 0.3
    assert abs(noon.azimuth_deg - 180.0) < 1.0 and noon.direction[0] > 0.3  # culminates in the south (+x)
    morning, evening = sun_position(site, 7.0), sun_position(site, 17.0)
    assert morning.direction[1] > 0.5 and evening.direction[1] < -0.5  # rises in the east (+y), sets in the west
    assert 60 < morning.azimuth_deg < 120 and 240 < evening.azimuth_deg < 300
    assert sun_position(site, 0.0).direction == sun_position(site, 24.0).direction
    assert sun_position(site, 0.0).elevation_deg < -15
    winter = sun_position(Site(day=date(2024, 12, 21)), 12.25)
    assert abs(winter.elevation_deg - (90.0 - 45.4 - 23.44)) < 0.5


def test_rasterised_texels_interpolate_the_triangle():
    from airender.bake.raster import plan_dilation, rasterize
    from airender.bake.unwrap import AtlasCharts

    # One triangle over the lower-left half of an 8 x 8 atlas; world position = (u, v, 2) metres.
    uv = np.array([[[0.5, 0.5], [7.5, 0.5], [0.5, 7.5]]], dtype=np.float32)
    position = np.concatenate([uv, np.full((1, 3, 1), 2.0, np.float32)], axis=2)
    normal = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (1, 3, 1))
    charts = AtlasCharts(index=0, height=8, width=8, uv=uv, position=position, normal=normal,
                         object_index=np.zeros(1, np.int32))
    geometry = rasterize(charts, gutter=1)
    rows, cols = np.divmod(geometry.texel, 8)
    assert (cols + rows <= 8).all()  # texels whose square the triangle touches (the hypotenuse is u + v = 8)
    assert ((cols + rows <= 7).sum() == 36) and geometry.count > 36  # the 36 centres inside, plus touched ones
    centre_inside = (cols + 0.5 >= 0.5) & (rows + 0.5 >= 0.5) & (cols + rows + 1.0 <= 8.0)
    np.testing.assert_allclose(geometry.position[centre_inside, :2],
                               np.stack([cols + 0.5, rows + 0.5], 1)[centre_inside], atol=1e-5)
    np.testing.assert_allclose(geometry.normal, np.tile([0.0, 0.0, 1.0], (geometry.count, 1)))
    mask = geometry.mask()
    assert mask[0, 0] == 127 and mask[7, 7] == -1
    # Gutter: a lone valid texel spreads to its 8 neighbours, nothing further.
    valid = np.zeros(25, bool)
    valid[12] = True
    to, src = plan_dilation(valid, 5, 5, gutter=1)
    assert sorted(to.tolist()) == [6, 7, 8, 11, 13, 16, 17, 18] and (src == 12).all()


def test_scalar_and_vectorised_tracers_agree():
    from airender.bake.scene import build_level
    from airender.bake.tracer import SCALAR_VARIANT, VECTOR_VARIANT, ShadowTracer

    level = build_level(1)
    try:
        fast = ShadowTracer(level, variant=VECTOR_VARIANT)
    except InputError:
        pytest.skip("Mitsuba's LLVM variant cannot start here")
    slow = ShadowTracer(level, variant=SCALAR_VARIANT)
    rng = np.random.default_rng(0)
    origin = np.c_[rng.uniform(-18, 18, (2000, 2)), rng.uniform(0.01, 6.0, 2000)].astype(np.float32)
    direction = rng.normal(size=(2000, 3)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    distance = rng.uniform(0.5, 30.0, 2000).astype(np.float32)
    slow_hits = slow.occluded(origin, direction, distance)
    fast_hits = fast.occluded(origin, direction, distance)
    assert 0.05 < fast_hits.mean() < 0.95
    assert (slow_hits == fast_hits).mean() > 0.999


def test_level_glb_holds_the_geometry_and_the_lightmap_uvs(baked):
    import trimesh

    from airender.bake.level_file import LEVEL_FILE, albedo_of
    from airender.bake.scene import build_level
    from airender.bake.unwrap import unwrap_level

    scene = trimesh.load(str(baked / LEVEL_FILE), file_type="glb")
    extras = scene.metadata["airender"]
    level = build_level(SETTINGS.seed)
    unwrap = unwrap_level(level, SETTINGS.size, SETTINGS.atlases, min_side=SETTINGS.parts)
    ids = [e.lightmap_id for e in entries(baked)]
    assert extras["format"] == "airender-level" and extras["lightmaps"] == ids and extras["up"] == "+y"
    assert extras["position"][1] > 0 and scene.camera is not None
    names = [o.name for o in level.objects]
    seen = 0
    for mesh in scene.geometry.values():
        meta = mesh.metadata
        k = ids.index(meta["lightmap_id"])
        charts, entry = unwrap.atlases[k], entries(baked)[k]
        assert (meta["atlas_width"], meta["atlas_height"]) == (entry.width, entry.height)
        index = names.index(meta["object"])
        pick = charts.object_index == index
        # trimesh reads glTF's v (down from the atlas's top) as 1 - v: back to the bake's texel coordinates
        texels = np.stack([mesh.visual.uv[:, 0], 1.0 - mesh.visual.uv[:, 1]], axis=1) * [entry.width, entry.height]
        np.testing.assert_allclose(texels, charts.uv[pick].reshape(-1, 2), atol=1e-3)
        # +Y up: the bake's z is the file's y
        np.testing.assert_allclose(mesh.vertices[:, 1], charts.position[pick].reshape(-1, 3)[:, 2], atol=1e-5)
        # the UVs address baked texels: a triangle's centroid lands on a valid texel of its atlas
        centroids = np.floor(texels.reshape(-1, 3, 2).mean(axis=1)).astype(int)
        valid = read_mask(baked, entry)[centroids[:, 1], centroids[:, 0]] > 0
        assert valid.mean() > 0.98, (meta["object"], float(valid.mean()))
        colour = np.asarray(mesh.visual.material.baseColorFactor[:3]) / 255.0
        np.testing.assert_allclose(colour, albedo_of(meta["object"], index), atol=1 / 255)
        seen += len(mesh.faces)
    assert seen == sum(len(c.uv) for c in unwrap.atlases)
    assert json.loads((baked / "meta.json").read_text())["level"]["file"] == LEVEL_FILE
