"""The virtual-texture lightmap layout: names, parts, hours, components, errors, writer, converter."""
import json

import numpy as np
import pytest
import torch

from airender.cli import build_parser, main
from airender.convert import convert_contest_to_vt
from airender.data import load_sequence
from airender.data.virtual_texture import (COMPONENT_FOLDERS, VTLightmap, VTWriter, check_component_sum,
                                           is_virtual_texture, list_lightmaps, mask_file_name, open_component,
                                           open_mask, raw_file_name, read_components, read_virtual_texture,
                                           time_text, write_virtual_texture)
from airender.errors import InputError, OutputError
from tests.conftest import make_contest_dataset, run_cli

HOURS = [24, 7, 7.5, 10.25, 5.9, 12]  # written as 24.00, 7.00, 7.50, 10.25, 5.90, 12.00
SORTED_HOURS = [0.0, 5.9, 7.0, 7.5, 10.25, 12.0]


def lightmap(ident, width, height, parts, hours=HOURS, seed=0, sources=True):
    """A VTLightmap with random source components, Original = their sum, and column 0 invalid."""
    rng = np.random.default_rng(seed)
    shape = (len(hours), height, width, 3)
    components = {c: (rng.random(shape) * (1 + k)).astype(np.float32)
                  for k, c in enumerate(("directional", "local", "sky"))}
    original = components["directional"] + components["local"] + components["sky"]
    components = {"original": original, **components} if sources else {"original": original}
    mask = np.ones((height, width), bool)
    mask[:, 0] = False
    return VTLightmap(ident, list(hours), components, mask, parts)


def dataset(root, sources=True):
    """Lightmap 1: 8x6 in 3 parts; lightmap 7: 4x4 in 1 part. Returns {id: VTLightmap}."""
    maps = {1: lightmap(1, 8, 6, 3, sources=sources), 7: lightmap(7, 4, 4, 1, seed=1, sources=sources)}
    write_virtual_texture(root, maps.values())
    return maps


def frames_in_hour_order(lm, component="original"):
    order = np.argsort([h % 24 for h in lm.hours])
    return torch.from_numpy(np.asarray(lm.components[component])[order])


def expect_cli_error(capsys, tmp_path, args, needle):
    out_dir = tmp_path / "never_written"
    code = main(["train", *args, "--out_dir", str(out_dir), "--max_steps", "1", "--batch_size", "16",
                 "--progress", "False"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert not out_dir.exists()
    return err


# --- layout -------------------------------------------------------------------------------------------
def test_file_names_and_config(tmp_path):
    dataset(tmp_path / "vt")
    root = tmp_path / "vt"
    config = json.loads((root / "config.json").read_text())
    assert config == {"lightmap_count": 2, "lightmap_list": [
        {"id": 1, "resolution": {"width": 8, "height": 6}, "parts": 3},
        {"id": 7, "resolution": {"width": 4, "height": 4}, "parts": 1}]}
    names = sorted(p.name for p in (root / "Original").iterdir())
    assert "lightmapRawData_Dilate_VirtualTexture0_1_HQ_8_6_24.00.bin_2" in names
    assert "lightmapRawData_Dilate_VirtualTexture0_1_HQ_8_6_7.50.bin_0" in names
    assert "lightmapRawData_Dilate_VirtualTexture0_1_HQ_8_6_10.25.bin_1" in names
    assert "lightmapRawData_Dilate_VirtualTexture0_1_HQ_8_6_5.90.bin_0" in names
    assert "lightmapRawData_Dilate_VirtualTexture0_7_HQ_4_4_12.00.bin_0" in names
    assert len(names) == 6 * 3 + 6 * 1
    assert sorted(p.name for p in (root / "Mask").iterdir()) == [
        "lightmapCoverage_Dilate_VirtualTexture0_1_HQ_8_6_1.00.bin_0",
        "lightmapCoverage_Dilate_VirtualTexture0_1_HQ_8_6_1.00.bin_1",
        "lightmapCoverage_Dilate_VirtualTexture0_1_HQ_8_6_1.00.bin_2",
        "lightmapCoverage_Dilate_VirtualTexture0_7_HQ_4_4_1.00.bin_0"]
    assert sorted(p.name for p in root.iterdir()) == ["DirectionalOnly", "LocalOnly", "Mask", "Original",
                                                      "SkyLightOnly", "config.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["vt"]  # no temporary folder left beside it
    assert time_text(0) == time_text(24) == "24.00" and time_text(5.9) == "5.90" and time_text(10.25) == "10.25"


def test_read_back_every_component_and_lightmap(tmp_path):
    maps = dataset(tmp_path)
    assert is_virtual_texture(tmp_path)
    first = load_sequence(tmp_path)  # the first listed lightmap by default
    assert (first.height, first.width, first.is_hdr) == (6, 8, True)
    assert first.time_list() == SORTED_HOURS  # 24.00 -> 0; numeric order, not the names' order
    assert torch.equal(first.frames, frames_in_hour_order(maps[1]))
    assert torch.equal(first.mask, torch.from_numpy(maps[1].mask))
    assert first.names[0] == "lightmapRawData_Dilate_VirtualTexture0_1_HQ_8_6_24.00.bin"
    for component in COMPONENT_FOLDERS:
        seq = load_sequence(tmp_path, "7", component)
        assert seq.width == 4 and torch.equal(seq.frames, frames_in_hour_order(maps[7], component))
        assert COMPONENT_FOLDERS[component] in seq.source
    components = read_components(tmp_path, "1")
    assert list(components) == list(COMPONENT_FOLDERS)
    for component, seq in components.items():
        assert torch.equal(seq.frames, frames_in_hour_order(maps[1], component))


def test_parts_concatenate_to_the_whole(tmp_path):
    maps = dataset(tmp_path)
    lm = maps[1]
    hour = HOURS.index(7.5)
    parts = [np.fromfile(tmp_path / "Original" / raw_file_name(1, 8, 6, "7.50", k), np.float32) for k in range(3)]
    assert all(p.size == 2 * 8 * 3 for p in parts)  # 6 rows / 3 parts = 2 rows each
    assert np.array_equal(np.concatenate(parts).reshape(6, 8, 3), lm.components["original"][hour])
    masks = [np.fromfile(tmp_path / "Mask" / mask_file_name(1, 8, 6, k), np.int8) for k in range(3)]
    coverage = np.concatenate(masks).reshape(6, 8)
    assert set(np.unique(coverage)) == {-1, 127} and np.array_equal(coverage > 0, lm.mask)


def test_window_reads_only_a_region(tmp_path):
    maps = dataset(tmp_path)
    whole = frames_in_hour_order(maps[1])
    window = read_virtual_texture(tmp_path, "1", "sky", window=(1, 2, 4, 5))  # rows 1..4 cross all 3 parts
    assert torch.equal(window.frames, frames_in_hour_order(maps[1], "sky")[:, 1:5, 2:7])
    assert window.mask is None  # column 0 (the invalid one) is outside the window
    assert torch.equal(read_virtual_texture(tmp_path, "1", window=(0, 0, 6, 8)).frames, whole)
    with pytest.raises(InputError, match="is not inside lightmap 1"):
        read_virtual_texture(tmp_path, "1", window=(4, 0, 3, 8))


def test_fractional_and_midnight_times_come_from_the_names(tmp_path):
    lm = lightmap(2, 4, 2, 2, hours=[18.1, 24, 2.5, 13.5, 16.75])
    write_virtual_texture(tmp_path, [lm])
    seq = load_sequence(tmp_path)
    assert seq.time_list() == [0.0, 2.5, 13.5, 16.75, 18.1]
    for k, hour in enumerate(lm.hours):
        assert torch.equal(seq.frames[seq.index_of_time(hour % 24)], torch.from_numpy(lm.components["original"][k]))


def test_original_only_dataset(tmp_path, capsys):
    dataset(tmp_path / "vt", sources=False)
    assert sorted(p.name for p in (tmp_path / "vt").iterdir()) == ["Mask", "Original", "config.json"]
    assert list(read_components(tmp_path / "vt")) == ["original"]
    assert load_sequence(tmp_path / "vt").num_frames == 6
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "vt"), "--component", "sky"],
                     "SkyLightOnly: no such folder: this dataset has no 'sky' component (it has original)")


# --- errors -------------------------------------------------------------------------------------------
def test_error_missing_part(tmp_path, capsys):
    dataset(tmp_path / "vt")
    gone = tmp_path / "vt" / "Original" / raw_file_name(1, 8, 6, "7.50", 1)
    gone.unlink()
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "vt")],
                     f"{gone}: missing (part 1 of 3 of hour 7.5)")


def test_error_part_of_wrong_size(tmp_path, capsys):
    dataset(tmp_path / "vt")
    part = tmp_path / "vt" / "LocalOnly" / raw_file_name(7, 4, 4, "10.25", 0)
    part.write_bytes(part.read_bytes()[:-4])
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "vt"), "--lightmap_id", "7", "--component",
                                        "local"], f"{part}: has 188 bytes, expected 192 for a 4x4 float32 RGB part")
    mask = tmp_path / "vt" / "Mask" / mask_file_name(7, 4, 4, 0)
    mask.write_bytes(b"\x7f" * 3)
    with pytest.raises(InputError, match="has 3 bytes, expected 16 for a 4x4 int8 mask part"):
        load_sequence(tmp_path / "vt", "7")


def test_error_missing_component_folder_and_mask(tmp_path, capsys):
    dataset(tmp_path / "vt")
    for name in ("DirectionalOnly", "Mask"):
        for path in (tmp_path / "vt" / name).iterdir():
            path.unlink()
        (tmp_path / "vt" / name).rmdir()
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "vt"), "--component", "directional"],
                     "DirectionalOnly: no such folder: this dataset has no 'directional' component "
                     "(it has original, local, sky)")
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "vt")], "Mask: no such folder")
    with pytest.raises(InputError, match="DirectionalOnly: no such folder"):
        check_component_sum(tmp_path / "vt")


def test_error_hours_differ_between_components(tmp_path):
    dataset(tmp_path)
    for k in range(3):
        (tmp_path / "LocalOnly" / raw_file_name(1, 8, 6, "7.50", k)).unlink()
    with pytest.raises(InputError, match=r"LocalOnly: lacks hours 7\.5 of Original/$"):
        read_components(tmp_path, "1")
    with pytest.raises(InputError, match=r"LocalOnly: lacks hours 7\.5 of Original/$"):
        check_component_sum(tmp_path, "1")
    assert load_sequence(tmp_path, "1", "local").num_frames == 5  # one component alone still reads


def test_error_bad_names_config_and_values(tmp_path, capsys):
    dataset(tmp_path / "vt")
    root = tmp_path / "vt"
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(root), "--lightmap_id", "9"], "no lightmap '9'")
    stray = root / "Original" / raw_file_name(7, 4, 4, "25.00", 0)
    stray.write_bytes(b"")
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(root), "--lightmap_id", "7"],
                     f"{stray}: time 25.00 is beyond 24:00")
    stray.unlink()
    same = root / "Original" / raw_file_name(7, 4, 4, "0.00", 0)
    same.write_bytes(b"")
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(root), "--lightmap_id", "7"], "same hour 0 as")
    same.unlink()
    extra_part = root / "Original" / raw_file_name(7, 4, 4, "7.00", 1)
    extra_part.write_bytes(b"")
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(root), "--lightmap_id", "7"],
                     f"{extra_part}: part 1, but config.json splits lightmap 7 into 1 (parts 0..0)")
    extra_part.unlink()
    config = json.loads((root / "config.json").read_text())
    config["lightmap_list"][0]["parts"] = 4
    (root / "config.json").write_text(json.dumps(config))
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(root)], "height 6 does not split into 4 equal parts")


def test_nan_at_valid_texel_is_an_error_and_at_invalid_texel_zero(tmp_path, capsys):
    dataset(tmp_path / "vt")
    path = tmp_path / "vt" / "Original" / raw_file_name(1, 8, 6, "12.00", 1)  # rows 2..3
    values = np.fromfile(path, np.float32).reshape(2, 8, 3)
    values[1, 0, 2] = np.nan  # column 0 is invalid
    values.tofile(path)
    seq = load_sequence(tmp_path / "vt")
    assert bool(torch.isfinite(seq.frames).all()) and float(seq.frames[-1, 3, 0, 2]) == 0.0
    values[0, 5, 1] = np.inf
    values.tofile(path)
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "vt")],
                     f"{path}: NaN or Inf at valid texel y 2, x 5")


def test_component_on_the_first_layout_is_an_error(tmp_path, capsys):
    make_contest_dataset(tmp_path / "c", ["0", "1200"], [("l", 0, 4, 4)])
    expect_cli_error(capsys, tmp_path, ["--data_dir", str(tmp_path / "c"), "--component", "sky"],
                     "--component sky needs the virtual-texture layout")
    assert load_sequence(tmp_path / "c", component="original").num_frames == 2


def test_error_exit_status_in_a_real_process(tmp_path):
    dataset(tmp_path / "vt")
    (tmp_path / "vt" / "Original" / raw_file_name(1, 8, 6, "24.00", 2)).unlink()
    result = run_cli("train", "--data_dir", str(tmp_path / "vt"), "--out_dir", str(tmp_path / "run"),
                     "--max_steps", "1", "--progress", "False")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'vt' / 'Original' / raw_file_name(1, 8, 6, '24.00', 2)}: missing (part 2 of 3 of hour 0)"]
    assert not (tmp_path / "run").exists()


# --- components add up --------------------------------------------------------------------------------
def test_component_sum_check(tmp_path):
    maps = dataset(tmp_path)
    check_component_sum(tmp_path, "1")
    check_component_sum(tmp_path, "1", chunk_texels=8)  # one row per band
    path = tmp_path / "DirectionalOnly" / raw_file_name(1, 8, 6, "10.25", 2)  # rows 4..5
    values = np.fromfile(path, np.float32).reshape(2, 8, 3)
    original = np.asarray(maps[1].components["original"])[HOURS.index(10.25)]
    values[0, 0, :] += 100.0  # column 0 is invalid: ignored
    values[1, 3, 1] *= 1 + 1e-6  # within float tolerance
    values.tofile(path)
    check_component_sum(tmp_path, "1")
    values[0, 6, 2] += 0.25  # y 4, x 6
    values[1, 2, 0] += 0.5  # y 5, x 2: the worst
    values.tofile(path)
    for chunk in (8, 1 << 18):
        with pytest.raises(InputError) as info:
            check_component_sum(tmp_path, "1", chunk_texels=chunk)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{tmp_path / 'Original' / raw_file_name(1, 8, 6, '10.25', 2)}: DirectionalOnly + "
                                  f"LocalOnly + SkyLightOnly differ from Original")
        assert "worst texel: lightmap 1, hour 10.25, y 5, x 2:" in message
        assert f"but Original has ({original[5, 2, 0]:.7g}, " in message
    with pytest.raises(InputError, match="worst texel: lightmap 1, hour 10.25, y 5, x 2"):
        read_components(tmp_path, "1")
    assert list(read_components(tmp_path, "1", check_sum=False)) == list(COMPONENT_FOLDERS)
    check_component_sum(tmp_path, "7")  # the other lightmap is untouched


# --- writer -------------------------------------------------------------------------------------------
def test_writer_refuses_to_overwrite_and_leaves_nothing_on_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and is not an empty folder"):
        write_virtual_texture(out, [lightmap(1, 4, 2, 1)])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_virtual_texture(empty, [lightmap(1, 4, 2, 1)])
    assert load_sequence(empty).num_frames == len(HOURS)

    def maps():
        yield lightmap(1, 4, 2, 1)
        yield lightmap(2, 4, 3, 2)  # 3 rows do not split into 2 parts

    with pytest.raises(InputError, match="lightmap 2: height 3 does not split into 2 equal parts"):
        write_virtual_texture(tmp_path / "bad", maps())
    with pytest.raises(InputError, match="hour 1.125: the layout names times with two decimals"):
        write_virtual_texture(tmp_path / "bad", [lightmap(1, 4, 2, 1, hours=[1.125, 2])])
    with pytest.raises(InputError, match="two frames at the same hour"):
        write_virtual_texture(tmp_path / "bad", [lightmap(1, 4, 2, 1, hours=[0, 24])])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]  # no output, no staging folder


def test_streaming_writer_hour_by_hour(tmp_path):
    rng = np.random.default_rng(4)
    hours = [24, 10.25, 1, 18.1]
    images = {(c, h): rng.random((8, 6, 3)).astype(np.float32) for c in ("original", "sky") for h in hours}
    coverage = np.where(rng.random((8, 6)) > 0.3, 127, -1).astype(np.int8)
    out = tmp_path / "vt"
    with VTWriter(out) as writer:
        entry = writer.begin(7, width=6, height=8, parts=4)
        assert (entry.lightmap_id, entry.band_rows) == (7, 2)
        writer.write_mask(7, coverage)  # int8 coverage: > 0 is valid
        for hour in hours:  # one image in memory at a time, in any order of hours and components
            writer.write(7, "sky", hour, torch.from_numpy(images[("sky", hour)]))
            writer.write(7, "original", hour, images[("original", hour)])
        (writer.root / "notes.txt").write_text("beside the layout")
        assert not out.exists(), "nothing appears before the block ends"
    assert sorted(p.name for p in out.iterdir()) == ["Mask", "Original", "SkyLightOnly", "config.json", "notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["vt"]
    for k in range(4):  # part k holds rows [2k, 2k + 2)
        raw = np.fromfile(out / "Original" / raw_file_name(7, 6, 8, "10.25", k), "<f4")
        np.testing.assert_array_equal(raw.reshape(2, 6, 3), images[("original", 10.25)][2 * k:2 * k + 2])
    [entry] = list_lightmaps(out)
    np.testing.assert_array_equal(open_mask(out, entry).read(0, 8), coverage)
    sky = open_component(out, entry, "sky")
    assert sky.hours == [0.0, 1.0, 10.25, 18.1] and sky.times == ["24.00", "1.00", "10.25", "18.10"]
    for hour in hours:
        np.testing.assert_array_equal(sky.read(hour), images[("sky", hour)])
    np.testing.assert_array_equal(sky.read(0, window=(3, 1, 4, 2)), images[("sky", 24)][3:7, 1:3])
    with pytest.raises(InputError, match="has no image at hour 5"):
        sky.read(5)
    seq = load_sequence(out)
    assert torch.equal(seq.mask, torch.from_numpy(coverage > 0))


def test_streaming_writer_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    image = np.ones((2, 4, 3), np.float32)
    with pytest.raises(OutputError, match=r"not an empty folder; refusing to overwrite it \(pass --overwrite "):
        with VTWriter(out, overwrite_flag="--overwrite"):
            pass
    with pytest.raises(RuntimeError, match="interrupted"):
        with VTWriter(out, overwrite=True) as writer:
            writer.begin(1, 4, 2)
            writer.write(1, "original", 12, image)
            raise RuntimeError("interrupted")
    failures = [  # each is found when the block ends, or as it is written
        (lambda w: (w.begin(1, 4, 2), w.write(1, "original", 1, image), w.write(1, "sky", 2, image)),
         "SkyLightOnly and Original differ in hours 1, 2"),
        (lambda w: (w.begin(1, 4, 2), w.write(1, "sky", 1, image)), "lightmap 1: no Original image written"),
        (lambda w: None, "no lightmap to write"),
        (lambda w: w.write(1, "original", 1, image), "lightmap 1 was not begun"),
        (lambda w: (w.begin(1, 4, 2), w.begin(1, 4, 2)), "lightmap id 1 given twice"),
        (lambda w: (w.begin(1, 4, 2), w.write(1, "original", 1, image[:1])),
         r"image is \(1, 4, 3\), expected \(2, 4, 3\)"),
        (lambda w: (w.begin(1, 4, 2), w.write(1, "albedo", 1, image)), "unknown component 'albedo'"),
        (lambda w: (w.begin(1, 4, 2), w.write_mask(1, np.ones((4, 2), bool))), r"mask is \(4, 2\), frames are 2x4"),
        (lambda w: (w.begin(1, 4, 2, source="a.exr"), w.write(1, "original", 24, image),
                    w.write(1, "original", 0, image)),
         r"lightmap 1 \(from a.exr\): two frames at the same hour \(24.00 and 24.00\)"),
    ]
    for steps, message in failures:
        with pytest.raises(InputError, match=message):
            with VTWriter(out, overwrite=True) as writer:
                steps(writer)
        assert [p.name for p in out.iterdir()] == ["old.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]
    with VTWriter(out, overwrite=True) as writer:  # no mask written: every texel valid
        writer.begin(1, 4, 2)
        writer.write(1, "original", 12, image)
    assert sorted(p.name for p in out.iterdir()) == ["Mask", "Original", "config.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert load_sequence(out).mask is None
    with pytest.raises(OutputError, match="exists and is a file, not a folder"):
        with VTWriter(out / "config.json", overwrite=True):
            pass


def test_writer_from_sequence_round_trip(tmp_path):
    maps = dataset(tmp_path / "a")
    sources = read_components(tmp_path / "a", "1")
    original = sources.pop("original")
    write_virtual_texture(tmp_path / "b", [VTLightmap.from_sequence(original, 5, parts=2, sources=sources)])
    again = read_components(tmp_path / "b", "5")
    assert list(again) == list(COMPONENT_FOLDERS)
    assert torch.equal(again["sky"].frames, frames_in_hour_order(maps[1], "sky"))
    assert again["original"].time_list() == SORTED_HOURS
    assert torch.equal(again["original"].mask, torch.from_numpy(maps[1].mask))


# --- converter ----------------------------------------------------------------------------------------
def test_convert_contest_dataset(tmp_path, capsys):
    arrays = make_contest_dataset(tmp_path / "c", ["0", "590", "1200", "1810"], [("a", 3, 5, 4), ("b", 4, 6, 2)])
    assert convert_contest_to_vt(tmp_path / "c", tmp_path / "vt", parts=2) == [3, 4]
    assert sorted(p.name for p in (tmp_path / "vt").iterdir()) == ["Mask", "Original", "config.json"]
    for level, ident in (("a", 3), ("b", 4)):
        source = load_sequence(tmp_path / "c", f"{level}:{ident}")
        converted = load_sequence(tmp_path / "vt", str(ident))
        assert torch.equal(source.frames, converted.frames) and torch.equal(source.mask, converted.mask)
        assert converted.time_list() == [0.0, 5.9, 12.0, 18.1]
        assert torch.equal(converted.frames[1], torch.from_numpy(arrays[(level, ident)]["590"]))
    with pytest.raises(OutputError, match="exists and is not an empty folder"):
        convert_contest_to_vt(tmp_path / "c", tmp_path / "vt")
    with pytest.raises(InputError, match="lightmap a:3: height 4 does not split into 3 equal parts"):
        convert_contest_to_vt(tmp_path / "c", tmp_path / "vt3", parts=3)
    with pytest.raises(InputError, match="already in the virtual-texture layout"):
        convert_contest_to_vt(tmp_path / "vt", tmp_path / "vt4")
    assert convert_contest_to_vt(tmp_path / "c", tmp_path / "only_b", lightmap_ids=["b:4"]) == [4]
    assert [e["id"] for e in json.loads((tmp_path / "only_b" / "config.json").read_text())["lightmap_list"]] == [4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "only_b", "vt"]


def test_convert_courtyard_round_trip(courtyard, tmp_path):
    source = load_sequence(courtyard / "hprc")
    assert convert_contest_to_vt(courtyard / "hprc", tmp_path / "vt", parts=4) == [0]
    converted = load_sequence(tmp_path / "vt", "0")
    assert torch.equal(converted.frames, source.frames)
    assert torch.equal(converted.times, source.times) and converted.num_frames == 33
    assert converted.mask is None and source.mask is None
    assert (tmp_path / "vt" / "Original" / raw_file_name(0, 320, 180, "10.25", 3)).stat().st_size == 320 * 45 * 12
    assert (tmp_path / "vt" / "Original" / raw_file_name(0, 320, 180, "24.00", 0)).is_file()


def test_convert_command(tmp_path, capsys):
    sub_names = [a for a in build_parser()._subparsers._group_actions[0].choices]  # noqa: SLF001
    if "convert" not in sub_names:
        pytest.skip("`airender convert` is not registered in airender.cli.build_parser")
    make_contest_dataset(tmp_path / "c", ["0", "1200"], [("a", 3, 4, 4)])
    assert main(["convert", "--data_dir", str(tmp_path / "c"), "--out", str(tmp_path / "vt"), "--parts", "2"]) == 0
    assert "Original/ and Mask/ only" in capsys.readouterr().out
    assert load_sequence(tmp_path / "vt").num_frames == 2
    assert main(["convert", "--data_dir", str(tmp_path / "c"), "--out", str(tmp_path / "x"), "--parts", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not split into 3 equal parts" in err and not (tmp_path / "x").exists()


# --- training on one component ------------------------------------------------------------------------
def test_train_on_one_component(tmp_path):
    hours = list(range(1, 25))
    write_virtual_texture(tmp_path / "vt", [lightmap(1, 8, 6, 3, hours=hours),
                                            lightmap(4, 16, 8, 2, hours=hours, seed=3)])
    result = run_cli("train", "--data_dir", str(tmp_path / "vt"), "--lightmap_id", "4", "--component", "sky",
                     "--max_steps", "3", "--preset", "hashgrid", "--out_dir", str(tmp_path / "run"),
                     "--batch_size", "256", "--progress", "False")
    assert result.returncode == 0, result.stderr
    assert "trained 3 of 3 steps" in result.stdout
    from airender.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(tmp_path / "run" / "best.ckpt", "cpu")
    assert (loaded.desc.height, loaded.desc.width, loaded.desc.is_hdr) == (8, 16, True)
    assert "SkyLightOnly" in loaded.desc.source and loaded.config.data.component == "sky"
    assert loaded.desc.times == [float(h % 24) for h in sorted(h % 24 for h in hours)]
    assert (tmp_path / "run" / "last.ckpt").is_file()
