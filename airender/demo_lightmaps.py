"""``airender demo --lightmaps``: train on the bundled sample lightmap atlas and write renders, a contact
sheet and metrics.

The sample (``airender/sample_data/atlas``, see :mod:`airender.bake.sample`) is a 128 x 128 window of
one atlas baked by ``airender bake``: HDR linear radiance of a procedural level lit by sun, sky and lamps
(on for t < 6 and t > 18), with a validity mask, at the whole hours 1..24 and nine held-out times (2.5,
5.9, 7.5, 10.25, 13.5, 16.75, 18.1, 19.5, 22.5). It is written out in the virtual-texture layout into
``<out_dir>/data`` (no Mitsuba needed), a field is trained on the whole hours only, and every time is
scored under the virtual-texture protocol (``hprc-vt``, :mod:`airender.protocols`): the trained hours,
and the held-out times as ``between_day``, ``between_night`` and ``switch`` (5.9 and 18.1, the lamps-on
frames beside the switch).

The preset's blend-weight network (``between.pt``, :mod:`airender.between.net`) is fitted after training
and decodes the daylight frames between hours, as ``airender eval`` does by default.

Outputs in ``out_dir``: the run (best.ckpt, last.ckpt, between.pt, train_log.jsonl, config.json), ``eval/`` (metrics
per frame as json/csv/md, metrics_vs_hour.png), ``metrics.md``, ``summary.json`` (budget, steps, seconds,
means, size), ``contact_sheet.png`` (ground truth | prediction | error), ``shadow_edges.png`` (crops of
the daylight held-out times where the sun's shadows moved, beside the blend of the neighbouring hours),
``renders/`` (tone-mapped PNG and linear EXR per hour of ``LIGHTMAP_RENDER_HOURS``), ``day.gif`` and ``level/``
(the level page, airender.export.level: the part of the level the sample's window lights, in 3D).
Pictures show invalid texels (mask -1, counted by no metric) as black and use one exposure, from the
ground truth at noon, for every hour.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from airender.bake.level_file import LEVEL_FILE
from airender.bake.preview import sheet_exposure, tone_map
from airender.bake.sample import SAMPLE_LIGHTMAP_ID, materialise_sample_atlas
from airender.between.net import add_network_size, network_size_line
from airender.between.train_and_decode import train_and_decode
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.device import resolve_device
from airender.engine.run_folder import check_run_folder
from airender.evaluate import build_metric_suite, ground_truth_groups
from airender.export.level import write_level_page
from airender.fileio import make_dir, write_json_atomic, write_text_atomic
from airender.images import contact_sheet, save_exr, save_gif, save_png
from airender.presets import apply_overrides, preset_config
from airender.protocols import evaluate_protocol
from airender.render import frame_name
from airender.sizes import compression_report, size_line

LIGHTMAP_DEMO_PRESET = "quality"
LIGHTMAP_SWITCH_HOURS = (6.0, 18.0)  # the sample's lamps: on for t < 6 and t > 18
# 1960 steps of 8192 texels, as many as the image demo: a step costs about the same here (measured 0.07-0.08 s
# of one core per step for both), so training takes about 85-100 s on an idle two-core machine.
LIGHTMAP_DEMO_STEPS = 1960
LIGHTMAP_VAL_EVERY_STEPS = 392  # validations on the trained hours (every 4th texel) for best.ckpt: 5
LIGHTMAP_RENDER_HOURS = (0.0, 5.9, 6.0, 9.0, 12.0, 15.5, 18.0, 18.1, 21.0)
# contact sheet rows: trained hours and held-out times (5.9 and 18.1: lamps on, beside the switch)
LIGHTMAP_SHEET_TIMES = (0.0, 5.9, 6.0, 10.25, 12.0, 16.75, 18.0, 18.1, 22.5)
GIF_FRAMES = 96  # every quarter hour
EXPOSURE_HOUR = 12.0
DEFAULT_LIGHTMAP_DEMO_DIR = "runs/demo-lightmaps"


def lightmap_demo_config(out_dir: Path, data_dir: Path, seconds: float, device: str,
                         max_steps: int = 0) -> ExperimentConfig:
    """The demo's training setup: the ``LIGHTMAP_DEMO_PRESET`` preset on lightmap Original of ``data_dir``
    with the sample's light switch, for ``LIGHTMAP_DEMO_STEPS`` steps (or ``max_steps`` when > 0; the
    learning-rate schedule spans the steps planned). The budget is in steps, so every machine trains the
    same model; ``seconds`` > 0 adds a time limit."""
    base = preset_config(LIGHTMAP_DEMO_PRESET)
    steps = max_steps if max_steps > 0 else LIGHTMAP_DEMO_STEPS
    steps_per_epoch = math.ceil(base.train.samples_per_epoch / base.train.batch_size)
    config = apply_overrides(base, {
        "data": {"data_dir": str(data_dir), "lightmap_id": str(SAMPLE_LIGHTMAP_ID), "component": "original"},
        "field": {"light_switch": list(LIGHTMAP_SWITCH_HOURS)},
        "train": {"epochs": math.ceil(steps / steps_per_epoch), "max_steps": steps, "time_budget_s": seconds,
                  "device": device, "val_every_steps": min(LIGHTMAP_VAL_EVERY_STEPS, steps),
                  # a shorter demo (max_steps) fits its blend weight between hours no longer than it trains
                  "between_steps": min(base.train.between_steps, steps)}})
    config.name, config.out_dir = "demo-lightmaps", str(out_dir)
    return config


def _whole_hours(sequence) -> list[int]:
    """Indices of the frames at whole hours (0..23; the file names' 24.00 is hour 0)."""
    return [i for i, t in enumerate(sequence.time_list()) if abs(t - round(t)) < 1e-6]


def _masked(image: torch.Tensor, valid: np.ndarray | None) -> np.ndarray:
    """[H, W, 3] float32 numpy with invalid texels (``valid`` False) set to 0."""
    array = image.detach().float().cpu().numpy()
    if valid is not None:
        array = np.where(valid[..., None], array, 0.0).astype(np.float32)
    return array


def run_lightmap_demo(out_dir: Path, lpips_weights: str | None = None, seconds: float = 0.0, device: str = "auto",
                      overwrite: bool = False, max_steps: int = 0) -> dict:
    """Materialise the sample atlas into ``out_dir/data``, train on its whole hours, score every baked time
    under ``hprc-vt`` and write the report (see the module docstring).

    lpips_weights: LPIPS-Alex v0.1 weights (default: $AIRENDER_LPIPS_WEIGHTS, then the torch hub cache;
    without weights LPIPS is reported as unavailable). seconds: training time limit (0: none). device:
    auto, cpu, cuda, cuda:N. overwrite: replace a run already in ``out_dir``. max_steps: stop training
    after this many steps (0: the demo's ``LIGHTMAP_DEMO_STEPS``).
    Returns {group: {metric: mean}} as in ``EvalReport.means`` (psnr in dB, ssim, lpips, decode_s_sum in s).
    Raises InputError for a bad weights path or an ``out_dir`` that holds a run (without ``overwrite``),
    before anything is written.
    """
    out_dir = Path(out_dir)
    suite = build_metric_suite(lpips_weights)  # a wrong weights path fails now, not after training
    check_run_folder(out_dir, overwrite)
    started = time.perf_counter()
    data_dir = materialise_sample_atlas(out_dir / "data")
    config = lightmap_demo_config(out_dir, data_dir, seconds, device, max_steps)
    sequence = load_sequence(data_dir, config.data.lightmap_id, config.data.component)
    hours = sequence.select(_whole_hours(sequence))  # the other baked times are held out for the evaluation
    run = train_and_decode(config, hours, out_dir, LIGHTMAP_SWITCH_HOURS, overwrite)
    result, loaded, decoder, net = run.result, run.loaded, run.decoder, run.net
    groups = ground_truth_groups(loaded.desc, str(data_dir), config.data.lightmap_id, [], LIGHTMAP_SWITCH_HOURS,
                                 config.data.component)
    report = evaluate_protocol(decoder, groups, suite, "hprc-vt")
    report.size = compression_report(loaded.field)
    if net is not None:
        add_network_size(report.size, net)
    report.write(out_dir / "eval")

    valid = None if sequence.mask is None else sequence.mask.cpu().numpy()
    noon = sequence.frames[sequence.index_of_time(EXPOSURE_HOUR)].cpu().numpy()
    exposure = sheet_exposure(noon, valid if valid is not None else np.ones(noon.shape[:2], bool))

    def show(image: torch.Tensor) -> np.ndarray:
        return tone_map(_masked(image, valid), exposure)

    keys = [key for time_ in LIGHTMAP_SHEET_TIMES for key in report.predictions if abs(key[1] - time_) < 1e-6]
    rows = [(f"{group} {t:g} h", show(report.truths[(group, t)]), show(report.predictions[(group, t)]))
            for group, t in keys]
    contact_sheet(rows, out_dir / "contact_sheet.png",
                  title=f"airender demo --lightmaps ({LIGHTMAP_DEMO_PRESET}, hprc-vt)")
    report.shadow_edges(out_dir / "shadow_edges.png", groups, loaded.desc.is_hdr, title="airender demo --lightmaps",
                        view=lambda image: tone_map(image, exposure))

    renders = make_dir(out_dir / "renders")
    for hour in LIGHTMAP_RENDER_HOURS:
        image = decoder.decode(hour)
        save_png(renders / frame_name(hour, "png"), show(image))
        save_exr(renders / frame_name(hour, "exr"), _masked(image, valid))
    save_gif(out_dir / "day.gif", [show(decoder.decode(k * 24.0 / GIF_FRAMES)) for k in range(GIF_FRAMES)])

    level_page = None
    if (data_dir / LEVEL_FILE).is_file():  # the part of the level the sample lights, in 3D
        level_page = out_dir / "level"
        between = (net, LIGHTMAP_SWITCH_HOURS) if net is not None else None
        write_level_page(loaded.field, data_dir, level_page, "fp32", between)

    write_text_atomic(out_dir / "metrics.md", report.to_markdown())
    size = report.size
    write_json_atomic(out_dir / "summary.json", {
        "preset": LIGHTMAP_DEMO_PRESET, "light_switch": list(LIGHTMAP_SWITCH_HOURS), "protocol": "hprc-vt",
        "steps": result.steps, "planned_steps": result.planned_steps, "train_seconds": round(result.seconds, 2),
        "samples_per_s": round(result.samples_per_s), "device": str(resolve_device(device)),
        "trained_hours": loaded.desc.train_times, "means": report.means, "size": size,
        "lpips_unavailable": report.lpips_note or None})
    print(report.to_markdown(per_frame=False))
    print(size_line(size))
    if net is not None:
        print(network_size_line(size))
    print(f"lightmap demo finished in {time.perf_counter() - started:.0f} s: data in {data_dir}, renders in "
          f"{renders}, contact sheet {out_dir / 'contact_sheet.png'}, day animation {out_dir / 'day.gif'}, "
          f"metrics {out_dir / 'metrics.md'}"
          + (f", the level in 3D {level_page / 'index.html'}" if level_page is not None else ""))
    return report.means
