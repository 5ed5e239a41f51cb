"""The lines a run prints when it starts."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from airender.sizes import compression_report

if TYPE_CHECKING:
    from airender.engine.trainer import Trainer


def run_summary(trainer: "Trainer") -> str:
    """What a run trains on and with, printed when training starts: the data, the model's size, the steps and
    the device, the output folder (and, with --components, when each light source is off)."""
    seq, tcfg, desc = trainer.sequence, trainer.config.train, trainer.desc
    hours = ", ".join(f"{t:g}" for t in desc.train_times)
    held = ", ".join(f"{t:g}" for t in seq.time_list() if t not in desc.train_times)
    valid = "every texel" if seq.mask is None else f"{int(seq.mask.sum()):,} valid texels " \
                                                   f"({100.0 * float(seq.mask.float().mean()):.1f} %)"
    size = compression_report(trainer.field)
    params = sum(p.numel() for p in trainer.field.parameters())
    lines = [
        f"data: {seq.source}: {len(desc.train_times)} training frames of {seq.width}x{seq.height} "
        f"{'HDR' if seq.is_hdr else 'LDR'}, {valid}; hours {hours}" + (f"; held out {held}" if held else ""),
        f"model: {params:,} parameters, {size['model_bytes']:,} bytes stored = {size['percent_of_raw']:.2f} % of "
        f"the raw float32 frames (ratio {size['compression_ratio']:.0f}:1)",
        f"training: {trainer.total_steps} steps of {tcfg.batch_size} texels ({tcfg.epochs} epochs x "
        f"{trainer.steps_per_epoch} steps" + (f", --max_steps {tcfg.max_steps}" if tcfg.max_steps else "") + ")"
        + (f", time budget {tcfg.time_budget_s:g} s" if tcfg.time_budget_s > 0 else "")
        + f" on {trainer.device}" + (f" ({torch.get_num_threads()} threads)" if trainer.device.type == "cpu" else ""),
        f"outputs: {trainer.out_dir}",
    ]
    if desc.sources:
        off = [f"{name} (off at {', '.join(f'{h:g}' for h in desc.source_off_hours[name]) or 'no hour'})"
               for name in desc.sources]
        lines.insert(2, "light sources: " + "; ".join(off))
    return "\n".join(lines)
