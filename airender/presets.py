"""Named presets: flag bundles on top of the defaults (which are the roadmap's section-8 Baseline).

``airender train --preset hashgrid --data_dir ...``; flags given on the command line override the
preset. Every preset but ``quality``, ``sun`` and ``basis`` keeps the Baseline's training budget (20 epochs
x 200k samples), so that they compare at the same data, seed and budget; ``quality`` is the best small
model we know and trains 8x longer, and ``sun`` and ``basis`` are variants of it. Light switches are a
property of the data, not of a preset: add ``--light_switch 6 18`` for data whose local lights follow
the contest's rule.
"""
from __future__ import annotations

import copy
import dataclasses

from airender.config import ExperimentConfig

_BASELINE = {"field": {"xy_include_input": True}}

_QUALITY_FIELD = {"encoding": "hashgrid", "grid_dims": 2, "grid_levels": 12, "grid_log2_size": 12, "grid_features": 4,
                  "grid_base_res": 16, "activation": "relu", "hidden": 64, "layers": 2, "film": True,
                  "film_hidden": 16, "time_encoding": "fourier", "time_harmonics": 4, "time_blend": True,
                  "residual_mode": False, "store_dtype": "float16"}
# After training, a blend-weight network fitted on the model's own daylight hours (airender/between/net.py,
# 20 kB as int8) decodes the daylight frames between hours: on the courtyard renders 1.4 dB above the
# field's own decode there, the trained hours unchanged (docs/RESULTS.md, "Moving the shadows between the hours").
_QUALITY_TRAIN = {"lr": 5e-3, "grid_lr": 2e-2, "epochs": 80, "samples_per_epoch": 400_000,
                  "between_steps": 1500, "between_store_dtype": "int8"}

PRESETS: dict[str, dict[str, dict]] = {
    # The roadmap's section-8 settings: SIREN 64x6, Fourier 4/4 with raw xy, residual on hour 12.
    "baseline": _BASELINE,
    # Roadmap A3: per-pixel context from a shallow CNN over the baseline frame.
    "encoder": {"field": {"xy_include_input": True, "use_baseline_encoder": True, "be_channels": 32,
                          "be_downsample": 1}},
    # Roadmap B1: patch-level SSIM loss with MSE. The roadmap starts at loss_ssim_w 0.2, which costs the
    # SIREN about 3 dB of PSNR on the courtyard renders; a sweep found 0.02 (patch_ssim) and 0.01
    # (hybrid) to raise SSIM and lower LPIPS at no PSNR cost.
    "patch_ssim": {"field": {"xy_include_input": True}, "train": {"patch_size": 32}, "loss": {"loss_ssim_w": 0.02}},
    # Both of the above.
    "hybrid": {"field": {"xy_include_input": True, "use_baseline_encoder": True, "be_channels": 32,
                         "be_downsample": 1},
               "train": {"patch_size": 32}, "loss": {"loss_ssim_w": 0.01}},
    # Roadmap C1: the time code modulates every layer (FiLM) of a shorter SIREN fed by xy and CNN features;
    # parameters stored as float16.
    "film": {"field": {"xy_include_input": True, "film": True, "film_hidden": 16, "layers": 4,
                       "use_baseline_encoder": True, "be_channels": 16, "store_dtype": "float16"}},
    # Roadmap C2: a 2D multi-resolution hash grid with a tiny ReLU MLP modulated by time (FiLM); no
    # baseline frame needed; tables and weights stored as float16.
    "hashgrid": {"field": {"encoding": "hashgrid", "grid_dims": 2, "grid_levels": 10, "grid_log2_size": 13,
                           "grid_features": 2, "grid_base_res": 16, "activation": "relu", "hidden": 64,
                           "layers": 2, "film": True, "film_hidden": 16, "residual_mode": False,
                           "store_dtype": "float16"},
                 "train": {"lr": 5e-3, "grid_lr": 2e-2}},
    # The most accurate small model we know: a wider-featured hash grid, Fourier time driving FiLM,
    # decoding between hours by blending the neighbouring hours, float16 storage, and 8x the Baseline's
    # training samples. (Learned per-hour spline codes instead of Fourier time measured 0.7 dB lower on the
    # hours and 3-4 dB lower on the lamps-on frames next to a light switch.)
    "quality": {"field": dict(_QUALITY_FIELD), "train": dict(_QUALITY_TRAIN)},
    # quality with direct sunlight as a term of its own (airender/nn/sun_term.py) on a learned sun path
    # (--sun_path FILE gives it instead): on the courtyard renders 0.8 dB above quality on the hours, as
    # good between them; ships as a pack (numpy runtime, contest interface), not yet as ONNX or shaders.
    "sun": {"field": {**_QUALITY_FIELD, "sun_path": "learn"}, "train": dict(_QUALITY_TRAIN)},
    # quality's hash grid and budget with a low-rank basis decoder (airender/nn/basis.py): the time-free MLP
    # gives 32 values per pixel, cached once; per frame 32 x 3 coefficients from 12 time harmonics, so a
    # frame costs 96 multiply-adds per pixel (the CPU preset). On the sample scene rank 16 / 4 harmonics
    # measured 4.6 dB under quality on the hours, rank 32 / 4 harmonics 3.8 dB: the coefficients' time
    # code was the limit.
    "basis": {"field": {"encoding": "hashgrid", "grid_dims": 2, "grid_levels": 12, "grid_log2_size": 12,
                        "grid_features": 4, "grid_base_res": 16, "activation": "relu", "hidden": 64, "layers": 2,
                        "film": True, "film_hidden": 64, "basis_rank": 32, "time_encoding": "fourier",
                        "time_harmonics": 12, "time_blend": True, "residual_mode": False, "store_dtype": "float16"},
              "train": {"lr": 5e-3, "grid_lr": 2e-2, "epochs": 80, "samples_per_epoch": 400_000}},
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_config(name: str) -> ExperimentConfig:
    """The defaults with preset ``name`` applied."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    config = ExperimentConfig()
    return apply_overrides(config, PRESETS[name])


def apply_overrides(config: ExperimentConfig, overrides: dict[str, dict]) -> ExperimentConfig:
    """A copy of ``config`` with {section: {field: value}} applied (unknown names are an error)."""
    config = copy.deepcopy(config)
    for section, values in overrides.items():
        current = getattr(config, section)
        known = {f.name for f in dataclasses.fields(current)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown {section} options {unknown}")
        setattr(config, section, dataclasses.replace(current, **values))
    return config
