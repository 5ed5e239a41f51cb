"""``airender bench``: data-path, training and whole-frame decode throughput, side by side in one run.

(a) data path: the on-device sampler (random indices + one gather + encodings) beside a faithful
    re-implementation of the original per-sample path (a Dataset whose ``__getitem__`` draws one pixel
    and encodes its time with numpy, behind a DataLoader, batch 8192);
(b) end-to-end training samples/s of a model config on the data;
(c) whole-frame decode at --width x --height (default 1080p): median ms over repeats after warm-up
    (CUDA events on GPU), plus random-access per-pixel queries per second.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from airender.assembly import build_field
from airender.bench.atlas import add_atlas_arguments
from airender.bench.decode import time_decode, time_pack
from airender.bench.runtimes import parse_runtimes
from airender.checks import check_output_file, check_output_size
from airender.cli_args import add_ckpt_argument, add_data_dir_argument, add_device_argument
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.data.description import DataDescription
from airender.data.samplers import PixelSampler
from airender.data.sequence import TODSequence, is_8bit, transform_for
from airender.demo import sample_dir
from airender.device import resolve_device
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.fileio import write_json_atomic
from airender.models.checkpoint import load_checkpoint
from airender.models.packed import is_pack
from airender.nn.encodings import FourierTimeEncoding, FourierXYEncoding
from airender.presets import PRESETS, preset_config
from airender.timing import sync


class LegacyPixelDataset(torch.utils.data.Dataset):
    """The original data path, re-implemented for comparison: one random pixel per ``__getitem__``,
    xy normalised to [-1, 1] and the time encoded with numpy sin/cos harmonics, returned as tensors."""

    def __init__(self, frames: np.ndarray, times: np.ndarray, samples_per_epoch: int, time_harmonics: int = 4):
        self.frames, self.times = frames, times
        self.samples = samples_per_epoch
        self.harmonics = np.arange(1, time_harmonics + 1, dtype=np.float32)
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int):
        t_index = self.rng.integers(len(self.times))
        height, width = self.frames.shape[1:3]
        y, x = self.rng.integers(height), self.rng.integers(width)
        xy = np.array([x / (width - 1) * 2 - 1, y / (height - 1) * 2 - 1], dtype=np.float32)
        phase = 2 * np.pi * self.times[t_index] / 24.0 * self.harmonics
        t_enc = np.concatenate([np.sin(phase), np.cos(phase)]).astype(np.float32)
        target = self.frames[t_index, y, x].astype(np.float32)
        return torch.from_numpy(xy), torch.from_numpy(t_enc), torch.from_numpy(target)


def bench_legacy_data_path(sequence: TODSequence, batch_size: int, batches: int, workers: int) -> float:
    """Samples/s of the original Dataset + DataLoader path (first batch, incl. worker start, not timed)."""
    frames = sequence.frames.cpu().numpy()
    dataset = LegacyPixelDataset(frames, sequence.times.numpy(), batch_size * (batches + 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def bench_device_data_path(sequence: TODSequence, config: ExperimentConfig, device: torch.device,
                           batches: int) -> float:
    """Samples/s of the on-device path: draw indices, gather targets, encode xy and time."""
    seq = sequence.to(device)
    frames = transform_for(seq.is_hdr, config.data.hdr_transform).to_train(seq.frames)
    sampler = PixelSampler(frames, seq.times, seq.valid_pixel_index(), torch.arange(seq.num_frames, device=device))
    xy_enc = FourierXYEncoding(config.field.xy_harmonics, config.field.xy_include_input).to(device)
    t_enc = FourierTimeEncoding(config.field.time_harmonics).to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(0)
    batch_size = config.train.batch_size

    def one():
        batch = sampler.sample(batch_size, generator)
        return xy_enc(batch.uv), t_enc(batch.t), batch.target

    one()
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        one()
    sync(device)
    return batches * batch_size / (time.perf_counter() - start)


def bench_training(sequence: TODSequence, config: ExperimentConfig, steps: int, warmup: int = 5) -> float:
    """End-to-end training samples/s (sampling, forward, loss, backward, optimizer step)."""
    trainer = Trainer(config, sequence, out_dir=Path("/nonexistent-bench-run"))
    for _ in range(warmup):
        trainer.train_step()
    sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync(trainer.device)
    return steps * config.train.batch_size / (time.perf_counter() - start)


def untrained_preset_field(name: str, sequence: TODSequence, device: torch.device) -> torch.nn.Module:
    """A preset's field at the data's size with its initial weights (for timing and size)."""
    config = preset_config(name)
    transform = transform_for(sequence.is_hdr, config.data.hdr_transform)
    baseline = transform.to_train(sequence.frames[sequence.index_of_time(config.data.baseline_time)])
    desc = DataDescription(sequence.height, sequence.width, sequence.is_hdr, transform.name, sequence.time_list(),
                           config.data.baseline_time, train_times=sequence.time_list(),
                           baseline_8bit=not sequence.is_hdr and is_8bit(baseline))
    torch.manual_seed(0)
    return build_field(config.field, desc, baseline).to(device).eval()


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    add_data_dir_argument(p, "frames for the data-path and training benchmarks (default: the bundled sample scene)",
                          required=False)
    add_ckpt_argument(p, "checkpoint to time, or an exported .airpack (timed in the numpy runtime; bytes: the file's) "
                         "(repeatable)", repeat=True, required=False)
    p.add_argument("--preset", action="append", default=[],
                   help="untrained preset to time at the data's size (repeatable; decode time does not depend on "
                        "the weights); default without --ckpt: baseline")
    p.add_argument("--compile", action="store_true", help="torch.compile the per-frame decode")
    p.add_argument("--width", type=int, default=1920, help="decode width (default: 1920)")
    p.add_argument("--height", type=int, default=1080, help="decode height (default: 1080)")
    add_device_argument(p)
    p.add_argument("--repeats", type=int, default=5, help="timed decodes per model (default: 5)")
    p.add_argument("--parts", default="data,train,decode", help="which benchmarks, comma-separated: data, train, "
                                                                "decode (default: all three)")
    p.add_argument("--legacy_workers", type=int, default=1, help="DataLoader workers of the original path "
                                                                 "(default: 1)")
    p.add_argument("--train_steps", type=int, default=40, help="timed training steps (default: 40)")
    p.add_argument("--half", action="store_true", help="decode in float16 (GPU)")
    p.add_argument("--runtimes", default="torch",
                   help="decode runtimes to compare, comma-separated: torch, numpy (the pack at fp32 and int8), onnx "
                        "(onnxruntime); besides torch adds table (d) with the ratio to the quality preset "
                        "(default: torch)")
    p.add_argument("--out", default="", help="also write the results to this JSON file (default: none)")

    add_atlas_arguments(p)


def cmd_bench(args: argparse.Namespace) -> int:
    if getattr(args, "atlas", ""):
        from airender.bench.atlas import cmd_atlas_bench

        return cmd_atlas_bench(args)

    unknown = [name for name in args.preset if name not in PRESETS]
    if unknown:
        raise InputError(f"--preset {unknown[0]!r}: unknown (choose from {', '.join(PRESETS)})")
    check_output_size(args.height, args.width)
    if args.repeats < 1 or args.train_steps < 1 or args.legacy_workers < 0:
        raise InputError("--repeats and --train_steps must be positive, --legacy_workers zero or positive")
    parts = set(args.parts.split(","))

    runtimes = parse_runtimes(args.runtimes)
    if runtimes != ["torch"] and "decode" not in parts:
        raise InputError(f"--runtimes {args.runtimes}: compares whole-frame decodes; add decode to --parts")
    if parts - {"data", "train", "decode"}:
        raise InputError(f"--parts: unknown {sorted(parts - {'data', 'train', 'decode'})} (data, train, decode)")
    if args.out:
        check_output_file(args.out)
    device = resolve_device(args.device)
    data_dir = args.data_dir or str(sample_dir() / "hours")
    data_label = args.data_dir or "the bundled sample scene"  # paths as the user gave them
    sequence = load_sequence(data_dir)
    config = preset_config("baseline")
    config.data.data_dir = data_dir
    config.train.device = str(device)
    config.train.progress = False
    results: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "data": data_label, "frames": list(sequence.frames.shape)}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    gpu = f" ({results['gpu']})" if "gpu" in results else ""
    print(f"device {device}{gpu}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"data {data_label} {tuple(sequence.frames.shape)}")
    if "data" in parts:
        legacy = bench_legacy_data_path(sequence, config.train.batch_size, 4, args.legacy_workers)
        ours = bench_device_data_path(sequence, config, device, 50)
        results["data_path"] = {"legacy_samples_per_s": legacy, "device_samples_per_s": ours,
                                "speedup": ours / legacy}
        print(f"(a) data path, batch {config.train.batch_size}: original Dataset+DataLoader "
              f"({args.legacy_workers} worker) {legacy / 1e3:,.1f}k samples/s | on-device sampler "
              f"{ours / 1e6:,.2f}M samples/s | {ours / legacy:,.0f}x")
    if "train" in parts:
        rate = bench_training(sequence, config, args.train_steps)
        results["train_samples_per_s"] = rate
        print(f"(b) training, Baseline (SIREN {config.field.hidden}x{config.field.layers}), batch "
              f"{config.train.batch_size}: {rate / 1e3:,.0f}k samples/s")
    if "decode" in parts:
        packs = {path: Path(path).name for path in args.ckpt if is_pack(path)}  # numpy runtime, timed on their own
        fields = [(Path(path).parent.name or path, load_checkpoint(path, device).field) for path in args.ckpt
                  if path not in packs]
        for name in args.preset or ([] if args.ckpt else ["baseline"]):
            fields.append((name, untrained_preset_field(name, sequence, device)))
        timings = [time_decode(f, label, args.width, args.height, args.repeats, half=args.half,
                               compile_decode=args.compile) for label, f in fields]
        pack_timings = [time_pack(path, label, args.width, args.height, args.repeats) for path, label in packs.items()]
        by_label = {t.label: t for t in timings}
        timings += pack_timings
        results["decode"] = [t.__dict__ for t in timings]
        reference = timings[0].decode_ms_median
        print(f"(c) whole-frame decode {args.width}x{args.height} on {device} (median of {args.repeats}, "
              f"after warm-up; time-invariant cache built once):")
        for t in timings:
            print(f"    {t.label:24s} {t.decode_ms_median:9.2f} ms/frame  (x{reference / t.decode_ms_median:5.2f} vs "
                  f"first)  cache {t.prepare_ms:8.1f} ms  queries {t.queries_per_s / 1e6:6.2f}M/s  "
                  f"{t.model_bytes / 1024:8.1f} KiB" + (f"  ({t.device})" if t.device.startswith("numpy") else ""))
        if runtimes != ["torch"]:
            from airender.bench.runtimes import REFERENCE, bench_runtimes, print_runtimes

            reference = None if any(label == REFERENCE for label, _ in fields) else \
                untrained_preset_field(REFERENCE, sequence, device)
            rows = bench_runtimes(fields, runtimes, args.width, args.height, args.repeats, by_label, reference)
            if "numpy" in runtimes:  # a pack decodes in the numpy runtime only, at its own precision
                from airender.bench.runtimes import RuntimeTiming

                rows += [RuntimeTiming(t.label, t.device, t.decode_ms_median, t.prepare_ms, t.queries_per_s,
                                       t.model_bytes, t.decode_ms_all) for t in pack_timings]
            results["runtimes"] = [r.__dict__ for r in rows]
            print_runtimes(rows, args.width, args.height, args.repeats, f"{torch.get_num_threads()} torch threads")
    if args.out:
        write_json_atomic(args.out, results)
    return 0

