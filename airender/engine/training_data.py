"""What a run trains on, prepared once before anything is written: the frames on the device in the training
space, which of them train and which are held out, the data description saved in every checkpoint, the
validation groups and the samplers that draw batches by index."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.data.description import DataDescription
from airender.data.readers import attach_components
from airender.data.samplers import PatchSampler, PixelSampler
from airender.data.sequence import SOURCES, TODSequence, ValueTransform, is_8bit, transform_for
from airender.data.sun_table import read_sun_table
from airender.engine.validation import TRAINED_GROUP, ValidationFrames
from airender.errors import InputError
from airender.evaluate import build_metric_suite
from airender.losses import lpips_loss_on


@dataclass
class TrainingData:
    """sequence: the frames on the training device (display space); transform: the training-space transform;
    frames [T, H, W, 3] and, with --components, source_frames [T, H, W, S, 3] in the training space;
    baseline_index: the frame at --baseline_time (or the nearest, for fields without a baseline frame);
    train_ids / holdout_ids: frame indices that train and that are held out (train_index: the former on the
    device); desc: the DataDescription every checkpoint keeps."""

    sequence: TODSequence
    transform: ValueTransform
    frames: torch.Tensor
    source_frames: torch.Tensor | None
    baseline_index: int
    train_ids: list[int]
    holdout_ids: list[int]
    train_index: torch.Tensor
    desc: DataDescription


def prepare_training_data(config: ExperimentConfig, sequence: TODSequence, device: torch.device) -> TrainingData:
    """The data of a run (see :class:`TrainingData`); InputError (one line) for data it cannot train on: every
    frame held out, fewer than two distinct times, a baseline hour not in the data, an unreadable sun table,
    --components without the lighting split by source."""
    if config.field.components and sequence.components is None:
        sequence = _with_sources(config, sequence)
    seq = sequence.to(device)
    transform = transform_for(seq.is_hdr, config.data.hdr_transform)
    frames = transform.to_train(seq.frames)
    source_frames = transform.to_train(seq.components) if config.field.components else None
    baseline_index = _baseline_index(config, seq)
    holdout = sorted({seq.index_of_time(h) for h in config.data.holdout_hours})
    train_ids = [i for i in range(seq.num_frames) if i not in holdout]
    if not train_ids:
        raise InputError(f"{seq.source}: every frame is held out; nothing left to train on")
    train_times = sorted({round(float(seq.times[i]), 6) for i in train_ids})
    if len(train_times) < 2:
        raise InputError(f"{seq.source}: a time-of-day model needs frames at two or more distinct times; "
                         f"the frames to train on are all at {train_times[0]:g} h")
    desc = DataDescription(
        height=seq.height, width=seq.width, is_hdr=seq.is_hdr, transform=transform.name,
        times=seq.time_list(), baseline_time=float(seq.times[baseline_index]),
        has_mask=seq.mask is not None, source=seq.source, names=list(seq.names),
        train_times=[seq.time_list()[i] for i in train_ids],
        baseline_8bit=not seq.is_hdr and is_8bit(seq.frames[baseline_index]),
        sun_table=_sun_table(config), **_source_description(config, seq, train_ids))
    return TrainingData(seq, transform, frames, source_frames, baseline_index, train_ids, holdout,
                        torch.tensor(train_ids, dtype=torch.long, device=device), desc)


def _baseline_index(config: ExperimentConfig, seq: TODSequence) -> int:
    """The frame at --baseline_time. Fields that use a baseline frame need it in the data; for the others it
    only picks the preview frame (baseline.png), so the nearest frame will do."""
    if config.field.residual_mode or config.field.use_baseline_encoder:
        return seq.index_of_time(config.data.baseline_time)
    return seq.nearest_index(config.data.baseline_time)[0]


def _with_sources(config: ExperimentConfig, sequence: TODSequence) -> TODSequence:
    """``sequence`` with its lighting split by source, read from --data_dir (for --components)."""
    data = config.data
    if not data.data_dir:
        raise InputError(f"--components: {sequence.source}: the frames come without their lighting split by "
                         f"source and no --data_dir names where to read it")
    if data.component != "original":
        raise InputError(f"--component {data.component}: --components trains on all light split by source; "
                         f"leave --component at original")
    return attach_components(sequence, data.data_dir, data.lightmap_id)


def _source_description(config: ExperimentConfig, seq: TODSequence, train_ids: list[int]) -> dict:
    """With --components: the DataDescription fields ``sources`` and ``source_off_hours`` (per source, the
    trained hours at which it is identically zero over the valid texels); else nothing."""
    if not config.field.components:
        return {}
    dark = seq.dark_sources().cpu()
    times = seq.time_list()
    return {"sources": list(SOURCES),
            "source_off_hours": {name: [times[i] for i in train_ids if bool(dark[i, s])]
                                 for s, name in enumerate(SOURCES)}}


def _sun_table(config: ExperimentConfig) -> dict[str, list[float]]:
    """With --sun_path FILE: {hour: unit direction} read from the file (InputError naming it when it is
    unreadable); else empty (no sun term, or a learned path)."""
    sun_path = config.field.sun_path
    if sun_path and config.field.components and config.field.residual_mode:
        raise InputError("--sun_path with --components: the sun term is the 'directional' source; add "
                         "--residual_mode False (or use a hash-grid preset)")
    if not sun_path or sun_path == "learn":
        return {}
    return {f"{hour:g}": list(direction) for hour, direction in read_sun_table(sun_path).items()}


def validation_groups(config: ExperimentConfig, data: TrainingData, device: torch.device) -> list[ValidationFrames]:
    """'hours' (the --val_hours, default every trained hour), 'holdout' (--holdout_hours) and 'extra' (the
    frames of --val_extra_dir, which must match the training frames in size and range)."""
    seq, tcfg = data.sequence, config.train

    def group(name: str, source: TODSequence, ids: list[int]) -> ValidationFrames:
        index = torch.tensor(ids, dtype=torch.long, device=source.device)
        return ValidationFrames(name, source.frames.index_select(0, index), source.times.index_select(0, index),
                                source.mask)

    val_ids = sorted({seq.index_of_time(h) for h in tcfg.val_hours}) if tcfg.val_hours else data.train_ids
    groups = [group(TRAINED_GROUP, seq, val_ids)]
    if data.holdout_ids:
        groups.append(group("holdout", seq, data.holdout_ids))
    if tcfg.val_extra_dir:
        extra = load_sequence(tcfg.val_extra_dir).to(device)
        if (extra.height, extra.width, extra.is_hdr) != (seq.height, seq.width, seq.is_hdr):
            raise InputError(f"{extra.source}: validation frames must match the training frames in size and "
                             f"dynamic range ({seq.width}x{seq.height}, {'HDR' if seq.is_hdr else 'LDR'})")
        groups.append(group("extra", extra, list(range(extra.num_frames))))
    return groups


def make_samplers(config: ExperimentConfig, data: TrainingData) -> tuple[PixelSampler, PatchSampler | None]:
    """The texel sampler (always) and the patch sampler (patch mode); ValueError for a mask without a valid
    texel or a patch mode without patches."""
    seq, tcfg = data.sequence, config.train
    valid = seq.valid_pixel_index()
    if valid.numel() == 0:
        raise ValueError(f"{seq.source}: the mask has no valid texel")
    sampler = PixelSampler(data.frames, seq.times, valid, data.train_index, components=data.source_frames)
    if tcfg.patch_size <= 0:
        return sampler, None
    if tcfg.patches_per_batch < 1:
        raise ValueError("--patches_per_batch must be positive in patch mode")
    return sampler, PatchSampler(data.frames, seq.times, seq.mask, data.train_index, tcfg.patch_size,
                                 components=data.source_frames)


def lpips_model_for(config: ExperimentConfig, device: torch.device):
    """The LPIPS-Alex model a run needs (for --loss_lpips_w or --val_metrics lpips), else None; InputError when
    the loss needs it and no weights are found (validation goes on without it, with a note)."""
    wants_loss = lpips_loss_on(config.loss, config.train.patch_size)
    if not wants_loss and "lpips" not in config.train.val_metrics:
        return None
    suite = build_metric_suite(config.loss.lpips_weights or None, device)
    if suite.lpips_model is None:
        if wants_loss:
            raise InputError(f"--loss_lpips_w > 0 needs LPIPS weights: {suite.lpips_unavailable_reason}")
        print(f"note: validation LPIPS unavailable: {suite.lpips_unavailable_reason}")
    return suite.lpips_model
