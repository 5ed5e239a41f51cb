"""Evaluate a trained field against ground-truth frames: metric tables, metric-vs-hour plots, contact sheets."""
from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from airender.data import load_sequence
from airender.data.readers import has_sources
from airender.data.sequence import TODSequence, concat_sequences
from airender.errors import InputError
from airender.fileio import atomic_path, write_json_atomic, write_text_atomic
from airender.images import contact_sheet, hdr_preview_exposure, preview_uint8
from airender.metrics import METRIC_NAMES, MetricSuite, mean_rows
from airender.nn.lpips import LPIPSAlex, find_lpips_weights
from airender.render import whole_frames
from airender.shadow_edges import write_shadow_edges


def build_metric_suite(lpips_weights: str | None = None, device: torch.device | str = "cpu",
                       metrics: tuple[str, ...] = METRIC_NAMES) -> MetricSuite:
    """A MetricSuite with LPIPS when weights are found (see airender.nn.lpips), else with the reason why not.
    A weights file named explicitly (``lpips_weights``) that does not exist is an error."""
    if lpips_weights and not Path(lpips_weights).expanduser().is_file():
        raise InputError(f"{lpips_weights}: --lpips_weights names a file that does not exist")
    source = find_lpips_weights(lpips_weights)
    if "lpips" in metrics and source.available:
        try:
            model = LPIPSAlex.from_source(source, device)
        except (ValueError, FileNotFoundError) as exc:
            raise InputError(str(exc)) from None
        return MetricSuite(lpips_model=model, metrics=metrics)
    return MetricSuite(lpips_model=None, metrics=metrics, lpips_unavailable_reason=source.reason)


@dataclass
class EvalReport:
    """Per-frame metric rows ({group, time, name, psnr, ssim, ...}) and per-group means."""

    rows: list[dict]
    means: dict[str, dict] = field(default_factory=dict)
    lpips_note: str = ""
    size: dict = field(default_factory=dict)
    contest: dict | None = None  # the round's weighted score under a contest protocol (protocols.contest_score)
    predictions: dict[tuple[str, float], torch.Tensor] = field(default_factory=dict, repr=False)
    truths: dict[tuple[str, float], torch.Tensor] = field(default_factory=dict, repr=False)

    def metric_names(self) -> list[str]:
        return [m for m in METRIC_NAMES if any(m in r for r in self.rows)]

    def to_markdown(self, per_frame: bool = True) -> str:
        names = self.metric_names()
        header = "| group | time | " + " | ".join(n.upper() for n in names) + " |"
        lines = [header, "|" + "---|" * (len(names) + 2)]
        if per_frame:
            for r in self.rows:
                lines.append(f"| {r['group']} | {r['time']:g} | " + " | ".join(_fmt(n, r.get(n)) for n in names) + " |")
        for group, mean in self.means.items():
            lines.append(f"| **{group} mean** | | " + " | ".join(_fmt(n, mean.get(n)) for n in names) + " |")
        text = "\n".join(lines) + "\n" + "\n" + group_legend([g for g in self.means]) + "\n"
        if self.lpips_note:
            text += f"\nLPIPS unavailable: {self.lpips_note}\n"
        return text

    def write(self, out_dir: Path) -> None:
        """metrics.json, metrics.csv, metrics.md and metrics_vs_hour.png in ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "metrics.json", {"rows": self.rows, "means": self.means, "size": self.size,
                                                     "contest_score": self.contest,
                                                     "lpips_unavailable": self.lpips_note or None})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["group", "time", "name"] + self.metric_names())
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: r.get(k) for k in writer.fieldnames})
        write_text_atomic(out_dir / "metrics.csv", buffer.getvalue())
        write_text_atomic(out_dir / "metrics.md", self.to_markdown())
        self.plot_vs_hour(out_dir / "metrics_vs_hour.png")

    def plot_vs_hour(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = self.metric_names()
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.0), squeeze=False)
        # all-light groups, and the light sources of the trained hours only (legible with a few lines)
        groups = sorted(g for g in {r["group"] for r in self.rows} if "/" not in g or g.startswith("hours/"))
        for ax, name in zip(axes[0], names):
            for group, marker in zip(groups, itertools.cycle("os^dvP*X")):
                pts = sorted((r["time"], r[name]) for r in self.rows if r["group"] == group and name in r
                             and math.isfinite(r[name]))
                if pts:
                    ax.plot(*zip(*pts), marker=marker, linestyle="-" if group.startswith("hours") else "none",
                            label=group)
            ax.set_xlabel("hour of day")
            ax.set_title(name.upper() + (" (lower is better)" if name in ("lpips", "flip") else ""), fontsize=9)
            ax.set_xlim(0, 24)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)

    def contact_sheet(self, path: Path, keys: list[tuple[str, float]], is_hdr: bool, title: str = "") -> None:
        """Ground truth | prediction | error heat map for the chosen (group, time) keys."""
        exposure = 1.0
        if is_hdr and keys:
            exposure = hdr_preview_exposure(self.truths[keys[0]])
        rows = [(f"{g} {t:g} h", preview_uint8(self.truths[(g, t)], is_hdr, exposure),
                 preview_uint8(self.predictions[(g, t)], is_hdr, exposure)) for g, t in keys]
        contact_sheet(rows, path, title=title)

    def shadow_edges(self, path: Path, groups: list, is_hdr: bool, title: str = "", **options) -> Path | None:
        """Crops where the sun's shadows moved in each between_day frame: ground truth | prediction | blend
        of the neighbouring trained hours (of the group 'hours' in ``groups``) | error; nothing is written
        (None) without a between_day frame or kept images. See :func:`airender.shadow_edges.write_shadow_edges`
        (``options``: count, size, exposure, view, max_frames)."""
        return write_shadow_edges(self, groups, path, is_hdr, title=title, **options)


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if name == "psnr" else f"{value:.4f}"


def check_compatible(desc, sequence: TODSequence) -> None:
    """Ground truth must match the model's resolution and dynamic range."""
    if (sequence.height, sequence.width) != (desc.height, desc.width):
        raise InputError(f"{sequence.source}: frames are {sequence.width}x{sequence.height} but the model was "
                         f"trained at {desc.width}x{desc.height}")
    if sequence.is_hdr != desc.is_hdr:
        kinds = {True: "HDR", False: "LDR"}
        raise InputError(f"{sequence.source}: frames are {kinds[sequence.is_hdr]} but the model was trained on "
                         f"{kinds[desc.is_hdr]} data")


# The held-out vocabulary shared by eval, compare, the demo, the README and docs/RESULTS.md:
#   hours          frames at the times the model trained on
#   between_day    held-out frames between the hours while the local lights are off (daylight)
#   between_night  held-out frames between the hours while the local lights are on (night)
#   switch         held-out frames within SWITCH_WINDOW_H of a light switch (5.9 h and 18.1 h)
#   between        (a mean only) every between-hour frame, day and night, switch frames excluded
#   <group>/<source>  a model trained with --components, on ground truth with the lighting split by
#                  source: the frames of <group> scored on one light source (directional, local, sky);
#                  e.g. metrics.json means["hours/directional"]["psnr"] (see evaluate_field)
HELD_OUT_GROUPS = ("between_day", "between_night", "switch")
GROUP_ORDER = ("hours", "between_day", "between_night", "switch", "between")
DEFAULT_SWITCH_HOURS = (6.0, 18.0)  # the contest's rule: local lights off from 6.0 to 18.0
SWITCH_WINDOW_H = 0.25


GROUP_MEANINGS = {
    "hours": "the trained hours",
    "between_day": "held-out frames between the hours, lights off (daylight)",
    "between_night": "held-out frames between the hours, lights on (night)",
    "switch": f"held-out frames within {SWITCH_WINDOW_H:g} h of a light switch",
    "between": "every between-hour frame, day and night (switch frames excluded)",
}


SOURCE_MEANINGS = {"directional": "the sun (DirectionalOnly)", "local": "the placed lamps (LocalOnly)",
                   "sky": "the sky dome (SkyLightOnly)"}


def group_legend(groups: list[str]) -> str:
    """One line saying what each group of a table holds."""
    text = "Groups: " + "; ".join(f"{g} = {GROUP_MEANINGS[g]}" for g in groups if g in GROUP_MEANINGS) + "."
    sources = list(dict.fromkeys(g.partition("/")[2] for g in groups if "/" in g))
    if sources:
        text += " <group>/<source> = the frames of <group> scored on one light source: " + \
            "; ".join(f"{name} = {SOURCE_MEANINGS.get(name, name)}" for name in sources) + \
            " (frames where the reference source is 0 at every valid texel are not scored)."
    return text


def switch_hours_of(config) -> tuple[float, float]:
    """The light-switch hours (OFF, ON) of a model's config, else the contest's 6 and 18."""
    switch = getattr(getattr(config, "field", None), "light_switch", None)
    return (float(switch[0]), float(switch[1])) if switch else DEFAULT_SWITCH_HOURS


def held_out_group(hour: float, switch_hours: tuple[float, float] = DEFAULT_SWITCH_HOURS) -> str:
    """'switch', 'between_day' or 'between_night' for a held-out frame at ``hour``."""
    off, on = switch_hours
    if min(abs(hour - off), abs(hour - on)) <= SWITCH_WINDOW_H:
        return "switch"
    return "between_day" if off <= hour <= on else "between_night"


def trained_time(desc):
    """A predicate: whether an hour is one the model described by ``desc`` trained on (to 1e-6 h)."""
    trained = {round(t, 6) for t in (desc.train_times or desc.times)}
    return lambda hour: round(hour, 6) in trained


def ground_truth_groups(desc, data_dir: str, lightmap_id: str, extra_dirs: list[str],
                        switch_hours: tuple[float, float] = DEFAULT_SWITCH_HOURS, component: str = "original") -> list:
    """[(group, sequence)] in GROUP_ORDER: 'hours' (frames at the times the model trained on), then the
    held-out frames (untrained times in ``data_dir`` and every frame of ``extra_dirs``) split into
    'between_day', 'between_night' and 'switch' (see :func:`held_out_group`).

    For a model that predicts light sources (``desc.sources``), folders holding the lighting split by
    source are read with it (``TODSequence.components``), so :func:`evaluate_field` scores each source."""
    def with_sources(folder: str) -> bool:
        return bool(getattr(desc, "sources", None)) and has_sources(folder)

    sequence = load_sequence(data_dir, lightmap_id, component,
                             components=component == "original" and with_sources(data_dir))
    trained = trained_time(desc)
    times = sequence.time_list()
    seen = [i for i, t in enumerate(times) if trained(t)]
    unseen = [i for i, t in enumerate(times) if not trained(t)]
    groups = [("hours", sequence.select(seen))] if seen else []
    extras = ([sequence.select(unseen)] if unseen else []) + \
        [load_sequence(d, components=with_sources(d)) for d in extra_dirs]
    if not extras:
        return groups
    held = concat_sequences(extras)
    for name in HELD_OUT_GROUPS:
        ids = [i for i, t in enumerate(held.time_list()) if held_out_group(t, switch_hours) == name]
        if ids:
            groups.append((name, held.select(ids)))
    return groups


def evaluate_field(model, groups: list[tuple[str, TODSequence]], suite: MetricSuite,
                   keep_images: bool = True) -> EvalReport:
    """Decode every ground-truth time of every group and score it.

    model: a trained field (decoded through a cached FrameDecoder) or any object with ``desc`` and
    ``decode(t)`` -> display [H, W, 3] (e.g. an anchor). groups: (name, sequence) pairs, e.g. ("hours",
    training frames), ("extra", fractional-hour frames).

    Light sources: when the model predicts them (``desc.sources``, a field trained with ``components``;
    the decoder offers ``decode_source(t, source)``) and a group's sequence holds the lighting split by
    source (``components``), each source is scored as its own group ``<group>/<source>`` (e.g.
    ``hours/directional``; their means in ``report.means["hours/directional"]``, and
    ``between/<source>`` over both between-hour groups). Those rows follow every all-light row, in
    decoding order. A frame whose reference source is 0 at every valid texel (the sun at night, the lamps
    by day) has no score under any protocol: its row holds ``dark_reference: True`` and
    ``max_abs_decoded`` (the largest decoded value at a valid texel; 0 when the model's gate holds), and
    its group's means count such frames in ``dark_frames`` with the largest value in ``dark_max_abs``.
    """
    decoder = whole_frames(model)
    rows: list[dict] = []
    report = EvalReport(rows=rows, lpips_note="" if suite.wants("lpips") or "lpips" not in suite.metrics
                        else suite.lpips_unavailable_reason)
    for name, sequence in groups:
        check_compatible(decoder.desc, sequence)
        mask = None if sequence.mask is None else sequence.mask.cpu()
        for k, hour in enumerate(sequence.time_list()):
            pred = decoder.decode(hour).cpu()
            truth = sequence.frames[k].cpu()
            row = {"group": name, "time": hour, "name": sequence.names[k] if sequence.names else f"{hour:g}"}
            row.update(suite.frame(pred, truth, mask, sequence.is_hdr))
            rows.append(row)
            if keep_images:
                report.predictions[(name, hour)] = pred
                report.truths[(name, hour)] = truth
        report.means[name] = mean_rows([r for r in rows if r["group"] == name])
    sources = list(getattr(decoder.desc, "sources", None) or [])
    if sources and hasattr(decoder, "decode_source"):
        for name, sequence in groups:
            if sequence.components is not None:
                _score_sources(decoder, suite, name, sequence, sources, report)
    for suffix in [""] + [f"/{source}" for source in sources]:
        between = [r for r in rows if r["group"] in ("between_day" + suffix, "between_night" + suffix)]
        if between:
            report.means["between" + suffix] = _group_means(between)
    return report


def _score_sources(decoder, suite, name: str, sequence: TODSequence, sources: list[str],
                   report: EvalReport) -> None:
    """Rows (frame by frame, the sources of a frame in turn) and means of the groups ``<name>/<source>``:
    each light source of every frame of ``sequence`` against ``sequence.components`` (see
    :func:`evaluate_field`)."""
    mask = None if sequence.mask is None else sequence.mask.cpu()
    valid = mask if mask is not None else torch.ones(sequence.height, sequence.width, dtype=torch.bool)
    first = len(report.rows)
    for k, hour in enumerate(sequence.time_list()):
        for index, source in enumerate(sources):
            pred = decoder.decode_source(hour, source).cpu()
            truth = sequence.components[k, :, :, index].cpu()
            row = {"group": f"{name}/{source}", "time": hour,
                   "name": sequence.names[k] if sequence.names else f"{hour:g}"}
            if bool((truth[valid] != 0).any()):
                row.update(suite.frame(pred, truth, mask, sequence.is_hdr))
            else:
                row.update(dark_reference=True, max_abs_decoded=float(pred[valid].abs().max()))
            report.rows.append(row)
    for source in sources:
        group = f"{name}/{source}"
        report.means[group] = _group_means([r for r in report.rows[first:] if r["group"] == group])


def _group_means(rows: list[dict]) -> dict:
    """:func:`mean_rows`, plus ``dark_frames`` and ``dark_max_abs`` when some rows are dark references."""
    means = mean_rows(rows)
    dark = [r["max_abs_decoded"] for r in rows if r.get("dark_reference")]
    if dark:
        means.update(dark_frames=len(dark), dark_max_abs=max(dark))
    return means


def pick_sheet_keys(report: EvalReport, max_rows: int = 8) -> list[tuple[str, float]]:
    """A few (group, time) keys spread over the day for a contact sheet: hours first, then extras."""
    keys = list(report.predictions)
    hours = [k for k in keys if k[0] == "hours"]
    extras = [k for k in keys if k[0] != "hours"]
    n_extra = min(len(extras), max_rows // 3)
    n_hours = max_rows - n_extra
    picked = [hours[i] for i in np.linspace(0, len(hours) - 1, min(n_hours, len(hours))).round().astype(int)] \
        if hours else []
    by_group: dict[str, list] = {}
    for key in extras:
        by_group.setdefault(key[0], []).append(key)
    round_robin = [k for layer in itertools.zip_longest(*by_group.values()) for k in layer if k is not None]
    picked += round_robin[:n_extra]  # one frame of each held-out group before a second of any
    return list(dict.fromkeys(picked))
