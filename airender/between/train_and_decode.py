"""Train a run, fit its network between the hours when its config asks for one, and decode it as ``eval
--between auto`` does: the one step the demos share before they score."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airender.between import between_frames
from airender.between.cli import fit_after_training
from airender.between.net import BlendWeightNet, load_between_net
from airender.config import ExperimentConfig
from airender.data.sequence import TODSequence
from airender.engine.trainer import Trainer, TrainResult
from airender.models import LoadedModel, load_model
from airender.render import FrameDecoder


@dataclass
class TrainedRun:
    """result: what training reported; loaded: the checkpoint decoded (on the CPU); decoder: its whole frames,
    with daylight frames between the hours blended per pixel by ``net`` when the run fitted one; net: that
    network (None: the run fitted none)."""

    result: TrainResult
    loaded: LoadedModel
    decoder: object
    net: BlendWeightNet | None


def train_and_decode(config: ExperimentConfig, sequence: TODSequence, out_dir: Path, switch_hours: tuple[float, float],
                     overwrite: bool = False, checkpoint: str = "best.ckpt") -> TrainedRun:
    """Train ``config`` on ``sequence`` into ``out_dir``, print the steps it took, fit the network between the
    hours (``--between_steps``), and load ``checkpoint`` of the run for decoding."""
    result = Trainer(config, sequence, overwrite=overwrite).fit()
    print(f"trained {result.steps} of {result.planned_steps} steps in {result.seconds:.0f} s "
          f"({result.samples_per_s / 1e3:.0f}k samples/s)")
    net_path = fit_after_training(config, out_dir)  # the preset's blend weight between hours
    loaded = load_model(Path(out_dir) / checkpoint, "cpu")
    decoder = FrameDecoder(loaded.field)
    net = load_between_net(net_path)[0] if net_path is not None else None
    if net is not None:  # daylight frames between hours blended per pixel, as eval's --between auto
        decoder = between_frames(decoder, "learned", switch_hours, net)
    return TrainedRun(result, loaded, decoder, net)
