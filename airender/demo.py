"""``airender demo``: train on the bundled sample scene and write renders, a contact sheet and metrics.

The sample (``airender/sample_data/plaza``) was rendered by ``scripts/make_sample_scene.py`` with
Mitsuba 3: 24 hourly frames plus held-out times (5.9 and 18.1 beside the light switch, fractional hours).
The ``quality`` preset's blend-weight network between hours (``between.pt``) is fitted after training and
decodes the daylight frames between hours in the report, the renders and the animation.
"""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from airender.between.train_and_decode import train_and_decode
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.evaluate import build_metric_suite, evaluate_field, ground_truth_groups, pick_sheet_keys
from airender.fileio import write_text_atomic
from airender.images import preview_uint8, save_frame, save_gif
from airender.presets import apply_overrides, preset_config
from airender.render import frame_name

DEMO_RENDER_HOURS = (0.0, 5.9, 6.0, 9.0, 12.0, 15.5, 18.0, 18.1, 21.0)
DEFAULT_DEMO_DIR = "runs/demo"
DEMO_EPOCHS = 40  # 40 x 49 = 1960 steps: about 85-100 s of training on an idle two-core machine (then ~75 s
# for the preset's blend-weight network)


def sample_dir() -> Path:
    """Folder of the bundled sample scene (``hours/`` and ``extra/``)."""
    return Path(str(resources.files("airender") / "sample_data" / "plaza"))


def demo_config(out_dir: Path, seconds: float, device: str) -> ExperimentConfig:
    """The demo's training setup on the sample scene: the ``quality`` preset with the sample's light switch
    (lamps on for t < 6 and t > 18) and half its epochs. The budget is in steps, so every machine trains the
    same model and reports the same metrics, however busy it is; ``seconds`` > 0 adds a time limit."""
    config = apply_overrides(preset_config("quality"), {
        "field": {"light_switch": [6.0, 18.0]},
        "train": {"epochs": DEMO_EPOCHS, "time_budget_s": seconds, "device": device, "val_every": 8}})
    config.name, config.out_dir = "demo", str(out_dir)
    config.data.data_dir = str(sample_dir() / "hours")
    return config


def run_demo(out_dir: Path, lpips_weights: str | None = None, seconds: float = 0.0, device: str = "auto",
             overwrite: bool = False) -> dict:
    """Train, evaluate on every hour and the held-out frames, and write pictures. Returns the per-group means."""
    config = demo_config(out_dir, seconds, device)
    suite = build_metric_suite(lpips_weights)  # a wrong weights path fails now, not after training
    sequence = load_sequence(config.data.data_dir)
    started = time.perf_counter()
    run = train_and_decode(config, sequence, out_dir, tuple(config.field.light_switch), overwrite)
    loaded, decoder = run.loaded, run.decoder
    groups = ground_truth_groups(loaded.desc, config.data.data_dir, "", [str(sample_dir() / "extra")])
    report = evaluate_field(decoder, groups, suite)
    report.write(out_dir / "eval")
    report.contact_sheet(out_dir / "contact_sheet.png", pick_sheet_keys(report, 9), loaded.desc.is_hdr,
                         title="airender demo: ground truth | prediction | error")
    report.shadow_edges(out_dir / "shadow_edges.png", groups, loaded.desc.is_hdr, title="airender demo")
    renders = out_dir / "renders"
    for hour in DEMO_RENDER_HOURS:
        save_frame(renders / frame_name(hour, "png"), decoder.decode(hour), False)
    day = [preview_uint8(decoder.decode(h / 4.0), False) for h in range(96)]
    save_gif(out_dir / "day.gif", day)
    table = report.to_markdown(per_frame=False)
    write_text_atomic(out_dir / "metrics.md", report.to_markdown())
    print(table)
    print(f"demo finished in {time.perf_counter() - started:.0f} s: renders in {renders}, contact sheet "
          f"{out_dir / 'contact_sheet.png'}, moving shadows {out_dir / 'shadow_edges.png'}, day animation "
          f"{out_dir / 'day.gif'}, metrics {out_dir / 'metrics.md'}")
    return report.means
