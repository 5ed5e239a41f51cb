"""Typed configuration of an airender experiment.

Every section is a dataclass; the ``help`` metadata of a field is its command-line help, and the flag
name is the field name (``--xy_harmonics``), so the roadmap's original flags work unchanged. The whole
:class:`ExperimentConfig` is saved in every checkpoint, and inference rebuilds the exact model from it.
Every feature flag defaults to the behaviour of the original pipeline.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from airender.hours import HOURS_PER_DAY


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with command-line help (lists get a copied default)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class DataConfig:
    """Where the frames come from and how they are read."""

    data_dir: str = option("", "folder of hourly frames (tod_7.png, hour_07.exr, ...) or a contest "
                               "lightmap dataset (a folder with config.json)")
    lightmap_id: str = option("", "contest layout: which lightmap, as 'ID' or 'LEVEL:ID' (default: the first); "
                                  "'all' with --tile_size fits every atlas of a virtual-texture dataset")
    component: str = option("original", "virtual-texture layout: which lighting to read: original (all light), "
                                        "directional (sun), local (placed lamps) or sky",
                            choices=("original", "directional", "local", "sky"))
    baseline_time: float = option(12.0, "hour of the baseline frame used by residual mode (must be in the data)")
    hdr_transform: str = option("log1p", "training space of HDR data: log1p (train on log(1 + x), render expm1) "
                                         "or linear", choices=("log1p", "linear"))
    holdout_hours: list[float] = option([], "hours removed from training (validation then measures "
                                            "interpolation between hours)")
    tile_size: int = option(0, "fit the atlas as N x N tiles, each by its own field (any preset), read through "
                               "memory maps window by window; tiles without a valid texel are skipped "
                               "(0: one field for the whole frame)")
    tile_overlap: int = option(0, "with --tile_size: each tile trains on its window padded by this many texels "
                                  "on every side and decodes only its own N x N texels (softens seams)")
    tile_threads: int = option(1, "with --tile_size: torch CPU threads of each tile job; the result depends on it "
                                  "(matrix-product reductions run in a thread-dependent order), so with a fixed "
                                  "value the fields are the same for any --workers or --ray; 0: cores / --workers")


@dataclass
class FieldConfig:
    """The field f(x, y, t): encodings, MLP and output mode."""

    residual_mode: bool = option(True, "predict delta-RGB against the baseline frame (False: predict RGB)")
    encoding: str = option("fourier", "pixel encoding: fourier (the roadmap's) or hashgrid (multi-resolution "
                                      "hash grid over (x, y) or (x, y, t))", choices=("fourier", "hashgrid"))
    xy_harmonics: int = option(4, "Fourier octaves of x and y: sin/cos(2^k pi p), k < N, p in [-1, 1]")
    xy_include_input: bool = option(False, "also feed the raw (x, y) in [-1, 1] to the MLP")
    time_harmonics: int = option(4, "Fourier harmonics of time on a 24 h period: sin/cos(2 pi k t / 24), k = 1..N")
    hidden: int = option(64, "MLP width")
    layers: int = option(6, "number of hidden MLP layers (each Linear + activation), plus one output Linear")
    activation: str = option("sine", "MLP activation: sine (SIREN) or relu", choices=("sine", "relu"))
    sine_w0: float = option(30.0, "SIREN frequency factor omega_0 of the sine activation")
    use_baseline_encoder: bool = option(False, "add per-pixel context: a shallow CNN encodes the baseline frame "
                                               "into a feature map sampled bilinearly at each pixel")
    be_channels: int = option(32, "BaselineEncoder: feature channels")
    be_downsample: int = option(1, "BaselineEncoder: feature map at 1/N of the frame resolution")
    be_with_xy: bool = option(True, "BaselineEncoder: keep the xy encoding beside the CNN features "
                                    "(False: the MLP sees only [features, time])")
    grid_dims: int = option(2, "hash grid over (x, y) [2] or (x, y, t) with periodic t [3]", choices=(2, 3))
    grid_levels: int = option(12, "hash grid: resolution levels")
    grid_features: int = option(2, "hash grid: features per level")
    grid_log2_size: int = option(14, "hash grid: log2 of the table rows per level")
    grid_base_res: int = option(16, "hash grid: coarsest resolution (cells per axis)")
    grid_max_res: int = option(0, "hash grid: finest resolution (0: the frame's larger side)")
    grid_time_res: int = option(24, "hash grid with --grid_dims 3: most time cells per day")
    time_encoding: str = option("fourier", "time input: fourier (periodic harmonics, --time_harmonics) or spline "
                                           "(learned codes at --time_knots hours, periodic cubic B-spline)",
                                choices=("fourier", "spline"))
    time_knots: int = option(24, "spline time codes: knots per day")
    time_code_dim: int = option(16, "spline time codes: code size")
    film: bool = option(False, "FiLM: the time code produces a scale and shift for every hidden layer instead "
                               "of being concatenated to the MLP input")
    film_hidden: int = option(32, "FiLM generator width")
    basis_rank: int = option(0, "K > 0: a basis decoder instead of the FiLM MLP: the MLP (without time) gives K "
                                "values per pixel, the FiLM generator K x 3 coefficients per hour, and RGB is "
                                "their product (needs --film; per frame 3 K multiply-adds per pixel)")
    time_blend: bool = option(False, "decode a time between two training hours as the linear blend of the "
                                     "field at those hours (the roadmap's neighbouring-hour blending); the "
                                     "light switch still follows the true time")
    store_dtype: str = option("float32", "precision of the stored parameters (checkpoints and size); float16 halves "
                                         "the bytes, and evaluation then uses the rounded values",
                              choices=("float32", "float16"))
    light_switch: list[float] = option([], "local lights switch OFF at the first hour and ON at the second "
                                           "(e.g. 6 18: on for t < 6 or t > 18); the field adds a learned lamp "
                                           "image in linear light while they are on")
    components: bool = option(False, "virtual-texture data with the lighting split by source (DirectionalOnly/, "
                                     "LocalOnly/, SkyLightOnly/): predict the sun, the lamps and the sky, each "
                                     "non-negative in linear light, and all light as their sum; each source is "
                                     "exactly 0 at the trained hours where the data have it 0 and between two "
                                     "such hours (the sun at night, the lamps by day); every source and the sum "
                                     "are supervised (--loss_source_w)")
    sun_path: str = option("", "add direct sunlight as a term of its own (a per-texel response to the sun's "
                               "direction times a learned visibility of that direction), evaluated at the true "
                               "time, also with --time_blend: 'learn' learns the sun's "
                               "daily path from the frames; FILE reads it from JSON (a baker meta.json, a table "
                               "{hour: [x, y, z]} or a \"location\"; see the README) ('': no sun term)")


@dataclass
class LossConfig:
    """Named, weighted loss terms."""

    loss_l2_w: float = option(1.0, "weight of the mean squared error in the training space")
    loss_source_w: float = option(1.0, "with --components: weight of the mean squared error of each light "
                                       "source in the training space (the sum, all light, has --loss_l2_w)")
    loss_ssim_w: float = option(0.2, "weight of 1 - SSIM on patches (patch mode only, --patch_size > 0)")
    loss_lpips_w: float = option(0.0, "weight of LPIPS-Alex on patches (patch mode; computed every --lpips_freq steps)")
    lpips_freq: int = option(0, "compute the LPIPS loss every N steps (0: off)")
    lamp_prior_w: float = option(0.1, "with --light_switch: weight of the mean absolute difference between the "
                                      "lamp image and the darkest lights-on frame less a faint ambient "
                                      "(--lamp_prior_floor), which settles how lit frames split into "
                                      "lights-independent light and lamp light")
    lamp_prior_floor: float = option(0.03, "with --light_switch: the night ambient the lights-independent part "
                                           "keeps, as a fraction of the mean linear radiance of the lights-off "
                                           "training frames (so it follows the data's exposure)")
    perceptual_start: float = option(0.3, "patch mode: SSIM/LPIPS weights are 0 until this fraction of the "
                                          "planned steps, then ramp up linearly over --perceptual_ramp")
    perceptual_ramp: float = option(0.2, "patch mode: fraction of the planned steps over which SSIM/LPIPS "
                                         "weights ramp from 0 to their value")
    lpips_weights: str = option("", "LPIPS-Alex v0.1 weight file for the loss and validation "
                                    "(default: $AIRENDER_LPIPS_WEIGHTS, then the torch hub cache)")


@dataclass
class TrainConfig:
    """Optimisation and run budget."""

    epochs: int = option(20, "number of epochs")
    samples_per_epoch: int = option(200_000, "pixels drawn per epoch (steps per epoch = ceil(samples / batch))")
    batch_size: int = option(8192, "pixels per optimisation step")
    lr: float = option(5e-4, "peak learning rate")
    seed: int = option(0, "random seed (model initialisation and sampling)")
    num_workers: int = option(1, "accepted for compatibility with the original command; batches are "
                                  "gathered on the training device by index, so no loader workers run")
    max_steps: int = option(0, "stop after this many optimisation steps (0: epochs x steps per epoch)")
    time_budget_s: float = option(0.0, "stop training after this many seconds (0: no limit)")
    optimizer: str = option("adam", "optimizer", choices=("adam", "adamw"))
    weight_decay: float = option(0.0, "weight decay (AdamW)")
    lr_schedule: str = option("cosine", "learning-rate schedule: cosine over the planned steps, constant, "
                                        "or plateau (halve on a validation plateau of --monitor)",
                              choices=("cosine", "constant", "plateau"))
    lr_min_ratio: float = option(0.05, "cosine schedule: final learning rate as a fraction of --lr")
    warmup_steps: int = option(0, "linear learning-rate warm-up steps")
    grad_clip: float = option(1.0, "clip the gradient norm to this value (0: off)")
    grid_lr: float = option(1e-2, "learning rate of hash-grid tables and time codes (Adam eps 1e-15, no weight decay)")
    amp: bool = option(True, "mixed precision (bfloat16 autocast) when training on CUDA; ignored on CPU")
    device: str = option("auto", "training device: auto, cpu, cuda, cuda:N")
    patch_size: int = option(0, "patch mode: each step also decodes --patches_per_batch random P x P patches "
                                "for the SSIM/LPIPS losses (0: off)")
    patches_per_batch: int = option(16, "patch mode: patches per step, on top of the --batch_size random texels")
    val_downsample: int = option(4, "validation scores every N-th texel in x and y")
    val_hours: list[float] = option([], "training hours to validate on (default: all training hours)")
    val_every: int = option(1, "validate every N epochs (and at the end)")
    val_every_steps: int = option(0, "validate every N steps instead of every --val_every epochs (0: off)")
    val_metrics: list[str] = option(["psnr"], "validation metrics: psnr, ssim, lpips, flip")
    val_extra_dir: str = option("", "extra ground-truth frames to validate on (e.g. fractional hours)")
    monitor: str = option("psnr", "validation metric for best.ckpt, early stop and the plateau schedule; "
                                  "'psnr' averages the trained hours' frames (held-out frames never choose a "
                                  "checkpoint), 'extra/psnr' the --val_extra_dir frames")
    early_stop_patience: int = option(0, "stop after N validations without improvement of --monitor (0: off)")
    plateau_patience: int = option(2, "plateau schedule: halve the learning rate after N validations "
                                      "without improvement")
    tensorboard: bool = option(False, "also write TensorBoard event files to <out_dir>/tb")
    progress: bool = option(True, "show a progress bar")
    between_steps: int = option(0, "after training, fit the per-pixel blend weight between hours "
                                   "(airender/between/net.py) for N Adam steps on the model's own daylight hours and "
                                   "write it to between.pt in the run folder; render, render-all and eval then "
                                   "decode daylight frames between hours with it (0: none; single-field runs)")
    between_channels: int = option(12, "with --between_steps: channels of the blend-weight network's layers")
    between_store_dtype: str = option("float16", "with --between_steps: how the network's weights are stored: "
                                                 "float16, or int8 (one scale per output channel)",
                                      choices=("float16", "int8"))


@dataclass
class ExperimentConfig:
    """A full run: data, field, losses, training, and where outputs go."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    out_dir: str = option("", "output folder (default: runs/<name>)")
    name: str = option("run", "run name; outputs go to runs/<name> unless --out_dir is given")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys are an error (a newer checkpoint)."""
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in sections:
                raise ValueError(f"unknown config section {key!r}")
            if isinstance(value, dict):
                kwargs[key] = section_from_dict(SECTION_TYPES[key], value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


SECTION_TYPES: dict[str, type] = {
    "data": DataConfig, "field": FieldConfig, "loss": LossConfig, "train": TrainConfig,
}


def section_from_dict(cls: type, d: dict) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}")
    return cls(**d)


# --- value checks -------------------------------------------------------------------------------------
# Every number must be finite; these fields must also lie in a range. "hour": a time of day in [0, 24]
# (24 is midnight); "fraction": [0, 1]; "positive": > 0; "nonneg": >= 0. Lists are checked item by item.
FIELD_CHECKS: dict[str, str] = {
    # data
    "baseline_time": "hour", "holdout_hours": "hour", "tile_size": "nonneg", "tile_overlap": "nonneg",
    "tile_threads": "nonneg",
    # field
    "xy_harmonics": "nonneg", "time_harmonics": "nonneg", "hidden": "positive", "layers": "positive",
    "sine_w0": "positive", "be_channels": "positive", "be_downsample": "positive", "grid_levels": "positive",
    "grid_features": "positive", "grid_log2_size": "positive", "grid_base_res": "positive",
    "grid_max_res": "nonneg", "grid_time_res": "positive", "time_knots": "positive", "time_code_dim": "positive",
    "film_hidden": "positive", "light_switch": "hour", "basis_rank": "nonneg",
    # loss
    "loss_l2_w": "nonneg", "loss_source_w": "nonneg", "loss_ssim_w": "nonneg", "loss_lpips_w": "nonneg",
    "lpips_freq": "nonneg",
    "lamp_prior_w": "nonneg", "lamp_prior_floor": "nonneg", "perceptual_start": "fraction",
    "perceptual_ramp": "fraction",
    # train
    "epochs": "positive", "samples_per_epoch": "positive", "batch_size": "positive", "lr": "nonneg",
    "seed": "nonneg", "num_workers": "nonneg", "max_steps": "nonneg", "time_budget_s": "nonneg",
    "weight_decay": "nonneg", "lr_min_ratio": "fraction", "warmup_steps": "nonneg", "grad_clip": "nonneg",
    "grid_lr": "nonneg", "patch_size": "nonneg", "patches_per_batch": "positive", "val_downsample": "positive",
    "val_hours": "hour", "val_every": "positive", "val_every_steps": "nonneg", "early_stop_patience": "nonneg",
    "plateau_patience": "positive", "between_steps": "nonneg", "between_channels": "positive",
}
_CHECK_TEXT = {"hour": "a time of day in [0, 24]", "fraction": "in [0, 1]", "positive": "positive",
               "nonneg": "zero or positive"}


def value_problem(value: float, check: str | None) -> str | None:
    """Why ``value`` is not acceptable under ``check`` (see FIELD_CHECKS), or None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return f"must be a finite number, got {value}"
    ok = {"hour": lambda v: 0.0 <= v <= HOURS_PER_DAY, "fraction": lambda v: 0.0 <= v <= 1.0,
          "positive": lambda v: v > 0, "nonneg": lambda v: v >= 0, None: lambda v: True}[check](value)
    return None if ok else f"must be {_CHECK_TEXT[check]}, got {value:g}"


def field_problems(cfg: "FieldConfig") -> list[str]:
    """The field options that do not go with each other, as ``--name: problem`` (empty when they do). The
    rules that depend on the data are checked where the field is built (airender.assembly.build_field)."""
    problems = []
    switch = cfg.light_switch
    if switch and (len(switch) != 2 or not 0 <= switch[0] <= switch[1] <= 24):
        problems.append("--light_switch takes two hours OFF ON with OFF <= ON, e.g. 6 18")
    if cfg.components and switch:
        problems.append("--light_switch: not with --components (each light source gets its own on/off gate "
                        "from the data)")
    if cfg.sun_path and cfg.components and cfg.residual_mode:
        problems.append("--sun_path with --components: the sun term becomes the 'directional' source; it needs "
                        "--residual_mode False")
    xy_inputs = (cfg.encoding == "hashgrid" and cfg.grid_dims == 2) or cfg.xy_harmonics > 0 or cfg.xy_include_input
    if not cfg.use_baseline_encoder and not xy_inputs:
        problems.append("the field has no pixel inputs: set --xy_harmonics or --xy_include_input")
    return problems


def config_problems(config: "ExperimentConfig") -> list[str]:
    """Every out-of-range or non-finite option as ``--name: problem`` (empty when the config is sound)."""
    problems = []
    for section in SECTION_TYPES:
        values = getattr(config, section)
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            for item in (value if isinstance(value, list) else [value]):
                problem = value_problem(item, FIELD_CHECKS.get(f.name))
                if problem:
                    problems.append(f"--{f.name}: {problem}")
                    break
    problems += field_problems(config.field)
    monitor = config.train.monitor
    if monitor.startswith("holdout/") or (monitor.startswith("all/") and config.data.holdout_hours):
        problems.append(f"--monitor {monitor}: averages the --holdout_hours frames, and held-out frames never choose "
                        f"a checkpoint (monitor the trained hours: '{monitor.split('/', 1)[1]}')")
    return problems
